// conntrail tcpstates: every TCP socket's state changes with the process
// current at each, as libbpf-tools' tcpstates prints them (its columns,
// -T, -w, -4, -6, -L, -D), from the CO-RE eBPF program the addon loads;
// plus filters the kernel applies (--netns, --pid, --comm).
import { Command, InvalidArgumentError } from 'commander';
import { LineWriter } from '../util/output.js';
import { FatalError, UsageError } from '../util/errors.js';
import { runLive } from './live.js';
import { positiveInt } from './events.js';
import type { TcpStateChange } from '../records/tcpstate.js';
import { formatTcpstates, tcpstateJournalFields, tcpstatesHeader } from '../formats/tcpstates.js';
import { encodeJournal } from '../formats/journal.js';
import { JOURNAL_SOCKET } from '../sinks/journal.js';
import { native } from '../netlink/native.js';
import { netnsInode, TcpstatesError, TcpstatesSource, type TcpstatesStats } from '../sources/tcpstates/source.js';
import { TCP_STATE_NAMES } from '../records/tcpstate.js';
import { addStoreOptions, openReader, query, type StoreCliOptions } from './store-open.js';
import { cidrList, intOpt, portList, searchWindow } from './search-options.js';
import { MAX_HOSTS, MAX_LIMIT, MAX_PORTS, noTcpStates } from './flows.js';
import { collect, list } from './options.js';
import { isoTime } from '../util/time.js';
import { tcpStateJson, tcpStatesCsv, tcpStatesTable } from './tcpstatefmt.js';

interface TcpstatesCliOptions extends StoreCliOptions {
  since?: string; until?: string; host?: string[]; port?: string[]; state?: string[]; limit: string; json?: boolean;
  timestamp?: boolean;
  elapsed?: boolean;
  csv?: boolean;
  journal?: boolean;
  wide?: boolean;
  ipv4?: boolean;
  ipv6?: boolean;
  localport?: number[];
  remoteport?: number[];
  netns?: string;
  pid?: number;
  comm?: string;
  count?: number;
  stats?: boolean;
  batchDelay: number;
}

/** "80,443" (repeatable) -> ports, 1 to 65535 */
const portsArg = (name: string) => (v: string, prev: number[] = []): number[] => {
  const out = [...prev];
  for (const p of v.split(',')) {
    if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw new InvalidArgumentError(`"${p}" is not a ${name} port (1 to 65535; a comma-separated list)`);
    out.push(Number(p));
  }
  return out;
};

export function tcpstatesStatsLine(shown: number, s: TcpstatesStats): string {
  return `conntrail: stats shown=${shown} changes=${s.records} drops=${s.drops} missed=${s.missed} batches=${s.batches} wakeups=${s.wakeups} malformed=${s.malformed}`;
}

export function tcpstatesCommand(): Command {
  return addStoreOptions(new Command('tcpstates')
    .description('print TCP state changes with the process current at each, as libbpf-tools\' tcpstates does (eBPF; needs CAP_BPF and CAP_PERFMON); or search those the daemon stored (--db, --postgres, --config)')
    .option('-T, --timestamp', 'include a time column (HH:MM:SS)')
    .option('-t, --elapsed', 'include a column with the seconds since the first change shown (BCC\'s -t)')
    .option('-w, --wide', 'wide columns (fit IPv6 addresses)')
    .option('-s, --csv', 'comma-separated values (BCC\'s -s)')
    .option('-Y, --journal', 'also log each change to the systemd journal, with tcpstates\' fields (OBJECT_PID, OBJECT_TCP_OLD_STATE, ...)')
    .option('-4, --ipv4', 'IPv4 only')
    .option('-6, --ipv6', 'IPv6 only')
    .option('-L, --localport <ports>', 'only these local ports (comma-separated, repeatable)', portsArg('local'))
    .option('-D, --remoteport <ports>', 'only these remote ports (comma-separated, repeatable)', portsArg('remote'))
    .option('-n, --netns <name>', 'only sockets of this network namespace (ip netns name, a path, or its inode number)')
    .option('--pid <pid>', 'only changes while this process is current', positiveInt('a process id', 1))
    .option('--comm <name>', 'only changes while a task with this command is current (at most 15 bytes)')
    .option('--count <n>', 'exit after printing N changes (1 or more)', positiveInt('a count'))
    .option('--batch-delay <ms>', 'after a wake-up, wait this long before reading again, 0 to 1000 (fewer wake-ups under load)', positiveInt('milliseconds', 0, 1000), 1)
    .option('--stats', 'print the counters to stderr at exit')
    .option('--since <time>', 'search: changes at or after the start of this time (ISO 8601, @EPOCH, "now", "-1h"); default: all')
    .option('--until <time>', 'search: changes up to the end of this time; default: now')
    .option('--host <cidr>', 'search: local or remote address in this address or CIDR (repeatable)', collect)
    .option('--port <port>', `search: this local or remote port (repeatable, at most ${MAX_PORTS})`, collect)
    .option('--state <name>', 'search: changes into these states, e.g. ESTABLISHED (repeatable, comma-separated)', collect)
    .option('--limit <n>', `search: at most this many changes, the newest, 0 to ${MAX_LIMIT} (0: all)`, '100')
    .option('--json', 'search: JSON output (one array); -s: CSV'), true)
    .addHelpText('after', `
The process is the one current when the kernel changed the state: for changes
made on receipt of a packet (a passive open's SYN_RECV -> ESTABLISHED, a reset)
that is often pid 0 (swapper) or an unrelated task, as with tcpstates.

Search (with --db, --postgres or --config): the changes the daemon stored (a
tcpstates source with store = true), oldest first, filtered by --since, --until,
--host, --port, --pid, --comm and --state; HOLDER "yes" marks the changes only
the socket's holder makes (connect, listen, close, shutdown).`)
    .action((o: TcpstatesCliOptions) => (o.db !== undefined || o.postgres !== undefined || o.config !== undefined ? searchTcpstates(o) : runTcpstates(o)));
}

