// `conntrail dump`: the current conntrack table, like `conntrack -L`.
import { Command } from 'commander';
import { dumpConntrack } from '../sources/conntrack/socket.js';
import { compileMatcher } from '../pipeline/filter.js';
import { ClosedOutputError, LineWriter } from '../util/output.js';
import { explainSocketError } from '../util/errors.js';
import { addFilterOptions, buildFilter, buildFormatter, type FilterCliOptions } from './options.js';
import { statsLine } from './events.js';

export function dumpCommand(): Command {
  const cmd = new Command('dump').description('print the current conntrack table, like conntrack -L');
  addFilterOptions(cmd, false).action((o: FilterCliOptions) => runDump(o));
  return cmd;
}

export async function runDump(o: FilterCliOptions): Promise<void> {
  const filter = buildFilter(o);
  const format = buildFormatter(o);
  const match = compileMatcher(filter, false);
  const out = new LineWriter(1);
  let shown = 0;
  let closed = false;
  try {
    const stats = await dumpConntrack({ netns: o.netns, family: filter.family }, (ev) => {
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
