// Options shared by `events` and `dump`: filters, output formats, namespace.
import { Command, Option } from 'commander';
import type { FlowEvent } from '../records/event.js';
import { collect, list } from '../util/args.js';
import { UsageError } from '../util/errors.js';
import { CONNTRACK_OUTPUT_OPTIONS, FORMATS, makeFormatter, type FormatName } from '../formats/index.js';
import type { FilterSpec } from '../sources/conntrack/filter.js';

export { collect, list };
export { buildFilter, checkNetns, parseProto } from '../sources/conntrack/filter.js';

export function addFilterOptions(cmd: Command, withEvents: boolean): Command {
  if (withEvents) {
    cmd.option('-e, --event <types>', 'event types to show: NEW,UPDATE,DESTROY or ALL (comma-separated)', 'ALL');
  }
  return cmd
    .option('-f, --family <family>', 'ipv4 or ipv6 only')
    .option('-p, --proto <proto>', 'only this layer-4 protocol: name or number (repeatable, comma-separated)', collect)
    .option('--not-proto <proto>', 'never this protocol (repeatable)', collect)
    .option('-s, --src <cidr>', 'original source address or CIDR (repeatable: any of them)', collect)
    .option('-d, --dst <cidr>', 'original destination address or CIDR (repeatable)', collect)
    .option('--not-src <cidr>', 'original source not in this address or CIDR (repeatable)', collect)
    .option('--not-dst <cidr>', 'original destination not in this address or CIDR (repeatable)', collect)
    .option('--port <port>', 'a port or range LO-HI on either side of either tuple (repeatable)', collect)
    .option('--not-port <port>', 'no port of either tuple in this port or range (repeatable)', collect)
    .option('-m, --mark <value[/mask]>', 'connection mark: (mark & mask) == value (repeatable)', collect)
    .option('-w, --zone <zone>', 'conntrack zone (repeatable)', collect)
    .option('--netns <name>', 'read the conntrack table of this network namespace (/run/netns/NAME or a path)')
    .addOption(new Option('--format <format>', 'output format').choices([...FORMATS]).default('conntrack'))
    .option('-o, --output <opts>', 'conntrack format options: extended,id,timestamp,ktimestamp,labels (comma-separated)')
    .option('--ulogd-device <name>', 'ulogd-json: the "dvc" value, as ulogd\'s JSON device option', 'Netfilter')
    .option('--ulogd-eventv1', 'ulogd-json: Logstash event v1 ("@version", "@timestamp"), as ulogd\'s eventv1 option')
    .option('--stats', 'print counters to stderr on exit');
}

export interface FilterCliOptions extends FilterSpec {
  format: FormatName;
  output?: string;
  ulogdDevice?: string;
  ulogdEventv1?: boolean;
  stats?: boolean;
}

const OUTPUT_OPTS = [...CONNTRACK_OUTPUT_OPTIONS, 'xml', 'save', 'userspace'];

export function buildFormatter(o: FilterCliOptions): (ev: FlowEvent) => string {
  const out = list(o.output ? [o.output] : []);
  for (const x of out) {
    if (!OUTPUT_OPTS.includes(x)) {
      throw new UsageError(`--output: "${x}" is not an output option (extended, id, timestamp, ktimestamp, labels)`);
    }
    if (x === 'xml' || x === 'save' || x === 'userspace') {
      throw new UsageError(`--output: "${x}" is not supported by conntrail (use --format json for structured output)`);
    }
  }
  if (out.length && o.format !== 'conntrack') {
    throw new UsageError(`--output applies to --format conntrack only, not "${o.format}"`);
  }
  return makeFormatter({ format: o.format, output: out, netns: o.netns, ulogdDevice: o.ulogdDevice, ulogdEventv1: o.ulogdEventv1 });
}
