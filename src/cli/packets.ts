// `conntrail packets`: the packets NFLOG rules log (nftables `log group N`,
// iptables `-j NFLOG --nflog-group N`), printed live as they come, like
// ulogd2's NFLOG stacks.
import { Command, InvalidArgumentError } from 'commander';
import { RCVBUF_MAX, RCVBUF_MIN } from '../config/schema.js';
import { NFLOG_DEFAULT_RCVBUF, NflogSource, type NflogStats } from '../sources/nflog/source.js';
import { makePacketFormatter, PACKET_FORMATS, type PacketFormatName } from '../formats/packet/index.js';
import { ClosedOutputError, LineWriter } from '../util/output.js';
import { closeSync, openSync, writeSync } from 'node:fs';
import { pcapFileHeader, pcapRecordNflog, pcapRecordRaw, type PcapLinktype } from '../formats/packet/pcap.js';
import { explainSocketError, UsageError } from '../util/errors.js';
import { positiveInt, rcvbufWarning } from './events.js';
import { checkNetns } from './options.js';

interface PacketsOptions {
  group: number[];
  netns?: string;
  format: PacketFormatName;
  copyRange: number;
  qthreshold: number;
  timeout: number;
  bufferSize: number;
  conntrack: boolean;
  count?: number;
  batchDelay: number;
  stats?: boolean;
  hwhdr?: boolean;
  write?: string;
  linktype: PcapLinktype;
}

