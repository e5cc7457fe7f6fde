// Options shared by `events` and `dump`: filters, output formats, namespace.
import { Command, Option } from 'commander';
import type { FlowEvent } from '../records/event.js';
import { collect, list } from '../util/args.js';
import { UsageError } from '../util/errors.js';
import { CONNTRACK_OUTPUT_OPTIONS, FORMATS, makeFormatter, type FormatName } from '../formats/index.js';
import { conntrackParams, type FilterSpec } from '../sources/conntrack/filter.js';
import { formatConntrackXml, XML_END, XML_HEAD } from '../formats/conntrack-xml.js';
import { formatConntrackSave } from '../formats/conntrack-save.js';
import { prognameOf } from '../util/progname.js';

export { collect, list };
export { buildFilter, checkNetns, parseProto } from '../sources/conntrack/filter.js';

export function addFilterOptions(cmd: Command, withEvents: boolean): Command {
  if (withEvents) {
    cmd.option('-e, --event <types>', 'event types to show: NEW,UPDATES,DESTROY or ALL (comma-separated; any case, a prefix will do, as conntrack)', 'ALL');
    cmd.addOption(new Option('--event-mask <types>', 'conntrack\'s long form of -e').hideHelp());
  }
  // conntrack's long forms and tuple options (repeatable: any of the values)
  for (const [flags, what] of [
    ['--orig-src <addr>', 'conntrack\'s long form of -s'], ['--orig-dst <addr>', 'conntrack\'s long form of -d'], ['--protonum <proto>', 'conntrack\'s long form of -p'],
    ['--orig-port-src <port>', 'conntrack\'s long form of --sport'], ['--orig-port-dst <port>', 'conntrack\'s long form of --dport'],
  ] as const) cmd.addOption(new Option(flags, what).hideHelp().argParser(collect));
  cmd
    .option('-r, --reply-src <addr>', 'reply source address (as conntrack -r; repeatable)', collect)
    .option('-q, --reply-dst <addr>', 'reply destination address (as conntrack -q; repeatable)', collect)
    .option('--sport <port>', 'original source port (with -p tcp, udp, udplite, sctp or dccp; repeatable)', collect)
    .option('--dport <port>', 'original destination port (with -p of a protocol with ports; repeatable)', collect)
    .option('--reply-port-src <port>', 'reply source port (repeatable)', collect)
    .option('--reply-port-dst <port>', 'reply destination port (repeatable)', collect)
    .option('--state <state>', 'protocol state, as conntrack prints it (with -p tcp, sctp or dccp; repeatable); events without one do not match', collect)
    .option('--icmp-type <type>', 'ICMP type (with -p icmp; repeatable)', collect)
    .option('--icmp-code <code>', 'ICMP code (with -p icmp; repeatable)', collect)
    .option('--icmp-id <id>', 'ICMP id (with -p icmp; repeatable)', collect)
    .option('--icmpv6-type <type>', 'ICMPv6 type (with -p icmpv6; repeatable)', collect)
    .option('--icmpv6-code <code>', 'ICMPv6 code (with -p icmpv6; repeatable)', collect)
    .option('--icmpv6-id <id>', 'ICMPv6 id (with -p icmpv6; repeatable)', collect)
    .option('-n, --src-nat [addr]', 'source-NATed entries (to ADDR, ADDR:PORT or [IPv6]:PORT), as conntrack')
    .option('-g, --dst-nat [addr]', 'destination-NATed entries (to ADDR[:PORT]), as conntrack')
    .option('-j, --any-nat [addr]', 'entries NATed either way (the address: source NAT\'s, as conntrack)')
    .option('--mask-src <mask>', 'compare -s under this mask (an address-form mask, as conntrack)')
    .option('--mask-dst <mask>', 'compare -d under this mask')
    .option('--orig-zone <zone>', 'the original direction\'s zone (repeatable)', collect)
    .option('--reply-zone <zone>', 'the reply direction\'s zone (repeatable)', collect)
    .option('-c, --secmark <secmark>', 'SELinux secmark (repeatable)', collect)
    .option('-l, --label <names>', 'connection labels by connlabel.conf name, all of them set (comma-separated, repeatable)', collect)
    .option('--labelmap <path>', 'the connlabel.conf of -l and -o labels, instead of /etc/xtables/connlabel.conf (as conntrack --labelmap)', (v: string, prev?: string) => {
      if (prev !== undefined) throw new UsageError("--labelmap: option `--labelmap' can only be specified once");
      return v;
    });
  // (conntrack takes --status with -L, not with -E)
  if (!withEvents) cmd.option('-u, --status <status>', 'status bits all set: ASSURED, SEEN_REPLY, FIXED_TIMEOUT, EXPECTED, OFFLOAD, HW_OFFLOAD, UNSET (comma-separated; prefixes as conntrack)');
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
    .option('-o, --output <opts>', 'conntrack format options: xml,extended,id,timestamp,ktimestamp,labels,userspace, or save alone (comma-separated; any case, a prefix will do, as conntrack)')
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

/** conntrack's -o names, in its order (a prefix takes the first that fits) */
const OUTPUT_NAMES = ['xml', 'extended', 'timestamp', 'id', 'ktimestamp', 'labels', 'userspace', 'save'] as const;

/** a formatter of conntrack events; `end`: what to print after the last record (conntrack -o xml's closing tag), if anything */
export type EventFormatter = ((ev: FlowEvent) => string) & { end?: () => string | undefined };

/** conntrack's -o names in a value (prefixes, any case), refused by name where one fits nothing */
export function parseOutputNames(output: string | undefined): string[] {
  return output ? conntrackParams(output, OUTPUT_NAMES, '--output', undefined, `an output option (${OUTPUT_NAMES.join(', ')})`) : [];
}

export function buildFormatter(o: FilterCliOptions): EventFormatter {
  const names = parseOutputNames(o.output);
  if (names.includes('save') && names.some((x) => x !== 'save' && x !== 'userspace')) {
    throw new UsageError('--output: cannot combine save output with any other output type, use -o save only');
  }
  // userspace: [USERSPACE] portid=N progname=NAME is always printed, as by conntrack 1.4.7 (where -o userspace is kept and does nothing)
  const out = names.filter((x) => x !== 'userspace');
  if (out.length && o.format !== 'conntrack') {
    throw new UsageError(`--output applies to --format conntrack only, not "${o.format}"`);
  }
  // as conntrack: once -l has loaded the label map, each line names its labels, -o labels or not
  if (o.label?.length && o.format === 'conntrack' && !out.includes('labels')) out.push('labels');
  // (the progname lookup reads this process's namespace's /proc/net/netlink)
  const progname = o.netns ? undefined : prognameOf;
  if (out.includes('save')) {
    const opts = { progname };
    return (ev) => formatConntrackSave(ev, opts);
  }
  if (out.includes('xml')) {
    // as conntrack: -o xml takes timestamp (<when>) and ktimestamp (<timestamp>); extended, id and labels change nothing there
    const opts = { time: out.includes('timestamp'), ktimestamp: out.includes('ktimestamp'), progname };
    let begun = false;
    const f: EventFormatter = (ev) => {
      const line = formatConntrackXml(ev, opts);
      if (begun) return line;
      begun = true;
      return `${XML_HEAD}\n${line}`;
    };
    f.end = () => (begun ? XML_END : undefined);
    return f;
  }
  return makeFormatter({ format: o.format, output: out, labelmap: o.labelmap, netns: o.netns, ulogdDevice: o.ulogdDevice, ulogdEventv1: o.ulogdEventv1 });
}
