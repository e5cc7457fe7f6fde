// Options shared by `events` and `dump`: filters, output formats, namespace.
import { Command, Option } from 'commander';
import { AF_INET, AF_INET6 } from '../netlink/constants.js';
import { PROTO_NAMES } from '../conntrack/constants.js';
import type { FlowEvent, FlowEventType } from '../conntrack/record.js';
import { buildConntrackBpf, emptyFilter, needsKernelFilter, type FlowFilter, type MarkMatch, type PortRange } from '../pipeline/filter.js';
import { parseCidr, type Cidr } from '../util/ip.js';
import { UsageError } from '../util/errors.js';
import { CONNTRACK_OUTPUT_OPTIONS, FORMATS, makeFormatter, type FormatName } from '../formats/index.js';


/** commander: a repeatable option's values */
export const collect = (v: string, prev: string[] = []) => [...prev, v];
/**
 * Repeated and comma-separated values, trimmed. With `opt`, a value that is
 * empty as a whole is bad input: `--src "$ADDR"` with ADDR unset must not
 * quietly mean every address (an empty item between commas is dropped).
 */
export const list = (vals: string[] | undefined, opt?: string) => (vals ?? []).flatMap((v) => {
  if (opt !== undefined && v.trim() === '') throw new UsageError(`${opt}: an empty value`);
  return v.split(',');
}).map((s) => s.trim()).filter(Boolean);

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

const PROTO_BY_NAME = new Map<string, number>(Object.entries(PROTO_NAMES).map(([n, name]) => [name, Number(n)]));
PROTO_BY_NAME.set('ipv6-icmp', 58);

export function parseProto(text: string, opt: string): number {
  const t = text.toLowerCase();
  const byName = PROTO_BY_NAME.get(t);
  if (byName !== undefined) return byName;
  if (/^\d{1,3}$/.test(t) && Number(t) <= 255) return Number(t);
  throw new UsageError(`${opt}: "${text}" is not a protocol (${[...PROTO_BY_NAME.keys()].join(', ')} or a number 0-255)`);
}

function parsePort(text: string, opt: string): PortRange {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || lo > 65535 || hi > 65535 || lo > hi) {
    throw new UsageError(`${opt}: "${text}" is not a port (0-65535) or range LO-HI`);
  }
  return { lo, hi };
}

function parseU32(text: string, opt: string, what: string): number {
  const n = /^0x[0-9a-f]{1,8}$/i.test(text) ? parseInt(text, 16) : /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n > 0xffffffff) throw new UsageError(`${opt}: "${text}" is not a ${what} (0-4294967295 or 0x hex)`);
  return n;
}

function parseMark(text: string, opt: string): MarkMatch {
  const parts = text.split('/');
  if (parts.length > 2) throw new UsageError(`${opt}: "${text}" is not VALUE[/MASK] (one slash at most)`);
  const [v, m] = parts;
  const mask = m === undefined ? 0xffffffff : parseU32(m, opt, 'mask');
  const value = parseU32(v, opt, 'mark');
  return { value: (value & mask) >>> 0, mask };
}

function parseCidrs(vals: string[] | undefined, opt: string): Cidr[] {
  return list(vals, opt).map((v) => {
    try {
      return parseCidr(v);
    } catch (e) {
      throw new UsageError(`${opt}: ${(e as Error).message}`);
    }
  });
}

/**
 * A network namespace as given: a name under /run/netns, or a path. An
 * empty name would silently mean the own namespace; "." and ".." name
 * directories, not namespaces.
 */
export function checkNetns(name: string, opt: string): void {
  if (name === '') throw new UsageError(`${opt}: an empty namespace name (give NAME for /run/netns/NAME, or a path)`);
  if (name === '.' || name === '..') throw new UsageError(`${opt}: "${name}" is not a namespace name (give NAME for /run/netns/NAME, or a path)`);
  if (/[\x00-\x1f\x7f]/.test(name)) throw new UsageError(`${opt}: ${JSON.stringify(name)} has control characters; not a namespace name`);
}

