// `conntrail dump`: the current conntrack table, like `conntrack -L`.
import { Command } from 'commander';
import { dumpConntrack, type ConntrackTable } from '../sources/conntrack/socket.js';
import { parseTable, refuseOptions, runDumpExpect } from './tables.js';
import { compileMatcher } from '../pipeline/filter.js';
import { ClosedOutputError, LineWriter } from '../util/output.js';
import { explainSocketError } from '../util/errors.js';
import { addFilterOptions, buildFilter, buildFormatter, type FilterCliOptions } from './options.js';
import { statsLine } from './events.js';

export function dumpCommand(): Command {
  const cmd = new Command('dump').description('print the current conntrack table, like conntrack -L')
    .argument('[table]', 'conntrack (the default), expect (the expectations), dying or unconfirmed: as conntrack -L [table], a prefix will do');
  addFilterOptions(cmd, false).action((table: string | undefined, o: FilterCliOptions, c: Command) => {
    const t = parseTable(table, 'dump');
    if (t !== 'expect') return runDump(o, t);
    refuseOptions(c, ['family', 'output', 'netns', 'stats', 'format'], 'expect');
    return runDumpExpect(o);
  });
  return cmd;
}

export async function runDump(o: FilterCliOptions, table: ConntrackTable = 'conntrack'): Promise<void> {
  const filter = buildFilter(o);
  const format = buildFormatter(o);
  const match = compileMatcher(filter, false);
  const out = new LineWriter(1);
  let shown = 0;
  let closed = false;
  try {
    const stats = await dumpConntrack({ netns: o.netns, family: filter.family, table }, (ev) => {
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
