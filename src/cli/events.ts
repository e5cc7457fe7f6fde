// `conntrail events`: the live conntrack event stream, like `conntrack -E`.
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { ConntrackEventSource, DEFAULT_RCVBUF, type SourceStats } from '../sources/conntrack/socket.js';
import { RCVBUF_MAX, RCVBUF_MIN } from '../config/schema.js';
import { compileMatcher } from '../pipeline/filter.js';
import { LineWriter } from '../util/output.js';
import { runLive } from './live.js';
import { notForExpect, parseTable, refuseOptions, runEventsExpect } from './tables.js';
import type { FlowEvent } from '../records/event.js';
import { explainSocketError } from '../util/errors.js';
import { addFilterOptions, buildFilter, buildFormatter, type FilterCliOptions } from './options.js';
import { BPF_MAXINSNS, socketFilterSize } from '../sources/conntrack/filter.js';

interface EventsOptions extends FilterCliOptions {
  bufferSize: number;
  count?: number;
  batchDelay: number;
  kernelFilter: boolean;
}

/** commander: an integer option from `min` to `max` (both documented in --help) */
export function positiveInt(what: string, min = 1, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      throw new InvalidArgumentError(`"${v}" is not ${what} (an integer from ${min} to ${max})`);
    }
    return Number(v);
  };
}

/** most the kernel grants: it doubles SO_RCVBUF after capping it at INT_MAX / 2 */
const KERNEL_RCVBUF_CAP = 0x3fffffff;

/**
 * The warning when the kernel granted less receive buffer than asked, or
 * undefined. `granted` is getsockopt(SO_RCVBUF): twice the usable size.
 */
export function rcvbufWarning(asked: number, granted: number, rmemMax: number | undefined): string | undefined {
  const usable = Math.floor(granted / 2);
  if (usable >= Math.min(asked, KERNEL_RCVBUF_CAP)) return undefined;
  const why = rmemMax !== undefined && usable <= rmemMax
    ? `without CAP_NET_ADMIN, SO_RCVBUF is capped by net.core.rmem_max = ${rmemMax}; raise it or run with CAP_NET_ADMIN`
    : 'the kernel\'s limit';
  return `conntrail: WARNING: netlink receive buffer: asked for ${asked} bytes, granted ${usable} (${why}); overruns come sooner`;
}

function rmemMax(): number | undefined {
  try {
    const n = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());
    return Number.isSafeInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

export function statsLine(shown: number, s: SourceStats): string {
  return `conntrail: stats shown=${shown} events=${s.events} datagrams=${s.datagrams} bytes=${s.bytes} ` +
    `batches=${s.batches} overflows=${s.enobufs} kernel_drops=${s.kernelDrops} truncated=${s.truncated} ` +
    `malformed=${s.malformed} unknown=${s.unknown} rcvbuf=${s.rcvbuf} filter_insns=${s.filterInsns}`;
}

export function eventsCommand(): Command {
  const cmd = new Command('events')
    .description('print conntrack events (NEW, UPDATE, DESTROY) as they happen, like conntrack -E')
    .argument('[table]', 'conntrack (the default) or expect (the expectations\' events): as conntrack -E [table], a prefix will do');
  addFilterOptions(cmd, true)
    .option('-b, --buffer-size <bytes>', `netlink receive buffer to ask for, ${RCVBUF_MIN} to ${RCVBUF_MAX} (1 GiB)`, positiveInt('a size in bytes', RCVBUF_MIN, RCVBUF_MAX), DEFAULT_RCVBUF)
    .option('--count <n>', 'exit after printing N events (1 or more)', positiveInt('a count'))
    .option('--batch-delay <ms>', 'after a wake-up, wait this long before reading again, 0 to 1000 (fewer wake-ups at low rates)', positiveInt('milliseconds', 0, 1000), 1)
    .option('--no-kernel-filter', 'evaluate every filter in user space instead of a socket filter')
    .action((table: string | undefined, o: EventsOptions, c: Command) => {
      if (parseTable(table, 'events') === 'conntrack') return runEvents(o);
      refuseOptions(c, ['output', 'netns', 'stats', 'format', 'bufferSize', 'count', 'batchDelay', 'kernelFilter'], notForExpect);
      return runEventsExpect(o);
    });
  return cmd;
}

export async function runEvents(o: EventsOptions): Promise<void> {
  const filter = buildFilter(o);
  const format = buildFormatter(o);
  const out = new LineWriter(1);
  let src: ConntrackEventSource;
  // a socket filter larger than the kernel takes: the same filters in user space
  const userSpace = !o.kernelFilter || socketFilterSize(filter) > BPF_MAXINSNS;
  try {
    src = new ConntrackEventSource({
      netns: o.netns, rcvbuf: o.bufferSize, filter, coalesceMs: o.batchDelay, noKernelFilter: userSpace,
    });
  } catch (e) {
    throw explainSocketError(e, o.netns);
  }
  const short = rcvbufWarning(o.bufferSize, src.rcvbuf, rmemMax());
  if (short) process.stderr.write(short + '\n');
  const match = compileMatcher(filter, src.kernelFiltered);
  let reportedEnobufs = 0;
  await runLive<FlowEvent>({
    start: (h, onError) => src.start({ event: h.record, batchEnd: h.batchEnd }, onError),
    accept: match,
    emit: (ev) => out.line(format(ev)),
    flush: () => out.flush(),
    closeOutput: () => {
      const end = format.end?.();
      if (end !== undefined) out.line(end);
      out.flush();
    },
    warn: (final) => {
      const s = src.sock.stats();
      if (s.enobufs > reportedEnobufs) {
        process.stderr.write(`conntrail: WARNING: netlink overrun (ENOBUFS) x${s.enobufs - reportedEnobufs}, ` +
          `kernel dropped ${s.kernelDrops} events${final ? '' : ' so far'}; raise --buffer-size (granted ${src.rcvbuf})\n`);
        reportedEnobufs = s.enobufs;
      }
    },
    close: (shown) => {
      const s = src.stats();
      src.close();
      return o.stats ? statsLine(shown, s) : undefined;
    },
    limit: o.count ?? Infinity,
    netns: o.netns,
  });
}