const SEARCH_ONLY = ['since', 'until', 'host', 'port', 'state', 'json'] as const;
const LIVE_ONLY = { timestamp: '-T', elapsed: '-t', wide: '-w', journal: '-Y', ipv4: '-4', ipv6: '-6', localport: '-L', remoteport: '-D', netns: '--netns', count: '--count', stats: '--stats' } as const;

async function searchTcpstates(o: TcpstatesCliOptions): Promise<void> {
  for (const [k, f] of Object.entries(LIVE_ONLY)) if (o[k as keyof typeof LIVE_ONLY] !== undefined) throw new UsageError(`${f}: applies to live changes (without --db, --postgres or --config)`);
  if (o.json && o.csv) throw new UsageError('--json and -s: choose one');
  const { since, until } = searchWindow(o);
  const hosts = cidrList(o.host, '--host');
  if (hosts.length > MAX_HOSTS) throw new UsageError(`--host: ${hosts.length} values, at most ${MAX_HOSTS} (use CIDRs)`);
  const states = [...new Set(list(o.state, '--state').map((v) => {
    const i = TCP_STATE_NAMES.indexOf(v.toUpperCase());
    if (i <= 0) throw new UsageError(`--state: "${v}" is not a TCP state (${TCP_STATE_NAMES.filter((n) => n && n !== 'UNKNOWN').join(', ')})`);
    return i;
  }))];
  const limit = intOpt(o.limit, '--limit', MAX_LIMIT)!;
  const store = await openReader(o);
  await query(store, 'tcpstates', async () => {
    try {
      const ns = await store.namespaces();
      const rows = await store.tcpStates({
        since, until, hosts, ports: portList(o.port, '--port', MAX_PORTS), pids: o.pid !== undefined ? [o.pid] : [],
        comms: o.comm !== undefined ? [o.comm] : [], states, limit: limit === 0 ? undefined : limit,
      });
      rows.reverse(); // oldest first
      for (const g of await store.gaps(since, until, 'tcpstates')) {
        process.stderr.write(`conntrail: warning: the trail of TCP state changes has a gap: ${isoTime(g.since)} to ${isoTime(g.until)}: ${g.reason}: changes of then may be missing\n`);
      }
      process.stdout.write(o.json ? JSON.stringify(rows.map((r) => tcpStateJson(r, ns)), null, 2) + '\n' : o.csv ? tcpStatesCsv(rows, ns) : tcpStatesTable(rows, ns));
    } catch (e) {
      throw noTcpStates(e);
    }
  });
}

export async function runTcpstates(o: TcpstatesCliOptions): Promise<void> {
  for (const k of SEARCH_ONLY) if (o[k] !== undefined) throw new UsageError(`--${k}: applies to a search of the stored changes (with --db, --postgres or --config)`);
  if (o.ipv4 && o.ipv6) throw new UsageError('tcpstates: -4 and -6 exclude each other');
  if (o.comm !== undefined && (o.comm.length === 0 || Buffer.byteLength(o.comm, 'utf8') > 15)) throw new UsageError(`--comm: "${o.comm}" is not a command name (1 to 15 bytes, as the kernel keeps it)`);
  let ns: number | undefined;
  try {
    ns = o.netns !== undefined ? netnsInode(o.netns) : undefined;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let src: TcpstatesSource;
  try {
    src = new TcpstatesSource({ family: o.ipv4 ? 2 : o.ipv6 ? 10 : undefined, sports: o.localport, dports: o.remoteport, pid: o.pid, comm: o.comm, netnsInode: ns, batchDelayMs: o.batchDelay });
  } catch (e) {
    if (e instanceof TcpstatesError) throw new FatalError(e.message);
    throw e;
  }
  const fmt = { wide: o.wide, time: o.timestamp, elapsed: o.elapsed, csv: o.csv };
  const out = new LineWriter(1);
  const root = process.getuid?.() === 0;
  let since: number | undefined;
  let journalErrors = 0;
  const toJournal = (r: TcpStateChange) => {
    try {
      native().unixDatagramSend(JOURNAL_SOCKET, encodeJournal(tcpstateJournalFields(r, root)));
    } catch (e) {
      // counted (--stats: journal_errors=); said once
      if (journalErrors++ === 0) process.stderr.write(`conntrail: WARNING: -Y: ${JOURNAL_SOCKET}: ${(e as Error).message}; the changes it refuses are counted, not logged to the journal\n`);
    }
  };
  let reportedDrops = 0;
  await runLive<TcpStateChange>({
    start: (h, onError) => {
      src.start(h, onError);
      // as tcpstates: the header once the program is attached
      out.line(tcpstatesHeader(fmt));
      out.flush();
    },
    emit: (r) => {
      since ??= r.time;
      out.line(formatTcpstates(r, fmt, since));
      if (o.journal) toJournal(r);
    },
    flush: () => out.flush(),
    closeOutput: () => out.flush(),
    drain: () => src.drain(),
    warn: () => {
      const d = src.drops();
      if (d > reportedDrops) {
        process.stderr.write(`conntrail: WARNING: ${d - reportedDrops} TCP state changes lost: the ring buffer was full, or the kernel skipped the program (${d} so far; --stats: drops=, missed=)\n`);
        reportedDrops = d;
      }
    },
    close: (shown) => {
      const s = src.stats();
      src.close();
      return o.stats ? tcpstatesStatsLine(shown, s) + (o.journal ? ` journal_errors=${journalErrors}` : '') : undefined;
    },
    limit: o.count ?? Infinity,
  });
}
