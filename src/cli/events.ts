// `conntrail events`: the live conntrack event stream, like `conntrack -E`.
import { Command, InvalidArgumentError } from 'commander';
import { ConntrackEventSource, DEFAULT_RCVBUF, type SourceStats } from '../conntrack/source.js';
import { compileMatcher } from '../pipeline/filter.js';
import { ClosedOutputError, LineWriter } from '../util/output.js';
import { explainSocketError } from '../util/errors.js';
import { addFilterOptions, buildFilter, buildFormatter, type FilterCliOptions } from './options.js';

interface EventsOptions extends FilterCliOptions {
  bufferSize: number;
  count?: number;
  batchDelay: number;
  kernelFilter: boolean;
}

export function positiveInt(what: string, min = 1) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
      throw new InvalidArgumentError(`"${v}" is not ${what} (an integer >= ${min})`);
    }
    return Number(v);
  };
}

export function statsLine(shown: number, s: SourceStats): string {
  return `conntrail: stats shown=${shown} events=${s.events} datagrams=${s.datagrams} bytes=${s.bytes} ` +
    `batches=${s.batches} overflows=${s.enobufs} kernel_drops=${s.kernelDrops} truncated=${s.truncated} ` +
    `malformed=${s.malformed} unknown=${s.unknown} rcvbuf=${s.rcvbuf} filter_insns=${s.filterInsns}`;
}

export function eventsCommand(): Command {
  const cmd = new Command('events')
    .description('print conntrack events (NEW, UPDATE, DESTROY) as they happen, like conntrack -E');
  addFilterOptions(cmd, true)
    .option('-b, --buffer-size <bytes>', 'netlink receive buffer to ask for', positiveInt('a size in bytes', 4096), DEFAULT_RCVBUF)
    .option('--count <n>', 'exit after printing N events', positiveInt('a count'))
    .option('--batch-delay <ms>', 'after a wake-up, wait this long before reading again (fewer wake-ups at low rates)', positiveInt('milliseconds', 0), 1)
    .option('--no-kernel-filter', 'evaluate every filter in user space instead of a socket filter')
    .action((o: EventsOptions) => runEvents(o));
  return cmd;
}

export async function runEvents(o: EventsOptions): Promise<void> {
  const filter = buildFilter(o);
  const format = buildFormatter(o);
  const out = new LineWriter(1);
  let src: ConntrackEventSource;
  try {
    src = new ConntrackEventSource({
      netns: o.netns, rcvbuf: o.bufferSize, filter, coalesceMs: o.batchDelay, noKernelFilter: !o.kernelFilter,
    });
  } catch (e) {
    throw explainSocketError(e, o.netns);
  }
  const match = compileMatcher(filter, src.kernelFiltered);
  const limit = o.count ?? Infinity;
  let shown = 0;
  let stopped = false;
  let reportedEnobufs = 0;

  await new Promise<void>((resolve, reject) => {
    const warnTimer = setInterval(() => {
      const s = src.sock.stats();
      if (s.enobufs > reportedEnobufs) {
        process.stderr.write(`conntrail: WARNING: netlink overrun (ENOBUFS) x${s.enobufs - reportedEnobufs}, ` +
          `kernel dropped ${s.kernelDrops} events so far; raise --buffer-size (granted ${src.rcvbuf})\n`);
        reportedEnobufs = s.enobufs;
      }
    }, 1000);
    warnTimer.unref();

    const finish = (err?: Error) => {
      if (stopped) return;
      stopped = true;
      clearInterval(warnTimer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      try {
        out.flush();
      } catch (e) {
        // a reader that went away (| head) is a normal end
        if (!(e instanceof ClosedOutputError)) err ??= e as Error;
      }
      const s = src.stats();
      src.close();
      if (s.enobufs > reportedEnobufs) {
        process.stderr.write(`conntrail: WARNING: netlink overrun (ENOBUFS) x${s.enobufs - reportedEnobufs}, ` +
          `kernel dropped ${s.kernelDrops} events; raise --buffer-size (granted ${src.rcvbuf})\n`);
      }
      if (o.stats) process.stderr.write(statsLine(shown, s) + '\n');
      if (err) reject(explainSocketError(err, o.netns)); else resolve();
    };
    const onSignal = () => finish();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    src.start({
      event(ev) {
        if (stopped || !match(ev)) return;
        try {
          out.line(format(ev));
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
        } catch (e) {
          finish(e instanceof ClosedOutputError ? undefined : (e as Error));
        }
      },
    }, (err) => finish(err));
  });
}
