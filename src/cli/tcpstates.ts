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

interface TcpstatesCliOptions {
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
  return new Command('tcpstates')
    .description('print TCP state changes with the process current at each, as libbpf-tools\' tcpstates does (eBPF; needs CAP_BPF and CAP_PERFMON)')
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
    .addHelpText('after', `
The process is the one current when the kernel changed the state: for changes
made on receipt of a packet (a passive open's SYN_RECV -> ESTABLISHED, a reset)
that is often pid 0 (swapper) or an unrelated task, as with tcpstates.`)
    .action((o: TcpstatesCliOptions) => runTcpstates(o));
}

export async function runTcpstates(o: TcpstatesCliOptions): Promise<void> {
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
