// The conntrack source as the daemon runs it: the event socket of one
// namespace, its sysctls, and its loss discipline. An overrun is handled as
// soon as the socket reports it: one warning with the counts, a receive
// buffer as large as the burst needed (up to buffer_max), and a table dump
// on the same socket (a resync); the time events may have been lost is
// told to the pipeline, which records it as a gap in the trail.
import { native } from '../../netlink/native.js';
import { explainSocketError } from '../../util/errors.js';
import { nowMicros } from '../../util/time.js';
import type { FlowEvent } from '../../records/event.js';
import { rcvbufShortfall, type BaseSourceStats, type Source, type SourceLog, type SourceOut } from '../source.js';
import type { ConntrackSourceConfig } from './schema.js';
import type { FlowFilter } from './filter.js';
import { ConntrackEventSource, type SourceStats as SocketStats } from './socket.js';

/** Estimated kernel memory per queued event (skb truesize), for growing the buffer after an overrun. */
const EVENT_TRUESIZE = 1536;

export type SyncWhy = 'resync' | 'start-up sync' | 'check';

/** What the flow table needs to hear from the source (the daemon wires it; all optional). */
export interface ConntrackHooks {
  /** a dump starts: the flow table learns from it which flows are still open */
  syncBegin?(): void;
  /** the dump is complete at `doneUs`; flows it no longer has ended unseen after `lossFrom`: returns how many */
  syncEnd?(why: SyncWhy, doneUs: number, lossFrom: number | undefined): number;
  /** events may have been lost from `since` (µs) on: a flow first seen without its NEW began after that */
  lossStarted?(since: number): void;
  /** events were lost from `since` to `until` (recovered by a dump, or not): a gap in the trail */
  gap?(since: number, until: number, reason: string): void;
}

export interface ConntrackStats extends BaseSourceStats, SocketStats {
  type: 'conntrack';
  resyncs: number;
  dumped: number;
  byType: Record<FlowEvent['type'], number>;
}

/**
 * Sysctls a source's keys ask for, set before its socket opens (each said
 * in the log; a failure is a warning, not fatal).
 */
export function prepareConntrack(sc: ConntrackSourceConfig, log: SourceLog, withFlows: boolean): void {
  for (const [on, name, what] of [[sc.enable_accounting, 'nf_conntrack_acct', 'accounting'], [sc.enable_timestamps, 'nf_conntrack_timestamp', 'timestamps']] as const) {
    if (!on) continue;
    try {
      native().writeSysctl(sc.netns ?? '', `net.netfilter.${name}`, '1');
      log.info(`source ${sc.name}: turned on conntrack ${what} (net.netfilter.${name}=1)${sc.netns ? ` in network namespace ${sc.netns}` : ''}`);
    } catch (e) {
      log.warn(`source ${sc.name}: could not turn on net.netfilter.${name}: ${(e as Error).message}`);
    }
  }
  // nf_conntrack_events = 1: every new entry gets the kernel's event cache,
  // also while no listener runs; with the default (2) an entry created then
  // never reports anything, its DESTROY included.
  if (!withFlows || !sc.enable_events) return;
  const name = 'net.netfilter.nf_conntrack_events';
  try {
    const cur = native().readSysctl(sc.netns ?? '', [name])[0];
    if (cur?.trim() === '1') return;
    native().writeSysctl(sc.netns ?? '', name, '1');
    log.info(`source ${sc.name}: set ${name}=1 (was ${cur ?? 'unknown'})${sc.netns ? ` in network namespace ${sc.netns}` : ''}: connections that begin while no listener runs (the daemon restarting) still report their end`);
  } catch (e) {
    log.warn(`source ${sc.name}: could not set ${name}=1 (${(e as Error).message}): connections that begin while the daemon is not running will not report their end; dumps will find it`);
  }
}