/** the kernel's limit on a socket filter program (BPF_MAXINSNS) */
export const BPF_MAXINSNS = 4096;

/**
 * Instructions of the socket filter for `f`: 0 when none is needed,
 * Infinity when it cannot be built at all (a jump too long).
 */
export function socketFilterSize(f: FlowFilter): number {
  if (!needsKernelFilter(f)) return 0;
  try {
    return buildConntrackBpf(f).length / 8;
  } catch {
    return Infinity;
  }
}

export interface FilterCliOptions {
  event?: string;
  family?: string;
  proto?: string[];
  notProto?: string[];
  src?: string[];
  dst?: string[];
  notSrc?: string[];
  notDst?: string[];
  port?: string[];
  notPort?: string[];
  mark?: string[];
  zone?: string[];
  netns?: string;
  format: FormatName;
  output?: string;
  ulogdDevice?: string;
  ulogdEventv1?: boolean;
  stats?: boolean;
}

/**
 * Builds a filter from option values. `label` names an option in error
 * messages (the CLI flag, or a configuration key).
 */
export function buildFilter(o: Omit<FilterCliOptions, 'format'>, label: (flag: string) => string = (f) => f): FlowFilter {
  const f = emptyFilter();
  if (o.netns !== undefined) checkNetns(o.netns, label('--netns'));
  if (o.event !== undefined) {
    const types = list([o.event], label('--event')).map((t) => t.toUpperCase());
    // "," would subscribe to no event at all, and wait forever
    if (!types.length) throw new UsageError(`${label('--event')}: "${o.event}" names no event type (NEW, UPDATE, DESTROY or ALL)`);
    if (!types.includes('ALL')) {
      const ok = new Set<FlowEventType>();
      for (const t of types) {
        if (t !== 'NEW' && t !== 'UPDATE' && t !== 'DESTROY') {
          throw new UsageError(`${label('--event')}: "${t}" is not an event type (NEW, UPDATE, DESTROY or ALL)`);
        }
        ok.add(t);
      }
      f.events = ok;
    }
  }
  if (o.family !== undefined) {
    const fam = o.family.toLowerCase();
    if (fam === 'ipv4' || fam === 'inet') f.family = AF_INET;
    else if (fam === 'ipv6' || fam === 'inet6') f.family = AF_INET6;
    else throw new UsageError(`${label('--family')}: "${o.family}" is not ipv4 or ipv6`);
  }
  f.protos = list(o.proto, label('--proto')).map((p) => parseProto(p, label('--proto')));
  f.notProtos = list(o.notProto, label('--not-proto')).map((p) => parseProto(p, label('--not-proto')));
  f.src = parseCidrs(o.src, label('--src'));
  f.dst = parseCidrs(o.dst, label('--dst'));
  f.notSrc = parseCidrs(o.notSrc, label('--not-src'));
  f.notDst = parseCidrs(o.notDst, label('--not-dst'));
  f.ports = list(o.port, label('--port')).map((p) => parsePort(p, label('--port')));
  f.notPorts = list(o.notPort, label('--not-port')).map((p) => parsePort(p, label('--not-port')));
  f.marks = list(o.mark, label('--mark')).map((m) => parseMark(m, label('--mark')));
  f.zones = list(o.zone, label('--zone')).map((z) => {
    const n = parseU32(z, label('--zone'), 'zone');
    if (n > 65535) throw new UsageError(`${label('--zone')}: "${z}" is not a zone (0-65535)`);
    return n;
  });
  if (f.family !== undefined) {
    const want = f.family === AF_INET ? 4 : 6;
    for (const [opt, l] of [['--src', f.src], ['--dst', f.dst], ['--not-src', f.notSrc], ['--not-dst', f.notDst]] as const) {
      for (const c of l) {
        if (c.family !== want) throw new UsageError(`${label(opt)}: "${c.text}" is not an ${o.family} address`);
      }
    }
  }
  return f;
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
