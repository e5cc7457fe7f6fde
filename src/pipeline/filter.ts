// The user-space filter over flow events: the categories the socket filter
// cannot evaluate (ports), and every category when no socket filter is in
// place (table dumps run with it detached). The filter itself and its
// kernel half are the conntrack source's (sources/conntrack/filter.ts).
import type { FlowEvent, Tuple } from '../records/event.js';
import type { FlowFilter, MaskedAddr, NatMatch, NatTarget, PortRange } from '../sources/conntrack/filter.js';
import { cidrContains, parseIp, type Cidr } from '../util/ip.js';

function inRanges(p: number | undefined, r: PortRange[]): boolean {
  if (p === undefined) return false;
  for (const x of r) if (p >= x.lo && p <= x.hi) return true;
  return false;
}

function anyPortIn(ev: FlowEvent, r: PortRange[]): boolean {
  return inRanges(ev.orig.sport, r) || inRanges(ev.orig.dport, r) ||
    inRanges(ev.reply.sport, r) || inRanges(ev.reply.dport, r);
}

function addrIn(text: string, list: Cidr[]): boolean {
  const a = parseIp(text);
  if (!a) return false;
  for (const c of list) if (cidrContains(c, a)) return true;
  return false;
}

function sameAddr(text: string, a: Uint8Array): boolean {
  const b = parseIp(text);
  if (!b || b.length !== a.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function underMask(text: string, m: MaskedAddr): boolean {
  const a = parseIp(text);
  if (!a || a.length !== m.mask.length) return false;
  for (let i = 0; i < a.length; i++) if ((a[i] & m.mask[i]) !== m.net[i]) return false;
  return true;
}

/**
 * conntrack's NAT filter: a tuple's translation is told by the tuples (as
 * libnetfilter_conntrack's IS_SNAT / IS_SPAT / IS_DNAT / IS_DPAT): source
 * NAT when the reply's destination is not the original source (or its
 * port), destination NAT when the reply's source is not the original
 * destination. With an address, the translation must be to it (and to the
 * port, when one is given); with a port alone, to it.
 */
/** a tuple's layer-4 source and destination as libnetfilter_conntrack holds them: ports, GRE keys; for ICMP the id, and type and code as one 16-bit value */
const l4src = (t: Tuple): number => (t.icmpType !== undefined ? t.icmpId ?? 0 : t.sport ?? 0);
const l4dst = (t: Tuple): number => (t.icmpType !== undefined ? (t.icmpType << 8) | (t.icmpCode ?? 0) : t.dport ?? 0);

function natSide(e: FlowEvent, t: NatTarget | undefined, side: 'src' | 'dst'): boolean {
  if (!t) return false;
  const translated = side === 'src' ? e.reply.dst : e.reply.src;
  const isNat = side === 'src' ? e.orig.src !== e.reply.dst : e.orig.dst !== e.reply.src;
  // (so an ICMP echo counts as port-translated both ways, as in conntrack)
  const replyPort = side === 'src' ? l4dst(e.reply) : l4src(e.reply);
  const isPat = (side === 'src' ? l4src(e.orig) : l4dst(e.orig)) !== replyPort;
  let has = false;
  if (t.addr) has = isNat && sameAddr(translated, t.addr);
  if (t.port !== undefined) {
    const ok = isPat && replyPort === t.port;
    if (t.addr && has && !ok) has = false;
    if (!t.addr && ok) has = true;
  }
  if (!t.addr && t.port === undefined && (isNat || isPat)) has = true;
  return has;
}

function natMatches(e: FlowEvent, n: NatMatch): boolean {
  const s = natSide(e, n.src, 'src');
  const d = natSide(e, n.dst, 'dst');
  if (n.any) return s || d;
  if (n.src && n.dst) return s && d;
  return n.src ? s : d;
}

/**
 * Compiles the filter to a predicate. With `kernelFiltered`, the categories
 * the socket filter already enforced are not checked again.
 */
export function compileMatcher(f: FlowFilter, kernelFiltered: boolean): (ev: FlowEvent) => boolean {
  const checks: Array<(ev: FlowEvent) => boolean> = [];
  if (f.events) {
    const ev = f.events;
    // dumps carry no event type; the event filter applies to events only
    checks.push((e) => e.type === 'DUMP' || ev.has(e.type));
  }
  if (!kernelFiltered) {
    if (f.family !== undefined) { const fam = f.family; checks.push((e) => e.family === fam); }
    if (f.protos.length) { const s = new Set(f.protos); checks.push((e) => s.has(e.proto)); }
    if (f.notProtos.length) { const s = new Set(f.notProtos); checks.push((e) => !s.has(e.proto)); }
    if (f.src.length) { const l = f.src; checks.push((e) => addrIn(e.orig.src, l)); }
    if (f.dst.length) { const l = f.dst; checks.push((e) => addrIn(e.orig.dst, l)); }
    if (f.notSrc.length) { const l = f.notSrc; checks.push((e) => !addrIn(e.orig.src, l)); }
    if (f.notDst.length) { const l = f.notDst; checks.push((e) => !addrIn(e.orig.dst, l)); }
    if (f.marks.length) {
      const l = f.marks;
      // (an event without a mark does not match, as in conntrack)
      checks.push((e) => e.mark !== undefined && l.some((m) => ((e.mark! & m.mask) >>> 0) === m.value));
    }
    if (f.zones.length) { const s = new Set(f.zones); checks.push((e) => e.zone !== undefined && s.has(e.zone)); }
  }
  if (f.ports.length) { const r = f.ports; checks.push((e) => anyPortIn(e, r)); }
  // conntrack's tuple options: what was given must be there and equal
  const has = <T>(l: T[] | undefined, get: (e: FlowEvent) => T | undefined) => {
    if (!l?.length) return;
    const s = new Set(l);
    checks.push((e) => { const v = get(e); return v !== undefined && s.has(v); });
  };
  if (f.replySrc?.length) { const l = f.replySrc; checks.push((e) => addrIn(e.reply.src, l)); }
  if (f.replyDst?.length) { const l = f.replyDst; checks.push((e) => addrIn(e.reply.dst, l)); }
  has(f.origSport, (e) => e.orig.sport);
  has(f.origDport, (e) => e.orig.dport);
  has(f.replySport, (e) => e.reply.sport);
  has(f.replyDport, (e) => e.reply.dport);
  has(f.states, (e) => e.tcpState ?? e.sctpState ?? e.dccpState);
  has(f.icmpType, (e) => e.orig.icmpType);
  has(f.icmpCode, (e) => e.orig.icmpCode);
  has(f.icmpId, (e) => e.orig.icmpId);
  if (f.nat) { const n = f.nat; checks.push((e) => natMatches(e, n)); }
  has(f.origZone, (e) => e.orig.zone);
  has(f.replyZone, (e) => e.reply.zone);
  has(f.secmarks, (e) => e.secmark);
  if (f.labelBits?.length) {
    const bits = f.labelBits;
    checks.push((e) => e.labels !== undefined && bits.every((b) => (e.labels![b >> 3] ?? 0) & (1 << (b & 7))));
  }
  if (f.statusBits !== undefined) { const b = f.statusBits; checks.push((e) => e.status !== undefined && (e.status & b) === b); }
  if (f.srcMask) { const m = f.srcMask; checks.push((e) => underMask(e.orig.src, m)); }
  if (f.dstMask) { const m = f.dstMask; checks.push((e) => underMask(e.orig.dst, m)); }
  if (f.notPorts.length) { const r = f.notPorts; checks.push((e) => !anyPortIn(e, r)); }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0];
  return (ev) => {
    for (let i = 0; i < checks.length; i++) if (!checks[i](ev)) return false;
    return true;
  };
}
