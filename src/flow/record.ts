// One record per flow: what a conntrack entry was from NEW to DESTROY, with
// the NAT translation made explicit. This is what the stores keep.
import type { FlowEvent } from '../conntrack/record.js';

/** The flow's NEW event was not seen (start-up, overrun): it was first seen later. */
export const FLAG_NO_NEW = 1;
/** The start time is when conntrail first saw the flow, not when it began
 * (no NEW and no kernel timestamp). */
export const FLAG_START_UNKNOWN = 2;
/** The DESTROY was not seen (events lost): a table dump no longer had the
 * flow, and `end` is when that was found out. */
export const FLAG_END_ESTIMATED = 4;

export const FLAG_NAMES: ReadonlyArray<[number, string]> = [
  [FLAG_NO_NEW, 'partial'], [FLAG_START_UNKNOWN, 'start-unknown'], [FLAG_END_ESTIMATED, 'end-estimated'],
];

export interface FlowRecord {
  /** the flow table's key: namespace index, zone and conntrack id */
  key: number;
  /** ms since the epoch */
  start: number;
  /** ms since the epoch; null while the flow is open */
  end: number | null;
  family: 4 | 6;
  proto: number;
  /** original tuple: who opened the flow, to whom. For ICMP, sport is the
   * echo id and dport is type * 256 + code. */
  src: string;
  sport: number | null;
  dst: string;
  dport: number | null;
  /** source NAT: the public source the inside host (src:sport) was
   * translated to, i.e. the reply tuple's destination; null without SNAT */
  natSrc: string | null;
  natSport: number | null;
  /** destination NAT: the inside address the public destination (dst:dport)
   * was translated to, i.e. the reply tuple's source; null without DNAT */
  natDst: string | null;
  natDport: number | null;
  origPackets: number | null;
  origBytes: number | null;
  replyPackets: number | null;
  replyBytes: number | null;
  /** last TCP or SCTP state seen (conntrack's numbering) */
  state: number | null;
  mark: number;
  zone: number;
  /** IPS_* status bits last seen */
  status: number;
  /** conntrack id */
  ctId: number;
  /** FLAG_* bits */
  flags: number;
  /** index of the namespace in the store's namespace table */
  ns: number;
}

export type NatKind = 'none' | 'snat' | 'dnat' | 'both';

export function natKind(r: { natSrc: unknown; natDst: unknown }): NatKind {
  return r.natSrc != null ? (r.natDst != null ? 'both' : 'snat') : r.natDst != null ? 'dnat' : 'none';
}

const isIcmp = (proto: number) => proto === 1 || proto === 58;

/**
 * Builds the record of a flow from an event carrying its tuples (any type).
 * start/end in ms; state and status as the flow table last saw them.
 */
export function recordFromEvent(ev: FlowEvent, key: number, ns: number, start: number, end: number | null,
  state: number | null, status: number, flags: number): FlowRecord {
  const o = ev.orig;
  const r = ev.reply;
  let sport: number | null;
  let dport: number | null;
  let natSrc: string | null = null;
  let natSport: number | null = null;
  let natDst: string | null = null;
  let natDport: number | null = null;
  if (isIcmp(ev.proto)) {
    sport = o.icmpId ?? null;
    dport = o.icmpType === undefined ? null : o.icmpType * 256 + (o.icmpCode ?? 0);
    if (r.dst !== o.src || r.icmpId !== o.icmpId) { natSrc = r.dst; natSport = r.icmpId ?? null; }
    if (r.src !== o.dst) { natDst = r.src; natDport = dport; }
  } else {
    sport = o.sport ?? null;
    dport = o.dport ?? null;
    if (r.dst !== o.src || r.dport !== o.sport) { natSrc = r.dst; natSport = r.dport ?? null; }
    if (r.src !== o.dst || r.sport !== o.dport) { natDst = r.src; natDport = r.sport ?? null; }
  }
  return {
    key, start, end, family: ev.family === 10 ? 6 : 4, proto: ev.proto,
    src: o.src, sport, dst: o.dst, dport, natSrc, natSport, natDst, natDport,
    origPackets: ev.origPackets ?? null, origBytes: ev.origBytes ?? null,
    replyPackets: ev.replyPackets ?? null, replyBytes: ev.replyBytes ?? null,
    state, mark: ev.mark ?? 0, zone: ev.zone ?? 0, status, ctId: ev.id ?? 0, flags, ns,
  };
}
