// The conntrack source's filter: what the user asked for (options or
// configuration keys, parsed and checked here), and the part the kernel
// evaluates: the event type by multicast group; family, protocol,
// addresses, mark and zone by a classic BPF socket filter, so filtered-out
// events never reach user space. The user-space matcher that checks the
// rest (ports; everything during a table dump) is pipeline/filter.ts.
import { AF_INET, AF_INET6 } from '../../netlink/constants.js';
import { ACCEPT, BPF, BpfProgram, DROP, hostU16AsLoaded } from '../../netlink/bpf.js';
import * as C from './constants.js';
import type { FlowEventType } from '../../records/event.js';
import { readFileSync } from 'node:fs';
import { CONNLABEL_CONF, labelMapFile, loadLabelMap } from '../../util/connlabel.js';

import { DCCP_STATES, IPPROTO_DCCP, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, PROTO_NAMES, SCTP_STATES, TCP_STATES } from '../../records/values.js';
import { parseCidr, parseIp, type Cidr } from '../../util/ip.js';
import { UsageError } from '../../util/errors.js';
import { list } from '../../util/args.js';

export interface PortRange { lo: number; hi: number }
export interface MarkMatch { value: number; mask: number }

export interface FlowFilter {
  /** event types to keep; undefined = all */
  events?: Set<FlowEventType>;
  family?: typeof AF_INET | typeof AF_INET6;
  protos: number[];
  notProtos: number[];
  src: Cidr[];
  dst: Cidr[];
  notSrc: Cidr[];
  notDst: Cidr[];
  ports: PortRange[];
  notPorts: PortRange[];
  marks: MarkMatch[];
  zones: number[];
  /** conntrack's tuple options (user space): the reply tuple's addresses (-r, -q) */
  replySrc?: Cidr[];
  replyDst?: Cidr[];
  /** each tuple's ports (--sport, --dport, --reply-port-src, --reply-port-dst) */
  origSport?: number[];
  origDport?: number[];
  replySport?: number[];
  replyDport?: number[];
  /** protocol states (--state, with -p tcp, sctp or dccp): an event without one does not match */
  states?: number[];
  /** the original tuple's ICMP type, code and id (--icmp-type …, --icmpv6-type …) */
  icmpType?: number[];
  icmpCode?: number[];
  icmpId?: number[];
  /** conntrack's --src-nat / --dst-nat / --any-nat, each with an optional address (and port) it was translated to */
  nat?: NatMatch;
  /** conntrack's --mask-src / --mask-dst: the original address under a mask (any mask, not only a prefix) */
  srcMask?: MaskedAddr;
  dstMask?: MaskedAddr;
  /** each direction's zone (--orig-zone, --reply-zone), the SELinux secmark (-c), labels (-l: every bit set), status bits (-u, dumps only: every bit set) */
  origZone?: number[];
  replyZone?: number[];
  secmarks?: number[];
  labelBits?: number[];
  statusBits?: number;
}

export interface NatTarget { addr?: Uint8Array; port?: number }
export interface NatMatch { src?: NatTarget; dst?: NatTarget; any: boolean }
export interface MaskedAddr { net: Uint8Array; mask: Uint8Array }

export function emptyFilter(): FlowFilter {
  return { protos: [], notProtos: [], src: [], dst: [], notSrc: [], notDst: [], ports: [], notPorts: [], marks: [], zones: [] };
}

/** The categories a socket filter evaluates (the rest is checked in user space). */
export const KERNEL_CATEGORIES = ['event', 'family', 'proto', 'not-proto', 'src', 'dst', 'not-src', 'not-dst', 'mark', 'zone'] as const;
export const USERSPACE_CATEGORIES = ['port', 'not-port'] as const;

