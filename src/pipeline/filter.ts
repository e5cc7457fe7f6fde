// Accept and deny filters over flow events. What the kernel can evaluate
// (event type by multicast group; family, protocol, addresses, mark and zone
// by a socket filter) is compiled to classic BPF so filtered-out events never
// reach user space; ports are checked here. Every category is also checked
// here when no socket filter is in place (table dumps).
import { AF_INET, AF_INET6 } from '../netlink/constants.js';
import { ACCEPT, BPF, BpfProgram, DROP, hostU16AsLoaded } from '../netlink/bpf.js';
import * as C from '../conntrack/constants.js';
import type { FlowEvent, FlowEventType } from '../conntrack/record.js';
import { cidrContains, parseIp, type Cidr } from '../util/ip.js';

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
}

export function emptyFilter(): FlowFilter {
  return { protos: [], notProtos: [], src: [], dst: [], notSrc: [], notDst: [], ports: [], notPorts: [], marks: [], zones: [] };
}

/** The categories a socket filter evaluates (the rest is checked in user space). */
export const KERNEL_CATEGORIES = ['event', 'family', 'proto', 'not-proto', 'src', 'dst', 'not-src', 'not-dst', 'mark', 'zone'] as const;
export const USERSPACE_CATEGORIES = ['port', 'not-port'] as const;

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
      checks.push((e) => l.some((m) => (((e.mark ?? 0) & m.mask) >>> 0) === m.value));
    }
    if (f.zones.length) { const s = new Set(f.zones); checks.push((e) => s.has(e.zone ?? 0)); }
  }
  if (f.ports.length) { const r = f.ports; checks.push((e) => anyPortIn(e, r)); }
  if (f.notPorts.length) { const r = f.notPorts; checks.push((e) => !anyPortIn(e, r)); }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0];
  return (ev) => {
    for (let i = 0; i < checks.length; i++) if (!checks[i](ev)) return false;
    return true;
  };
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

  // top-level u32/u16 attribute that is absent when 0 (mark, zone)
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
    if (!tests.some((t) => ((0 & t.mask) >>> 0) === t.value >>> 0)) p.ja(REJECT);
    p.here(hit);
  };
  valueBlock(C.CTA_MARK, BPF.W, f.marks);
  valueBlock(C.CTA_ZONE, BPF.H, f.zones.map((z) => ({ value: z, mask: 0xffffffff })));

  p.ret(ACCEPT);
  p.here(REJECT);
  p.ret(DROP);
  return p.assemble();
}