export class ConntrackSource implements Source<'event'> {
  readonly kind = 'event' as const;
  readonly name: string;
  readonly sock: ConntrackEventSource;
  hooks: ConntrackHooks = {};
  private out: SourceOut<FlowEvent> | undefined;
  private reportedOverruns = 0;
  private kernelDrops = 0;
  private resyncs = 0;
  resyncing = false;
  /** an overrun during a resync: another one follows */
  private again = false;
  /** the entries of the running dump go to the sinks too */
  private dumpToSinks = false;
  /** when events may first have been lost, for the loss not yet recovered (µs) */
  private lossFrom: number | undefined;
  private halted = false;
  /** events received per type (before filters) */
  readonly byType: Record<FlowEvent['type'], number> = { NEW: 0, UPDATE: 0, DESTROY: 0, DUMP: 0 };

  /** Opens the socket (synchronous: no event is read before start). */
  constructor(readonly config: ConntrackSourceConfig, filter: FlowFilter, private readonly log: SourceLog) {
    this.name = config.name;
    try {
      this.sock = new ConntrackEventSource({
        netns: config.netns, rcvbuf: config.buffer_size, filter, coalesceMs: config.batch_delay_ms, reliable: config.reliable,
      });
    } catch (e) {
      throw explainSocketError(e, config.netns);
    }
    const got = this.sock.rcvbuf;
    const short = rcvbufShortfall(config.name, config.buffer_size, got);
    if (short) log.warn(short);
    log.info(`source ${config.name}: listening to conntrack ${config.events.join(',')} events` +
      `${config.netns ? ` in network namespace ${config.netns}` : ''} (receive buffer ${got} bytes` +
      `${this.sock.filterInsns ? `, socket filter of ${this.sock.filterInsns} instructions` : ''})`);
  }

  start(out: SourceOut<FlowEvent>): Promise<void> {
    this.out = out;
    const byType = this.byType;
    this.sock.start({
      event: (ev) => {
        byType[ev.type]++;
        out.record(ev, ev.type !== 'DUMP' || this.dumpToSinks);
      },
      overrun: () => this.onOverrun(true),
      batchEnd: () => out.batchEnd(),
    }, (err) => this.log.error(`source ${this.name}: ${explainSocketError(err, this.config.netns).message}`));
    return Promise.resolve();
  }

  pause(): void { this.sock.pause(); }
  resume(): void { this.sock.resume(); }

  tick(): void {
    // an overrun the batches did not report (nothing to read after it)
    if (this.sock.sock.stats().enobufs > this.reportedOverruns) this.onOverrun(true);
  }

  /**
   * An overrun, handled at once: one warning with the counts, a receive
   * buffer as large as the burst needed (up to buffer_max), and a resync.
   * With `recover` false (stopping) it only reports.
   */
  private onOverrun(recover: boolean): void {
    if (this.halted) return;
    const c = this.config;
    const st = this.sock.sock.stats();
    const n = st.enobufs - this.reportedOverruns;
    if (n <= 0) return;
    this.reportedOverruns = st.enobufs;
    const loss = this.sock.takeLoss();
    if (loss.from > 0 && (this.lossFrom === undefined || loss.from < this.lossFrom)) this.lossFrom = loss.from;
    this.lossFrom ??= nowMicros();
    this.hooks.lossStarted?.(this.lossFrom);
    const drops = Math.max(0, st.kernelDrops - this.kernelDrops);
    this.kernelDrops = Math.max(this.kernelDrops, st.kernelDrops);
    const grown = this.sock.growForBurst(drops, EVENT_TRUESIZE, c.buffer_max, recover);
    this.log.warn(`source ${this.name}: netlink overrun (ENOBUFS) x${n}, kernel dropped ${st.kernelDrops} events so far${grown}` +
      `${recover && c.resync ? '; resyncing from a table dump' : ''}`);
    if (recover && c.resync) this.sync('resync', true);
    // not recovered by a dump: the time events may have been lost is a gap in the trail now
    else this.recordLoss(recover ? 'events lost (netlink overrun); resync is off' : 'events lost (netlink overrun) as the daemon stopped');
  }

