// `conntrail dump`: the current conntrack table, like `conntrack -L`.
import { Command } from 'commander';
import { dumpConntrack, type ConntrackTable } from '../sources/conntrack/socket.js';
import { notForExpect, parseTable, refuseOptions, runDumpExpect } from './tables.js';
import { compileMatcher } from '../pipeline/filter.js';
import { ClosedOutputError, LineWriter } from '../util/output.js';
import { explainSocketError, UsageError } from '../util/errors.js';
import { addFilterOptions, buildFilter, buildFormatter, type FilterCliOptions } from './options.js';
import { statsLine } from './events.js';

export function dumpCommand(): Command {
  const cmd = new Command('dump').description('print the current conntrack table, like conntrack -L')
    .argument('[table]', 'conntrack (the default), expect (the expectations), dying or unconfirmed: as conntrack -L [table], a prefix will do');
  addFilterOptions(cmd, false)
    .option('-z, --zero', 'zero the counters of each entry as it is read (as conntrack -L -z; no filter but -f and the NAT options, as conntrack)')
    .action((table: string | undefined, o: DumpCliOptions, c: Command) => {
    const t = parseTable(table, 'dump');
    if (o.zero) {
      if (t !== 'conntrack') throw new UsageError(`--zero: zeroes the counters of the conntrack table only, not of "${t}"`);
      // as conntrack: the kernel zeroes every entry it dumps, so no filter may choose fewer to print
      refuseOptions(c, ['zero', 'family', 'output', 'netns', 'stats', 'format', 'srcNat', 'dstNat', 'anyNat', 'labelmap', 'ulogdDevice', 'ulogdEventv1'],
        (name) => `${name}: not with --zero (as conntrack: "Can't use -z with filtering parameters")`);
    }
    if (t !== 'expect') return runDump(o, t);
    refuseOptions(c, ['family', 'output', 'netns', 'stats', 'format'], notForExpect);
    return runDumpExpect(o);
  });
  return cmd;
}

interface DumpCliOptions extends FilterCliOptions {
  zero?: boolean;
}

export async function runDump(o: DumpCliOptions, table: ConntrackTable = 'conntrack'): Promise<void> {
  const filter = buildFilter(o);
  const format = buildFormatter(o);
  const match = compileMatcher(filter, false);
  const out = new LineWriter(1);
  let shown = 0;
  let closed = false;
  try {
    const stats = await dumpConntrack({ netns: o.netns, family: filter.family, table, zero: o.zero }, (ev) => {
      if (closed || !match(ev)) return;
      try {
        out.line(format(ev));
        shown++;
      } catch (e) {
        if (e instanceof ClosedOutputError) closed = true; else throw e;
      }
    });
    if (!closed) {
      const end = format.end?.();
      if (end !== undefined) out.line(end);
      out.flush();
    }
    if (o.stats) process.stderr.write(statsLine(shown, stats) + '\n');
  } catch (e) {
    if (e instanceof ClosedOutputError) return;
    throw explainSocketError(e, o.netns);
  }
  process.stderr.write(`conntrail: ${shown} flow entries have been shown.\n`);
}
