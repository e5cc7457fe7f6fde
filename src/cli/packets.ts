// `conntrail packets`: the packets NFLOG rules log (nftables `log group N`,
// iptables `-j NFLOG --nflog-group N`), printed live as they come, like
// ulogd2's NFLOG stacks.
import { Command, InvalidArgumentError } from 'commander';
import { RCVBUF_MAX, RCVBUF_MIN } from '../config/schema.js';
import { NFLOG_DEFAULT_RCVBUF, nflogLossText, NflogSource, type NflogStats } from '../sources/nflog/source.js';
import { makePacketFormatter, PACKET_FORMATS, type PacketFormatName } from '../formats/packet/index.js';
import { LineWriter } from '../util/output.js';
import { isoTime } from '../util/time.js';
import { runLive } from './live.js';
import type { PacketLog } from '../records/packet.js';
import { closeSync, openSync, writeSync } from 'node:fs';
import { pcapFileHeader, pcapRecordNflog, pcapRecordRaw, type PcapLinktype } from '../formats/packet/pcap.js';
import { explainSocketError, UsageError } from '../util/errors.js';
import { positiveInt, rcvbufWarning } from './events.js';
import { checkNetns, collect, list } from './options.js';
import { Option } from 'commander';
import { addStoreOptions, openReader, query, type StoreCliOptions } from './store-open.js';
import { cidrList, intOpt, portList, protoList, searchWindow } from './search-options.js';
import { MAX_HOSTS, MAX_LIMIT, MAX_PORTS } from './flows.js';
import { HOOK_NAMES, NFLOG_DEFAULT_QTHRESHOLD } from '../sources/nflog/constants.js';
import type { PacketSearch, PacketTopKey } from '../store/packets.js';
import { packetJson, packetsCsv, packetsTable, packetTopCsv, packetTopTable } from './packetfmt.js';

interface PacketsOptions extends StoreCliOptions {
  group: number[];
  since?: string; until?: string; prefix?: string[]; hook?: string[]; iface?: string[]; host?: string[]; src?: string[]; dst?: string[];
  port?: string[]; proto?: string[]; limit: string; top?: PacketTopKey; json?: boolean; csv?: boolean;
  netns?: string;
  format: PacketFormatName;
  copyRange: number;
  qthreshold: number;
  nlbufsiz?: number;
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
  return addStoreOptions(new Command('packets')
    .description('print the packets NFLOG rules log (nft "log group N", iptables -j NFLOG), as they come (--group); or search those the daemon stored')
    .option('-g, --group <n>', 'NFLOG group to bind, 0 to 65535 (repeat for several)', groupArg)
    .option('-n, --netns <name>', 'read the packets of this network namespace (ip netns name or a path)')
    .option('-f, --format <name>', `output format: ${PACKET_FORMATS.join(', ')}`, (v: string) => {
      if (!(PACKET_FORMATS as readonly string[]).includes(v)) throw new InvalidArgumentError(`"${v}" is not a packet format (${PACKET_FORMATS.join(', ')})`);
      return v;
    }, 'logemu')
    .option('--copy-range <bytes>', 'bytes of each packet to copy, 0 to 65535 (0: all)', positiveInt('a size in bytes', 0, 65535), 0)
    .option('--qthreshold <n>', 'packets the kernel gathers into one message at most, 1 to 65535 (1: each at once)', positiveInt('a count', 1, 65535), NFLOG_DEFAULT_QTHRESHOLD)
    .option('--nlbufsiz <bytes>', 'the kernel\'s buffer for one message of gathered packets, 4096 to 131072 (default: the kernel\'s, about 4 KiB)', positiveInt('a size in bytes', 4096, 131072))
    .option('--timeout <ms>', 'longest the kernel holds gathered packets, 0 to 60000 ms (in 10 ms steps; 0: until its next timer tick)', positiveInt('milliseconds', 0, 60000), 0)
    .option('-b, --buffer-size <bytes>', `netlink receive buffer to ask for, ${RCVBUF_MIN} to ${RCVBUF_MAX}`, positiveInt('a size in bytes', RCVBUF_MIN, RCVBUF_MAX), NFLOG_DEFAULT_RCVBUF)
    .option('--no-conntrack', 'do not ask for each packet\'s conntrack entry')
    .option('--count <n>', 'exit after printing N packets (1 or more)', positiveInt('a count'))
    .option('--batch-delay <ms>', 'after a wake-up, wait this long before reading again, 0 to 1000', positiveInt('milliseconds', 0, 1000), 0)
    .option('--hwhdr', 'ulogd-json: as the stack with HWHDR (the mac.* keys)')
    .option('-w, --write <file>', 'write a pcap file instead of lines ("-": stdout)')
    .option('--linktype <type>', 'with --write: raw (the IP packet, as ulogd\'s PCAP output) or nflog (the NFLOG message, as tcpdump -i nflog:N)', (v: string) => {
      if (v !== 'raw' && v !== 'nflog') throw new InvalidArgumentError(`"${v}" is not a pcap link type (raw, nflog)`);
      return v;
    }, 'raw')
    .option('--stats', 'print the counters to stderr at exit')
    .option('--since <time>', 'search: packets logged at or after the start of this time (ISO 8601, @EPOCH, "now", "-1h"); default: all')
    .option('--until <time>', 'search: packets logged up to the end of this time; default: now')
    .option('--prefix <text>', 'search: log prefixes that start with this (repeatable: any of them)', collect)
    .option('--hook <name>', 'search: PREROUTING, INPUT, FORWARD, OUTPUT or POSTROUTING (repeatable, comma-separated)', collect)
    .option('--iface <name>', 'search: in or out interface (repeatable)', collect)
    .option('--host <cidr>', 'search: source or destination in this address or CIDR (repeatable)', collect)
    .option('--src <cidr>', 'search: source in this address or CIDR (repeatable)', collect)
    .option('--dst <cidr>', 'search: destination in this address or CIDR (repeatable)', collect)
    .option('--port <port>', `search: this source or destination port (repeatable, at most ${MAX_PORTS})`, collect)
    .option('-p, --proto <proto>', 'search: only these protocols, names or numbers (repeatable, comma-separated)', collect)
    .option('--limit <n>', `search: at most this many packets, the newest, 0 to ${MAX_LIMIT} (0: all)`, '100')
    .addOption(new Option('--top <what>', 'search: instead of packets, the top sources, destination ports, pairs or prefixes by packets').choices(['hosts', 'ports', 'pairs', 'prefixes']))
    .option('--json', 'search: JSON output (one array)')
    .option('--csv', 'search: CSV output with a header line'))
    .addHelpText('after', `
Live (--group, without --db, --postgres or --config): the packets as the kernel logs them.
Search (without --group, or with --db, --postgres or --config): the packets the daemon stored
(an nflog source with store = true), oldest first; --group then selects groups.`)
    .action((o: PacketsOptions) => (isSearch(o) ? searchPackets(o) : runPackets(o)));
}

