// The NFLOG source as the daemon runs it: the groups of one namespace on
// one socket, and its loss discipline. A packet lost is never recovered
// (the kernel keeps no copy), so every loss is counted and reported: an
// overrun (ENOBUFS) at once, with the receive buffer grown as far as the
// burst needed (up to buffer_max), and the gaps the per-group sequence
// numbers show, once a second while they grow.
import { explainSocketError } from '../../util/errors.js';
import { nowMicros } from '../../util/time.js';
import type { PacketLog } from '../../records/packet.js';
import { rcvbufShortfall, type BaseSourceStats, type Source, type SourceLog, type SourceOut } from '../source.js';
import type { NflogSourceConfig } from './schema.js';
import { droppedText, nflogLossText, NflogSource, type NflogStats } from './source.js';

/** kernel memory per queued NFLOG datagram, for growing the buffer after an overrun (a full-size packet) */
const PACKET_TRUESIZE = 4096;

export interface NflogSourceStats extends BaseSourceStats, NflogStats {
  type: 'nflog';
}

/** What the store needs to hear from the source (the daemon wires it). */
export interface NflogHooks {
  /** packets were lost from `since` to `until` (µs): a gap in the trail of packets */
  gap?(since: number, until: number, reason: string): void;
}

export class NflogDaemonSource implements Source<'packet'> {
  readonly kind = 'packet' as const;
  readonly name: string;
  readonly sock: NflogSource;
  hooks: NflogHooks = {};
  /** each group's last packet (µs), and when the groups were bound: where a sequence gap begins */
  private lastTime = new Map<number, number>();
  private boundAt = 0;
  private reported = { overruns: 0, gaps: 0, drops: 0 };
  /** when losses were last looked for (µs) */
  private checkedAt = nowMicros();
  private halted = false;

  constructor(readonly config: NflogSourceConfig, private readonly log: SourceLog, opts: { keepRaw?: boolean } = {}) {
    this.name = config.name;
    try {
      this.sock = new NflogSource({
        netns: config.netns, groups: config.groups, copyMode: config.copy_mode, copyRange: config.copy_range || 0xffff,
        qthreshold: config.qthreshold, nlbufsiz: config.nlbufsiz, timeoutMs: config.timeout_ms, rcvbuf: config.buffer_size, conntrack: config.conntrack,
        coalesceMs: config.batch_delay_ms, keepRaw: opts.keepRaw === true,
      });
    } catch (e) {
      throw explainSocketError(e, config.netns);
    }
    const short = rcvbufShortfall(config.name, config.buffer_size, this.sock.rcvbuf);
    if (short) log.warn(short);
  }

  async start(out: SourceOut<PacketLog>): Promise<void> {
    const c = this.config;
    try {
      this.boundAt = nowMicros();
      await this.sock.start({
        packet: (p) => { this.lastTime.set(p.group, p.time); out.record(p, true); },
        gap: (n, group, p) => {
          this.hooks.gap?.(Math.min(this.lastTime.get(group) ?? this.boundAt, p.time), p.time,
            `${n} packet${n > 1 ? 's' : ''} of NFLOG group ${group} lost (sequence numbers skipped)`);
        },
        batchEnd: () => out.batchEnd(),
        overrun: () => this.report(true),
      }, (err) => this.log.error(`source ${this.name}: ${explainSocketError(err, c.netns).message}`));
    } catch (e) {
      throw explainSocketError(e, c.netns);
    }
    this.log.info(`source ${this.name}: listening to NFLOG group${c.groups.length > 1 ? 's' : ''} ${c.groups.join(', ')}` +
      `${c.netns ? ` in network namespace ${c.netns}` : ''} (receive buffer ${this.sock.rcvbuf} bytes, copy ${c.copy_mode}` +
      `${c.copy_mode === 'packet' ? ` up to ${c.copy_range || 65535} bytes` : ''}, qthreshold ${c.qthreshold})`);
    if (c.conntrack && !this.sock.conntrack) {
      this.log.info(`source ${this.name}: this kernel cannot attach each packet's conntrack entry (no CONFIG_NETFILTER_NETLINK_GLUE_CT): packets come without it`);
    }
  }

  pause(): void { this.sock.pause(); }
  resume(): void { this.sock.resume(); }
  tick(): void { this.report(true); }

  /**
   * Reports the losses since the last report: overruns (and, with `grow`,
   * a larger receive buffer) and sequence gaps.
   */
  private report(grow: boolean): void {
    if (this.halted) return;
    const s = this.sock.stats();
    const n = s.enobufs - this.reported.overruns;
    const gaps = s.seqGaps - this.reported.gaps;
    // datagrams the kernel could not queue (each a batch of packets): it says
    // ENOBUFS once per overrun, and after the last of a burst no later packet
    // shows their sequence numbers missing, so its drop count is watched too
    const dropped = Math.max(0, s.kernelDrops - this.reported.drops);
    const now = nowMicros();
    const since = this.checkedAt;
    this.checkedAt = now;
    if (n <= 0 && gaps <= 0 && dropped <= 0) return;
    let grown = '';
    if (n > 0) {
      const loss = this.sock.takeLoss();
      this.hooks.gap?.(loss.from > 0 ? Math.min(loss.from, now) : now, now, `packets lost (netlink overrun, ENOBUFS x${n})`);
      grown = this.sock.growForBurst(dropped, PACKET_TRUESIZE, this.config.buffer_max, grow);
    } else if (dropped > 0) {
      // the overrun went on after it was reported
      this.hooks.gap?.(Math.min(since, now), now, `packets lost (netlink overrun: ${droppedText(dropped)})`);
    }
    this.reported = { overruns: s.enobufs, gaps: s.seqGaps, drops: Math.max(this.reported.drops, s.kernelDrops) };
    this.log.warn(`source ${this.name}: ${nflogLossText(n, dropped, gaps, s.seqGaps)}${grown}`);
  }

  stopping(): void {
    this.report(false);
    this.halted = true;
  }

  stats(): NflogSourceStats {
    const s = this.sock.stats();
    return { ...s, name: this.name, type: 'nflog', records: s.packets };
  }

  close(): void {
    this.halted = true;
    this.sock.close();
  }
}