export interface FilterSpec {
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
  /** conntrack's spellings: long forms of the options above */
  origSrc?: string[];
  origDst?: string[];
  protonum?: string[];
  eventMask?: string;
  /** conntrack's tuple options (-r, -q, the protocol's --sport …, --state, ICMP's) */
  replySrc?: string[];
  replyDst?: string[];
  sport?: string[];
  dport?: string[];
  origPortSrc?: string[];
  origPortDst?: string[];
  replyPortSrc?: string[];
  replyPortDst?: string[];
  state?: string[];
  icmpType?: string[];
  icmpCode?: string[];
  icmpId?: string[];
  icmpv6Type?: string[];
  icmpv6Code?: string[];
  icmpv6Id?: string[];
  /** conntrack's NAT options: true (no value) or the address[:port] translated to */
  srcNat?: string | boolean;
  dstNat?: string | boolean;
  anyNat?: string | boolean;
  maskSrc?: string;
  maskDst?: string;
  origZone?: string[];
  replyZone?: string[];
  secmark?: string[];
  label?: string[];
  /** the connlabel.conf of -l and -o labels (conntrack's --labelmap; default /etc/xtables/connlabel.conf) */
  labelmap?: string;
  status?: string;
}

/** conntrack's -u names, in its order (prefixes as -e); UNSET is no bit */
const STATUS_NAMES = ['ASSURED', 'SEEN_REPLY', 'UNSET', 'FIXED_TIMEOUT', 'EXPECTED', 'OFFLOAD', 'HW_OFFLOAD'] as const;
const STATUS_BITS: Record<string, number> = { ASSURED: 1 << 2, SEEN_REPLY: 1 << 1, UNSET: 0, FIXED_TIMEOUT: 1 << 10, EXPECTED: 1 << 0, OFFLOAD: 1 << 14, HW_OFFLOAD: 1 << 15 };

/**
 * A comma-separated list of conntrack's named parameters (-e, -o), read as
 * conntrack reads it: each item is a case-insensitive prefix of a name, the
 * first that fits in `names`' order (`-e upd` is UPDATES, `-o e` extended);
 * a prefix of SRC_NAT or DST_NAT is said and ignored, as conntrack does; an
 * item that fits nothing (said as "is not `what`"), or an empty one, is
 * refused. Returns the names.
 */
export function conntrackParams(text: string, names: readonly string[], opt: string, warn: (m: string) => void = (m) => process.stderr.write(m + '\n'),
  what = `one of ${names.join(', ')} (or a prefix of one)`): string[] {
  const out: string[] = [];
  const items = text.split(',');
  for (const item of items) {
    if (item === '') throw new UsageError(`${opt}: "${text}" has an empty item (${names.join(', ')}, comma-separated)`);
    const fits = (name: string) => name.length >= item.length && name.slice(0, item.length).toLowerCase() === item.toLowerCase();
    if (fits('SRC_NAT') || fits('DST_NAT')) {
      const which = fits('SRC_NAT') ? 'SRC_NAT' : 'DST_NAT';
      warn(`WARNING: ignoring ${which}, use --${which === 'SRC_NAT' ? 'src' : 'dst'}-nat instead`);
      continue;
    }
    const name = names.find(fits);
    if (name === undefined) throw new UsageError(`${opt}: "${item}" is not ${what}`);
    out.push(name);
  }
  return out;
}

/** the event types of -e, in conntrack's order (UPDATES is conntrail's UPDATE) */
export const CONNTRACK_EVENT_NAMES = ['ALL', 'NEW', 'UPDATES', 'DESTROY'] as const;

/** the protocols whose tuples have ports */
const PORT_PROTOS = new Set([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, IPPROTO_SCTP, IPPROTO_DCCP]);

/** a conntrack zone (16 bits), written as any u32 conntrack takes */
function parseZone(text: string, opt: string): number {
  const n = parseU32(text, opt, 'zone');
  if (n > 65535) throw new UsageError(`${opt}: "${text}" is not a zone (0-65535)`);
  return n;
}

/** a small number as conntrack takes it (decimal, or 0x and hex), `max` at most */
function parseSmall(text: string, opt: string, what: string, max = 255): number {
  const n = /^0x[0-9a-f]{1,4}$/i.test(text) ? parseInt(text, 16) : /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 0 && n <= max)) throw new UsageError(`${opt}: "${text}" is not ${what} (0-${max})`);
  return n;
}