/** pcap records to a file, written at the end of each batch */
class PcapOut {
  private readonly fd: number;
  private pending: Buffer[] = [];
  constructor(path: string, private readonly linktype: PcapLinktype) {
    try {
      this.fd = path === '-' ? 1 : openSync(path, 'w', 0o640);
    } catch (e) {
      throw new UsageError(`--write: cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    writeSync(this.fd, pcapFileHeader(linktype));
  }
  add(p: Parameters<typeof pcapRecordRaw>[0]): void {
    this.pending.push(this.linktype === 'nflog' ? pcapRecordNflog(p) : pcapRecordRaw(p));
  }
  flush(): void {
    if (!this.pending.length) return;
    const b = Buffer.concat(this.pending);
    this.pending = [];
    let off = 0;
    while (off < b.length) off += writeSync(this.fd, b, off);
  }
  close(): void {
    this.flush();
    if (this.fd !== 1) closeSync(this.fd);
  }
}

const groupArg = (v: string, prev: number[] = []): number[] => {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new InvalidArgumentError(`"${v}" is not an NFLOG group (an integer from 0 to 65535)`);
  if (prev.includes(Number(v))) throw new InvalidArgumentError(`group ${v} is given twice`);
  return [...prev, Number(v)];
};

export function packetsStatsLine(shown: number, s: NflogStats): string {
  return `conntrail: stats shown=${shown} packets=${s.packets} seq_gaps=${s.seqGaps} datagrams=${s.datagrams} bytes=${s.bytes} ` +
    `overflows=${s.enobufs} kernel_drops=${s.kernelDrops} truncated_datagrams=${s.truncated} truncated_packets=${s.truncatedPackets} ` +
    `malformed=${s.malformed} unknown=${s.unknown} rcvbuf=${s.rcvbuf}`;
}

export function packetsCommand(): Command {
  return new Command('packets')
    .description('print the packets NFLOG rules log (nft "log group N", iptables -j NFLOG), as they come')
    .option('-g, --group <n>', 'NFLOG group to bind, 0 to 65535 (repeat for several)', groupArg)
    .option('-n, --netns <name>', 'read the packets of this network namespace (ip netns name or a path)')
    .option('-f, --format <name>', `output format: ${PACKET_FORMATS.join(', ')}`, (v: string) => {
      if (!(PACKET_FORMATS as readonly string[]).includes(v)) throw new InvalidArgumentError(`"${v}" is not a packet format (${PACKET_FORMATS.join(', ')})`);
      return v;
    }, 'logemu')
    .option('--copy-range <bytes>', 'bytes of each packet to copy, 0 to 65535 (0: all)', positiveInt('a size in bytes', 0, 65535), 0)
    .option('--qthreshold <n>', 'packets the kernel gathers into one message, 1 to 65535', positiveInt('a count', 1, 65535), 1)
    .option('--timeout <ms>', 'longest the kernel holds gathered packets, 0 to 60000 ms (in 10 ms steps)', positiveInt('milliseconds', 0, 60000), 0)
    .option('-b, --buffer-size <bytes>', `netlink receive buffer to ask for, ${RCVBUF_MIN} to ${RCVBUF_MAX}`, positiveInt('a size in bytes', RCVBUF_MIN, RCVBUF_MAX), NFLOG_DEFAULT_RCVBUF)
    .option('--no-conntrack', 'do not ask for each packet\'s conntrack entry')
    .option('--count <n>', 'exit after printing N packets (1 or more)', positiveInt('a count'))
    .option('--batch-delay <ms>', 'after a wake-up, wait this long before reading again, 0 to 1000', positiveInt('milliseconds', 0, 1000), 1)
    .option('--hwhdr', 'ulogd-json: as the stack with HWHDR (the mac.* keys)')
    .option('-w, --write <file>', 'write a pcap file instead of lines ("-": stdout)')
    .option('--linktype <type>', 'with --write: raw (the IP packet, as ulogd\'s PCAP output) or nflog (the NFLOG message, as tcpdump -i nflog:N)', (v: string) => {
      if (v !== 'raw' && v !== 'nflog') throw new InvalidArgumentError(`"${v}" is not a pcap link type (raw, nflog)`);
      return v;
    }, 'raw')
    .option('--stats', 'print the counters to stderr at exit')
    .action((o: PacketsOptions) => runPackets(o));
}

export async function runPackets(o: PacketsOptions): Promise<void> {
  if (!o.group?.length) throw new UsageError('packets: --group is required (the NFLOG group of the log rule, e.g. --group 32)');
  if (o.netns !== undefined) checkNetns(o.netns, '--netns');
  const format = makePacketFormatter({ format: o.format, netns: o.netns, hwhdr: o.hwhdr });
  const pcap = o.write !== undefined ? new PcapOut(o.write, o.linktype) : undefined;
  const out = new LineWriter(1);
  let src: NflogSource;
  try {
    src = new NflogSource({
      netns: o.netns, groups: o.group, copyRange: o.copyRange || 0xffff, qthreshold: o.qthreshold, keepRaw: pcap !== undefined && o.linktype === 'nflog',
      timeoutMs: o.timeout, rcvbuf: o.bufferSize, conntrack: o.conntrack, coalesceMs: o.batchDelay,
    });
  } catch (e) {
    throw explainSocketError(e, o.netns);
  }
  const short = rcvbufWarning(o.bufferSize, src.rcvbuf, undefined);
  if (short) process.stderr.write(short + '\n');
  const limit = o.count ?? Infinity;
  let shown = 0;
  let stopped = false;
  let reported = { overruns: 0, gaps: 0 };
  const warn = () => {
    const s = src.stats();
    if (s.enobufs > reported.overruns || s.seqGaps > reported.gaps) {
      process.stderr.write(`conntrail: WARNING: packets lost: netlink overrun (ENOBUFS) x${s.enobufs - reported.overruns}, ` +
        `${s.seqGaps - reported.gaps} missing by sequence number (${s.seqGaps} so far); raise --buffer-size (granted ${src.rcvbuf}) or --qthreshold\n`);
      reported = { overruns: s.enobufs, gaps: s.seqGaps };
    }
  };

  await new Promise<void>((resolve, reject) => {
    const warnTimer = setInterval(warn, 1000);
    warnTimer.unref();
    const finish = (err?: Error) => {
      if (stopped) return;
      stopped = true;
      clearInterval(warnTimer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      try {
        out.flush();
        pcap?.close();
      } catch (e) {
        if (!(e instanceof ClosedOutputError) && (e as NodeJS.ErrnoException).code !== 'EPIPE') err ??= e as Error;
      }
      warn();
      const s = src.stats();
      src.close();
      if (o.stats) process.stderr.write(packetsStatsLine(shown, s) + '\n');
      if (err) reject(explainSocketError(err, o.netns)); else resolve();
    };
    const onSignal = () => finish();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    src.start({
      packet(p) {
        if (stopped) return;
        try {
          if (pcap) pcap.add(p); else out.line(format(p));
        } catch (e) {
          finish(e instanceof ClosedOutputError ? undefined : (e as Error));
          return;
        }
        if (++shown >= limit) finish();
      },
      batchEnd() {
        if (stopped) return;
        try {
          out.flush();
          pcap?.flush();
        } catch (e) {
          finish(e instanceof ClosedOutputError || (e as NodeJS.ErrnoException).code === 'EPIPE' ? undefined : (e as Error));
        }
      },
    }, (err) => finish(err)).catch((err: Error) => finish(err));
  });
}