const SEARCH_ONLY = ['since', 'until', 'prefix', 'hook', 'iface', 'host', 'src', 'dst', 'port', 'proto', 'top', 'json', 'csv'] as const;
const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;

/** Search the store: a store option, or no --group (live needs one). */
function isSearch(o: PacketsOptions): boolean {
  return o.db !== undefined || o.postgres !== undefined || o.config !== undefined || !o.group?.length;
}

async function searchPackets(o: PacketsOptions): Promise<void> {
  // live-only options mean nothing in a search: refused rather than ignored
  for (const k of ['write', 'count', 'hwhdr', 'netns'] as const) if (o[k] !== undefined) throw new UsageError(`${flag(k)}: applies to live packets (--group without --db, --postgres or --config)`);
  if (o.json && o.csv) throw new UsageError('--json and --csv: choose one');
  const { since, until } = searchWindow(o);
  const hooks = [...new Set(list(o.hook, '--hook').map((h) => {
    const i = HOOK_NAMES.indexOf(h.toUpperCase());
    if (i < 0) throw new UsageError(`--hook: "${h}" is not one of ${HOOK_NAMES.join(', ')}`);
    return i;
  }))];
  const hosts = cidrList(o.host, '--host');
  const srcs = cidrList(o.src, '--src');
  const dsts = cidrList(o.dst, '--dst');
  const n = hosts.length + srcs.length + dsts.length;
  if (n > MAX_HOSTS) throw new UsageError(`--host, --src, --dst: ${n} values, at most ${MAX_HOSTS} in all (use CIDRs)`);
  const prefixes = (o.prefix ?? []).map((p) => {
    if (p === '') throw new UsageError('--prefix: an empty value (every packet has a prefix that starts with it: leave --prefix out)');
    return p;
  });
  if (prefixes.length > MAX_HOSTS) throw new UsageError(`--prefix: ${prefixes.length} values, at most ${MAX_HOSTS}`);
  const limit = intOpt(o.limit, '--limit', MAX_LIMIT)!;
  const s: PacketSearch = {
    since, until, prefixes, hooks, ifaces: list(o.iface, '--iface'), hosts, srcs, dsts, ports: portList(o.port, '--port', MAX_PORTS),
    protos: protoList(o.proto), groups: o.group ?? [], limit: limit === 0 ? undefined : limit,
  };
  let store;
  try {
    store = await openReader(o);
  } catch (e) {
    // `conntrail packets` alone: perhaps live packets were meant
    if (o.db === undefined && o.postgres === undefined && o.config === undefined && e instanceof Error) {
      e.message += ' (live packets: conntrail packets --group N)';
    }
    throw e;
  }
  await query(store, 'packets', async () => {
    try {
      const ns = await store.namespaces();
      if (o.top) {
        const rows = await store.packetTop(s, o.top, limit || 1000000);
        process.stdout.write(o.json ? JSON.stringify(rows, null, 2) + '\n' : o.csv ? packetTopCsv(rows, o.top) : packetTopTable(rows, o.top));
        return;
      }
      const ps = await store.packets(s);
      ps.reverse(); // oldest first
      // packets the kernel logged and conntrail lost, in this time: said, on stderr (stdout stays the answer)
      for (const g of await store.gaps(s.since, s.until, 'packets')) {
        process.stderr.write(`conntrail: warning: the trail of packets has a gap: ${isoTime(g.since)} to ${isoTime(g.until)}: ${g.reason}` +
          `${ns.get(g.ns) ? ` (network namespace ${ns.get(g.ns)})` : ''}: packets of then may be missing\n`);
      }
      process.stdout.write(o.json ? JSON.stringify(ps.map((p) => packetJson(p, ns)), null, 2) + '\n' : o.csv ? packetsCsv(ps, ns) : packetsTable(ps));
    } catch (e) {
      // a store the daemon has not migrated yet (schema 3 and older) has no packets
      if (/no such table: packets|relation "packets" does not exist/.test((e as Error).message)) {
        throw new Error('this store holds no packet logs yet (an older schema: the daemon of this version adds them when it starts)');
      }
      throw e;
    }
  });
}