/** the state names --state takes per protocol (conntrack's: TCP's 9 is LISTEN or SYN_SENT2) */
function stateNumber(proto: number, text: string, opt: string): number {
  const table: readonly string[] = proto === IPPROTO_TCP ? TCP_STATES : proto === IPPROTO_SCTP ? SCTP_STATES : DCCP_STATES;
  const i = table.indexOf(text);
  if (i >= 0) return i;
  if (proto === IPPROTO_TCP && text === 'LISTEN') return 9;
  const what = proto === IPPROTO_TCP ? 'TCP' : proto === IPPROTO_SCTP ? 'SCTP' : 'DCCP';
  throw new UsageError(`${opt}: "${text}" is not a ${what} state (${[...table, ...(proto === IPPROTO_TCP ? ['LISTEN'] : [])].join(', ')}; upper case, as conntrack takes them)`);
}

const PROTO_BY_NAME = new Map<string, number>(Object.entries(PROTO_NAMES).map(([n, name]) => [name, Number(n)]));
PROTO_BY_NAME.set('ipv6-icmp', 58);
/** the names of /etc/protocols too (igmp, esp, ah, …), as conntrack's getprotobyname(3) finds them */
let etcProtocols: Map<string, number> | undefined;
function protocolsFile(): Map<string, number> {
  if (etcProtocols) return etcProtocols;
  etcProtocols = new Map();
  let text = '';
  try { text = readFileSync('/etc/protocols', 'utf8'); } catch { /* none here: the built-in names only */ }
  for (const line of text.split('\n')) {
    const f = line.replace(/#.*/, '').trim().split(/\s+/);
    if (f.length < 2 || !/^\d{1,3}$/.test(f[1]) || Number(f[1]) > 255) continue;
    for (const name of [f[0], ...f.slice(2)]) if (!etcProtocols.has(name.toLowerCase())) etcProtocols.set(name.toLowerCase(), Number(f[1]));
  }
  return etcProtocols;
}

export function parseProto(text: string, opt: string): number {
  const t = text.toLowerCase();
  const byName = PROTO_BY_NAME.get(t) ?? protocolsFile().get(t);
  if (byName !== undefined) return byName;
  if (/^\d{1,3}$/.test(t) && Number(t) <= 255) return Number(t);
  throw new UsageError(`${opt}: "${text}" is not a protocol (${[...PROTO_BY_NAME.keys()].join(', ')}, a name in /etc/protocols, or a number 0-255)`);
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


/**
 * Builds a filter from option values. `label` names an option in error
 * messages (the CLI flag, or a configuration key).
 */
export function buildFilter(o: FilterSpec, label: (flag: string) => string = (f) => f): FlowFilter {
  const f = emptyFilter();
  if (o.netns !== undefined) checkNetns(o.netns, label('--netns'));
  const event = o.eventMask ?? o.event;
  if (event !== undefined) {
    // conntrack's spelling: prefixes of ALL, NEW, UPDATES, DESTROY, any case
    let types: string[];
    const said: string[] = [];
    try {
      types = conntrackParams(event.trim(), CONNTRACK_EVENT_NAMES, label('--event'), (m) => said.push(m));
    } catch {
      const bad = event.split(',').find((t) => t !== '' && !CONNTRACK_EVENT_NAMES.some((n) => n.toLowerCase().startsWith(t.toLowerCase())));
      if (bad === undefined) throw new UsageError(`${label('--event')}: "${event}" names no event type (NEW, UPDATE, DESTROY or ALL, comma-separated)`);
      throw new UsageError(`${label('--event')}: "${bad}" is not an event type (NEW, UPDATE, DESTROY or ALL)`);
    }
    // nothing left (",", or only SRC_NAT's prefix): it would subscribe to no event at all, and wait forever
    if (!types.length) throw new UsageError(`${label('--event')}: "${event}" names no event type (NEW, UPDATE, DESTROY or ALL)`);
    for (const m of said) process.stderr.write(m + '\n');
    if (!types.includes('ALL')) f.events = new Set(types.map((t) => (t === 'UPDATES' ? 'UPDATE' : t) as FlowEventType));
  }
  if (o.family !== undefined) {
    f.family = parseFamily(o.family, label('--family'));
  }
  f.protos = list([...(o.proto ?? []), ...(o.protonum ?? [])], label('--proto')).map((p) => parseProto(p, label('--proto')));
  f.notProtos = list(o.notProto, label('--not-proto')).map((p) => parseProto(p, label('--not-proto')));
  f.src = parseCidrs([...(o.src ?? []), ...(o.origSrc ?? [])], label('--src'));
  f.dst = parseCidrs([...(o.dst ?? []), ...(o.origDst ?? [])], label('--dst'));
  f.notSrc = parseCidrs(o.notSrc, label('--not-src'));
  f.notDst = parseCidrs(o.notDst, label('--not-dst'));
  f.ports = list(o.port, label('--port')).map((p) => parsePort(p, label('--port')));
  f.notPorts = list(o.notPort, label('--not-port')).map((p) => parsePort(p, label('--not-port')));
  f.marks = list(o.mark, label('--mark')).map((m) => parseMark(m, label('--mark')));
  f.zones = list(o.zone, label('--zone')).map((z) => parseZone(z, label('--zone')));
  tupleOptions(o, f, label);
  if (f.family !== undefined) {
    const want = f.family === AF_INET ? 4 : 6;
    for (const [opt, l] of [['--src', f.src], ['--dst', f.dst], ['--not-src', f.notSrc], ['--not-dst', f.notDst], ['--reply-src', f.replySrc ?? []], ['--reply-dst', f.replyDst ?? []]] as const) {
      for (const c of l) {
        if (c.family !== want) throw new UsageError(`${label(opt)}: "${c.text}" is not an ${o.family} address`);
      }
    }
  }
  // as conntrack: the addresses of -s, -d, -r and -q must have a family in common
  // (each option may list several, of both families: one family must be in each)
  const given = ([['--src', f.src], ['--dst', f.dst], ['--reply-src', f.replySrc ?? []], ['--reply-dst', f.replyDst ?? []]] as const).filter(([, l]) => l.length);
  if (given.length > 1 && ![4, 6].some((fam) => given.every(([, l]) => l.some((c) => c.family === fam)))) {
    throw new UsageError(`mismatched address family: ${given.map(([opt, l]) => `${label(opt)} ${l.map((c) => c.text).join(',')}`).join(', ')}`);
  }
  return f;
}

/**
 * conntrack's tuple options: the reply tuple's addresses (-r, -q: addresses,
 * no CIDR, as conntrack), the ports of either tuple (with -p of a protocol
 * with ports, as conntrack's protocol options), the protocol state (with -p
 * tcp, sctp or dccp) and ICMP's type, code and id (-p icmp; --icmpv6-* with
 * -p icmpv6). Matched in user space; an event without the attribute does
 * not match (as conntrack's comparison of what was given).
 */
function tupleOptions(o: FilterSpec, f: FlowFilter, label: (flag: string) => string): void {
  const addrs = (vals: string[] | undefined, opt: string): Cidr[] | undefined => {
    if (!vals?.length) return undefined;
    const l = parseCidrs(vals, label(opt));
    for (const c of l) if (c.text.includes("/")) throw new UsageError(`${label(opt)}: "${c.text}": CIDR notation unavailable for ${opt}, as in conntrack (an address)`);
    return l;
  };
  f.replySrc = addrs(o.replySrc, '--reply-src');
  f.replyDst = addrs(o.replyDst, '--reply-dst');
  const protos = f.protos;
  const need = (opt: string, ok: (p: number) => boolean, what: string) => {
    if (!protos.length || !protos.every(ok)) throw new UsageError(`${label(opt)}: needs -p ${what} (as conntrack's protocol options)`);
  };
  const ports = (vals: string[] | undefined, opt: string): number[] | undefined => {
    if (!vals?.length) return undefined;
    need(opt, (p) => PORT_PROTOS.has(p), 'tcp, udp, udplite, sctp or dccp');
    return vals.map((v) => parseSmall(v, label(opt), 'a port', 65535));
  };
  const cat = (a?: string[], b?: string[]) => (a || b ? [...(a ?? []), ...(b ?? [])] : undefined);
  f.origSport = ports(cat(o.sport, o.origPortSrc), '--sport');
  f.origDport = ports(cat(o.dport, o.origPortDst), '--dport');
  f.replySport = ports(o.replyPortSrc, '--reply-port-src');
  f.replyDport = ports(o.replyPortDst, '--reply-port-dst');
  if (o.state?.length) {
    need('--state', (p) => p === IPPROTO_TCP || p === IPPROTO_SCTP || p === IPPROTO_DCCP, 'tcp, sctp or dccp (one of them)');
    if (new Set(protos).size > 1) throw new UsageError(`${label('--state')}: needs one protocol with -p (its states)`);
    f.states = o.state.map((s) => stateNumber(protos[0], s, label('--state')));
  }
  const icmp = (v4: string[] | undefined, v6: string[] | undefined, what: string, max: number): number[] | undefined => {
    if (v4?.length) need(`--icmp-${what}`, (p) => p === IPPROTO_ICMP, 'icmp (for ICMPv6: --icmpv6-' + what + ' with -p icmpv6)');
    if (v6?.length) need(`--icmpv6-${what}`, (p) => p === IPPROTO_ICMPV6, 'icmpv6');
    const all = [...(v4 ?? []).map((v) => parseSmall(v, label(`--icmp-${what}`), `an ICMP ${what}`, max)), ...(v6 ?? []).map((v) => parseSmall(v, label(`--icmpv6-${what}`), `an ICMPv6 ${what}`, max))];
    return all.length ? all : undefined;
  };
  f.icmpType = icmp(o.icmpType, o.icmpv6Type, 'type', 255);
  f.icmpCode = icmp(o.icmpCode, o.icmpv6Code, 'code', 255);
  f.icmpId = icmp(o.icmpId, o.icmpv6Id, 'id', 65535);
  // NAT: as conntrack, --any-nat's address is the source NAT's (any destination NAT matches)
  if (o.srcNat !== undefined || o.dstNat !== undefined || o.anyNat !== undefined) {
    const target = (v: string | boolean | undefined, opt: string): NatTarget | undefined => (v === undefined ? undefined : v === true ? {} : natTarget(String(v), label(opt)));
    if (o.anyNat !== undefined && (o.srcNat !== undefined || o.dstNat !== undefined)) {
      throw new UsageError(`${label('--any-nat')}: cannot be given with ${o.srcNat !== undefined ? '--src-nat' : '--dst-nat'} (as conntrack: "cannot specify \`--src-nat' or \`--dst-nat' with \`--any-nat'")`);
    }
    if (o.anyNat !== undefined) f.nat = { any: true, src: target(o.anyNat, '--any-nat'), dst: {} };
    else f.nat = { any: false, src: target(o.srcNat, '--src-nat'), dst: target(o.dstNat, '--dst-nat') };
  }
  const masked = (mask: string | undefined, addrs: Cidr[], opt: string, with_: string): MaskedAddr | undefined => {
    if (mask === undefined) return undefined;
    if (addrs.length !== 1 || addrs[0].prefix !== addrs[0].bytes.length * 8) throw new UsageError(`${label(opt)}: needs one address given with ${with_} (as conntrack: "Can't use ${opt} without ${with_}")`);
    const m = parseIp(mask);
    if (!m || m.length !== addrs[0].bytes.length) throw new UsageError(`${label(opt)}: "${mask}" is not a mask of the family of ${with_} ${addrs[0].text}`);
    return { net: addrs[0].bytes.map((b, i) => b & m[i]), mask: m };
  };
  const zones = (vals: string[] | undefined, opt: string): number[] | undefined => (vals?.length ? vals.map((z) => parseZone(z, label(opt))) : undefined);
  f.origZone = zones(o.origZone, '--orig-zone');
  f.replyZone = zones(o.replyZone, '--reply-zone');
  f.secmarks = o.secmark?.length ? o.secmark.map((v) => parseU32(v, label('--secmark'), 'secmark')) : undefined;
  if (o.label?.length) {
    // names from connlabel.conf, as conntrack reads it (-l a,b: both)
    const path = o.labelmap ?? CONNLABEL_CONF;
    const map = o.labelmap !== undefined ? labelMapFile(o.labelmap, label('--labelmap')) : loadLabelMap();
    const byName = new Map([...(map ?? new Map<number, string>())].map(([bit, name]) => [name, bit]));
    f.labelBits = o.label.flatMap((v) => v.split(',')).map((name) => {
      const bit = byName.get(name);
      if (bit === undefined) throw new UsageError(`${label('--label')}: unknown label '${name}': not a label of ${path}${map ? '' : ' (it names none, or cannot be read)'}`);
      return bit;
    });
  }
  if (o.status !== undefined) {
    f.statusBits = conntrackParams(o.status, STATUS_NAMES, label('--status')).reduce((b, n) => b | STATUS_BITS[n], 0);
  }
  f.srcMask = masked(o.maskSrc, f.src, '--mask-src', '--src');
  f.dstMask = masked(o.maskDst, f.dst, '--mask-dst', '--dst');
  // the address is then compared under the mask only (not in the kernel, which compares prefixes)
  if (f.srcMask) f.src = [];
  if (f.dstMask) f.dst = [];
}

/** conntrack's -f value: ipv4 (inet) or ipv6 (inet6), any case */
export function parseFamily(text: string, what: string): typeof AF_INET | typeof AF_INET6 {
  const fam = text.toLowerCase();
  if (fam === 'ipv4' || fam === 'inet') return AF_INET;
  if (fam === 'ipv6' || fam === 'inet6') return AF_INET6;
  throw new UsageError(`${what}: "${text}" is not ipv4 or ipv6`);
}

/** conntrack's NAT option value: ADDRESS, ADDRESS:PORT or [IPv6]:PORT */
function natTarget(text: string, opt: string): NatTarget {
  let a = text;
  let port: number | undefined;
  const v6 = /^\[(.+)\](?::(\d+))?$/.exec(text);
  if (v6) { a = v6[1]; if (v6[2] !== undefined) port = parseSmall(v6[2], opt, 'a port', 65535); }
  else if (/^[^:]+:\d+$/.test(text)) { const i = text.lastIndexOf(':'); a = text.slice(0, i); port = parseSmall(text.slice(i + 1), opt, 'a port', 65535); }
  const addr = parseIp(a);
  if (!addr) throw new UsageError(`${opt}: "${text}" is not an address, ADDRESS:PORT or [IPv6]:PORT`);
  return { addr, port };
}

/** Multicast groups (bitmask for bind) for the event filter. */
export function eventGroups(f: FlowFilter): number[] {
  const all: Array<[FlowEventType, number]> = [
    ['NEW', C.NFNLGRP_CONNTRACK_NEW], ['UPDATE', C.NFNLGRP_CONNTRACK_UPDATE], ['DESTROY', C.NFNLGRP_CONNTRACK_DESTROY],
  ];
  return all.filter(([t]) => !f.events || f.events.has(t)).map(([, g]) => g);
}

const ATTRS_START = 20; // nlmsghdr + nfgenmsg

/** Does the filter have anything for a socket filter to do? */
export function needsKernelFilter(f: FlowFilter): boolean {
  return f.family !== undefined || f.protos.length > 0 || f.notProtos.length > 0 || f.src.length > 0 ||
    f.dst.length > 0 || f.notSrc.length > 0 || f.notDst.length > 0 || f.marks.length > 0 || f.zones.length > 0;
}

/**
 * Builds the socket filter for ctnetlink event messages. Messages that are
 * not conntrack NEW/DELETE pass untouched. Throws if the program would be
 * too large (the caller then filters in user space).
 */
export function buildConntrackBpf(f: FlowFilter): Buffer {
  const p = new BpfProgram();
  const REJECT = 'reject';
  p.ldAbs(BPF.H, 4);
  const isCt = p.label('ct');
  p.jeq(hostU16AsLoaded(C.CT_MSG_NEW), isCt, 0);
  p.jeq(hostU16AsLoaded(C.CT_MSG_DELETE), isCt, 0);
  p.ret(ACCEPT);
  p.here(isCt);

  if (f.family !== undefined) {
    const ok = p.label();
    p.ldAbs(BPF.B, 16).jeq(f.family, ok, 0).ja(REJECT).here(ok);
  }

  // A := offset of a nested attribute path from the top level, 0 if absent
  const findPath = (path: number[], onMissing: string): void => {
    p.ldImm(ATTRS_START).ldxImm(path[0]).nlattr();
    for (let i = 1; i < path.length; i++) {
      const ok = p.label();
      p.jeq(0, 0, ok).ja(onMissing).here(ok);
      p.ldxImm(path[i]).nlattrNest();
    }
    const ok = p.label();
    p.jeq(0, 0, ok).ja(onMissing).here(ok);
  };

  const protoBlock = (list: number[], deny: boolean) => {
    if (!list.length) return;
    const done = p.label();
    const hit = p.label();
    findPath([C.CTA_TUPLE_ORIG, C.CTA_TUPLE_PROTO, C.CTA_PROTO_NUM], deny ? done : REJECT);
    p.tax().ldInd(BPF.B, 4);
    for (const proto of list) {
      const next = p.label();
      p.jeq(proto, 0, next).ja(hit).here(next);
    }
    if (deny) p.ja(done).here(hit).ja(REJECT);
    else p.ja(REJECT).here(hit);
    p.here(done);
  };
  protoBlock(f.protos, false);
  protoBlock(f.notProtos, true);

  const addrBlock = (list: Cidr[], srcSide: boolean, deny: boolean) => {
    if (!list.length) return;
    const done = p.label();
    const hit = p.label();
    findPath([C.CTA_TUPLE_ORIG, C.CTA_TUPLE_IP], deny ? done : REJECT);
    p.st(0);
    for (const c of list) {
      const next = p.label();
      const attr = c.family === 4
        ? (srcSide ? C.CTA_IP_V4_SRC : C.CTA_IP_V4_DST)
        : (srcSide ? C.CTA_IP_V6_SRC : C.CTA_IP_V6_DST);
      p.ldMem(0).ldxImm(attr).nlattrNest();
      const found = p.label();
      p.jeq(0, 0, found).ja(next).here(found);
      p.tax();
      for (let w = 0; w * 32 < c.prefix; w++) {
        const bits = Math.min(32, c.prefix - w * 32);
        const mask = bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
        const net = ((c.bytes[4 * w] << 24) | (c.bytes[4 * w + 1] << 16) | (c.bytes[4 * w + 2] << 8) | c.bytes[4 * w + 3]) >>> 0;
        p.ldInd(BPF.W, 4 + 4 * w);
        if (mask !== 0xffffffff) p.and(mask);
        const wok = p.label();
        p.jeq(net, wok, 0).ja(next).here(wok);
      }
      p.ja(hit).here(next);
    }
    if (deny) p.ja(done).here(hit).ja(REJECT);
    else p.ja(REJECT).here(hit);
    p.here(done);
  };
  addrBlock(f.src, true, false);
  addrBlock(f.dst, false, false);
  addrBlock(f.notSrc, true, true);
  addrBlock(f.notDst, false, true);

  // top-level u32/u16 attribute (mark, zone): an event without it does not
  // match, whatever the value asked (as conntrack's filter: the kernel sends
  // no CTA_MARK in an event that does not change a mark of 0, no CTA_ZONE
  // for the default zone)
  const valueBlock = (attr: number, size: number, tests: Array<{ value: number; mask: number }>) => {
    if (!tests.length) return;
    const hit = p.label();
    const absent = p.label();
    const have = p.label();
    p.ldImm(ATTRS_START).ldxImm(attr).nlattr();
    p.jeq(0, absent, have).here(have);
    p.tax().ldInd(size, 4);
    p.st(1);
    for (const t of tests) {
      const next = p.label();
      p.ldMem(1);
      if (t.mask !== 0xffffffff) p.and(t.mask);
      p.jeq(t.value >>> 0, 0, next).ja(hit).here(next);
    }
    p.ja(REJECT);
    p.here(absent);
    p.ja(REJECT);
    p.here(hit);
  };
  valueBlock(C.CTA_MARK, BPF.W, f.marks);
  valueBlock(C.CTA_ZONE, BPF.H, f.zones.map((z) => ({ value: z, mask: 0xffffffff })));

  p.ret(ACCEPT);
  p.here(REJECT);
  p.ret(DROP);
  return p.assemble();
}