  /** Events may have been lost from s.lossFrom until now, and were not recovered. */
  private recordLoss(reason: string): void {
    if (this.lossFrom === undefined) return;
    this.hooks.gap?.(this.lossFrom, nowMicros(), reason);
    this.lossFrom = undefined;
  }

  /**
   * A loss that happened elsewhere (the socket this one replaces, at a
   * reload, still held events unread from `since` on): recovered by a resync.
   */
  recoverFrom(since: number): void {
    this.lossFrom = since;
    this.hooks.lossStarted?.(since);
    this.sync('resync', false);
  }

  /**
   * Dumps the table on the source's own socket: the entries pass through
   * the same path as events (to the sinks when `toSinks`, as DUMP records)
   * and tell the flow table which flows are still open; those it was
   * following that the dump no longer has ended unseen after `lossFrom`.
   */
  sync(why: SyncWhy, toSinks: boolean, lossFrom?: number): void {
    if (this.resyncing) { this.again = true; return; }
    this.resyncing = true;
    this.again = false;
    this.dumpToSinks = toSinks;
    const from = why === 'resync' ? this.lossFrom : lossFrom;
    const before = this.byType.DUMP;
    this.hooks.syncBegin?.();
    this.sock.dump()
      .then(() => {
        const done = nowMicros();
        if (why === 'resync') this.resyncs++;
        const missing = this.hooks.syncEnd?.(why, done, from) ?? 0;
        if (why === 'resync' && from !== undefined) this.hooks.gap?.(from, done, 'events lost (netlink overrun)');
        // the loss is recovered unless events were lost again meanwhile
        if (why === 'resync' && !this.again) this.lossFrom = undefined;
        const said = `source ${this.name}: ${why} done, ${this.byType.DUMP - before} table entries ${toSinks ? 'passed on' : 'read'}` +
          (missing ? `; ${missing} flows no longer in the table will be ended (their DESTROY was not seen)` : '');
        if (why === 'check') this.log.debug(said); else this.log.info(said);
      })
      .catch((e: Error) => {
        if (!this.halted) this.log.error(`source ${this.name}: ${why} failed: ${e.message}`);
        if (why === 'resync') this.recordLoss(`events lost (netlink overrun); the resync ${this.halted ? 'was cut short as the daemon stopped' : `failed: ${e.message}`}`);
      })
      .finally(() => {
        this.resyncing = false;
        this.dumpToSinks = false;
        this.out?.batchEnd();
        if (this.again && !this.halted) this.sync('resync', true);
      });
  }

  /** When the events this socket still holds unread may date from (µs): now, if it holds none. */
  unreadSince(): number {
    const now = nowMicros();
    const q = this.sock.sock.stats();
    return q.rmemAlloc !== 0 && q.lastEmptyUs > 0 ? Math.min(now, q.lastEmptyUs) : now;
  }

  stopping(): void {
    if (this.sock.sock.stats().enobufs > this.reportedOverruns) this.onOverrun(false);
    this.halted = true;
    // a loss a resync has not recovered yet stays a gap
    this.recordLoss('events lost (netlink overrun); the resync was cut short as the daemon stopped');
  }

  stats(): ConntrackStats {
    const s = this.sock.stats();
    const b = this.byType;
    return {
      ...s, name: this.name, type: 'conntrack', resyncs: this.resyncs, byType: { ...b },
      // events: NEW, UPDATE and DESTROY (the table entries of dumps on the same socket are counted apart)
      events: b.NEW + b.UPDATE + b.DESTROY, dumped: b.DUMP, records: b.NEW + b.UPDATE + b.DESTROY + b.DUMP,
    };
  }

  close(): void {
    this.halted = true;
    this.sock.close();
  }
}