export async function runPackets(o: PacketsOptions): Promise<void> {
  for (const k of SEARCH_ONLY) if (o[k] !== undefined) throw new UsageError(`${flag(k)}: applies to a search of the stored packets (without --group, or with --db, --postgres or --config)`);
  if (!o.group?.length) throw new UsageError('packets: --group is required (the NFLOG group of the log rule, e.g. --group 32)');
  if (o.netns !== undefined) checkNetns(o.netns, '--netns');
  const format = makePacketFormatter({ format: o.format, netns: o.netns, hwhdr: o.hwhdr });
  const pcap = o.write !== undefined ? new PcapOut(o.write, o.linktype) : undefined;
  const out = new LineWriter(1);
  let src: NflogSource;
  try {
    src = new NflogSource({
      netns: o.netns, groups: o.group, copyRange: o.copyRange || 0xffff, qthreshold: o.qthreshold, nlbufsiz: o.nlbufsiz, keepRaw: pcap !== undefined && o.linktype === 'nflog',
      timeoutMs: o.timeout, rcvbuf: o.bufferSize, conntrack: o.conntrack, coalesceMs: o.batchDelay,
    });
  } catch (e) {
    throw explainSocketError(e, o.netns);
  }
  const short = rcvbufWarning(o.bufferSize, src.rcvbuf, undefined);
  if (short) process.stderr.write(short + '\n');
  let reported = { overruns: 0, gaps: 0, drops: 0 };
  await runLive<PacketLog>({
    start: (h, onError) => src.start({ packet: h.record, batchEnd: h.batchEnd }, onError),
    emit: (p) => { if (pcap) pcap.add(p); else out.line(format(p)); },
    flush: () => { out.flush(); pcap?.flush(); },
    closeOutput: () => { out.flush(); pcap?.close(); },
    warn: () => {
      const s = src.stats();
      // (the kernel says ENOBUFS once per overrun: its count of dropped datagrams tells the rest)
      const dropped = Math.max(0, s.kernelDrops - reported.drops);
      if (s.enobufs > reported.overruns || s.seqGaps > reported.gaps || dropped > 0) {
        process.stderr.write(`conntrail: WARNING: ${nflogLossText(s.enobufs - reported.overruns, dropped, s.seqGaps - reported.gaps, s.seqGaps)}; ` +
          `raise --buffer-size (granted ${src.rcvbuf}) or --qthreshold\n`);
        reported = { overruns: s.enobufs, gaps: s.seqGaps, drops: Math.max(reported.drops, s.kernelDrops) };
      }
    },
    close: (shown) => {
      const s = src.stats();
      src.close();
      return o.stats ? packetsStatsLine(shown, s) : undefined;
    },
    limit: o.count ?? Infinity,
    netns: o.netns,
  });
}
