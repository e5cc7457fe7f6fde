// The tables of `conntrack -L [table]` and `-E [table]`: conntrack (the
// default), expect, dying and unconfirmed, named as conntrack names them (a
// prefix will do), and the expectation table's own commands.
import type { Command } from 'commander';
import { UsageError } from '../util/errors.js';
import { LineWriter, ClosedOutputError } from '../util/output.js';
import { parseFamily } from '../sources/conntrack/filter.js';
import { parseOutputNames } from './options.js';
import { dumpExpectations, ExpectEventSource } from '../sources/conntrack/socket.js';
import { EXPECT_XML_END, EXPECT_XML_HEAD, formatExpect, formatExpectXml } from '../formats/conntrack-expect.js';
import type { ExpectEvent } from '../records/expect.js';
import { explainSocketError } from '../util/errors.js';
import { runLive } from './live.js';

export type Table = 'conntrack' | 'expect' | 'dying' | 'unconfirmed';
const TABLES: readonly Table[] = ['expect', 'conntrack', 'dying', 'unconfirmed'];

/** conntrack's check_type: the first table (in its order) the argument is a prefix of */
export function parseTable(arg: string | undefined, command: 'dump' | 'events'): Table {
  if (arg === undefined) return 'conntrack';
  const t = TABLES.find((name) => name.startsWith(arg));
  if (!t) throw new UsageError(`table: unknown type \`${arg}' (conntrack, expect${command === 'dump' ? ', dying or unconfirmed' : ''}; as conntrack)`);
  if (command === 'events' && (t === 'dying' || t === 'unconfirmed')) {
    throw new UsageError(`table: "${arg}": events come from the conntrack and expect tables only (as conntrack: "Can't do that command with tables \`dying' and \`unconfirmed'")`);
  }
  return t;
}

/**
 * As conntrack: some commands take only some options (-L expect: -f and
 * -o; -E expect: -o; -L -z: no filter), and refuse the others by name;
 * `refusal` words the line for an option's name.
 */
export function refuseOptions(cmd: Command, allowed: readonly string[], refusal: (name: string) => string): void {
  for (const opt of cmd.options) {
    const key = opt.attributeName();
    if (allowed.includes(key)) continue;
    if (cmd.getOptionValueSource(key) === 'cli') throw new UsageError(refusal(opt.long ?? opt.short ?? key));
  }
}

/** conntrack's refusal of an option the expectation table's commands do not take */
export const notForExpect = (name: string) => `${name}: not an option of the expect table (as conntrack: "Illegal option \`${name}' with this command")`;

interface ExpectOptions {
  output?: string;
  family?: string;
  netns?: string;
  format: string;
  stats?: boolean;
}

/** -o for expectations: conntrack's names all taken, xml and timestamp the only ones that change the output */
function expectFormatter(o: ExpectOptions): { line: (ex: ExpectEvent) => string; xml: boolean } {
  if (o.format !== 'conntrack') throw new UsageError(`--format: expectations are printed as conntrack prints them (--format conntrack), not "${o.format}"`);
  const names = parseOutputNames(o.output);
  const opts = { timestamp: names.includes('timestamp') };
  const xml = names.includes('xml');
  return { line: xml ? (ex) => formatExpectXml(ex, opts) : (ex) => formatExpect(ex, opts), xml };
}

/** `conntrail dump expect`: the expectation table, as `conntrack -L expect` */
export async function runDumpExpect(o: ExpectOptions): Promise<void> {
  const f = expectFormatter(o);
  const out = new LineWriter(1);
  let shown = 0;
  let closed = false;
  try {
    const stats = await dumpExpectations({ netns: o.netns, family: o.family === undefined ? undefined : parseFamily(o.family, '--family') }, (ex) => {
      if (closed) return;
      try {
        out.line(shown === 0 && f.xml ? `${EXPECT_XML_HEAD}\n${f.line(ex)}` : f.line(ex));
        shown++;
      } catch (e) {
        if (e instanceof ClosedOutputError) closed = true; else throw e;
      }
    });
    if (!closed) {
      if (f.xml && shown) out.line(EXPECT_XML_END);
      out.flush();
    }
    if (o.stats) process.stderr.write(`conntrail: stats shown=${shown} expectations=${stats.events} malformed=${stats.malformed} unknown=${stats.unknown}\n`);
  } catch (e) {
    if (e instanceof ClosedOutputError) return;
    throw explainSocketError(e, o.netns);
  }
  process.stderr.write(`conntrail: ${shown} expectations have been shown.\n`);
}

/** `conntrail events expect`: expectation events, as `conntrack -E expect` */
export async function runEventsExpect(o: ExpectOptions & { bufferSize: number; count?: number; batchDelay: number }): Promise<void> {
  const f = expectFormatter(o);
  const out = new LineWriter(1);
  let src: ExpectEventSource;
  try {
    src = new ExpectEventSource({ netns: o.netns, rcvbuf: o.bufferSize, coalesceMs: o.batchDelay });
  } catch (e) {
    throw explainSocketError(e, o.netns);
  }
  let begun = false;
  let reported = 0;
  await runLive<ExpectEvent>({
    start: (h, onError) => src.start(h, onError),
    emit: (ex) => {
      out.line(!begun && f.xml ? `${EXPECT_XML_HEAD}\n${f.line(ex)}` : f.line(ex));
      begun = true;
    },
    flush: () => out.flush(),
    closeOutput: () => {
      if (f.xml && begun) out.line(EXPECT_XML_END);
      out.flush();
    },
    warn: (final) => {
      const s = src.sock.stats();
      if (s.enobufs > reported) {
        process.stderr.write(`conntrail: WARNING: netlink overrun (ENOBUFS) x${s.enobufs - reported}, kernel dropped ${s.kernelDrops} expectation events${final ? '' : ' so far'}; raise --buffer-size\n`);
        reported = s.enobufs;
      }
    },
    close: (shown) => {
      const s = src.decodeStats;
      src.close();
      return o.stats ? `conntrail: stats shown=${shown} expectations=${s.events} malformed=${s.malformed} unknown=${s.unknown}` : undefined;
    },
    limit: o.count ?? Infinity,
    netns: o.netns,
  });
}
