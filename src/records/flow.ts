// One record per flow: what a conntrack entry was from NEW to DESTROY, with
// the NAT translation made explicit, and when it was *active* (carrying
// packets) as opposed to merely lingering in the table (TIME_WAIT, a UDP
// timeout running out). This is what the stores keep. Every time is in µs
// since the epoch; an estimated time carries how far it may be off, so a
// question about an instant can be answered honestly.
import type { FlowEvent } from './event.js';

/** The flow's NEW event was not seen (start-up, overrun): it was first seen later. */
export const FLAG_NO_NEW = 1;
/** The start is when conntrail first saw the flow, not when it began (no NEW
 * and no kernel timestamp): it began up to `startErr` earlier. */
export const FLAG_START_UNKNOWN = 2;
/** The DESTROY was not seen (events lost, or conntrail was not running): a
 * table dump no longer had the flow; it ended up to `endErr` before `end`. */
export const FLAG_END_ESTIMATED = 4;
/** The end of activity is an estimate from the timeout that expired the
 * entry (set for every flow that expired rather than closed). */
export const FLAG_ACTIVE_ESTIMATED = 8;

export const FLAG_NAMES: ReadonlyArray<[number, string]> = [
  [FLAG_NO_NEW, 'partial'], [FLAG_START_UNKNOWN, 'start-unknown'], [FLAG_END_ESTIMATED, 'end-estimated'],
  [FLAG_ACTIVE_ESTIMATED, 'active-estimated'],
];

/** startErr of a flow that may have begun at any time before it was seen */
export const UNBOUNDED = Number.MAX_SAFE_INTEGER;

export interface FlowRecord {
  /** the flow's key in the store's current table while it is open (unique) */
  key: number;
  /** µs: when it began (the kernel's timestamp, else when first seen) */
  start: number;
  /** µs: how much earlier it may have begun (0: exact; UNBOUNDED: unknown) */
  startErr: number;
  /** µs; null while the flow is open: the latest it may have ended */
  end: number | null;
  /** µs: how much earlier than `end` it may have ended (0: exact) */
  endErr: number;
  /** µs: the latest it may have carried packets (≤ end); null while open and
   * still active as far as is known */
  activeEnd: number | null;
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
  /** the store's id of the network namespace the flow was read from */
  ns: number;
}

export type NatKind = 'none' | 'snat' | 'dnat' | 'both';

export function natKind(r: { natSrc: unknown; natDst: unknown }): NatKind {
  return r.natSrc != null ? (r.natDst != null ? 'both' : 'snat') : r.natDst != null ? 'dnat' : 'none';
}

export const isIcmp = (proto: number) => proto === 1 || proto === 58;

/** What the flow table knows of a flow beyond the event that completes it. */
export interface FlowTimes {
  start: number;
  startErr: number;
  end: number | null;
  endErr: number;
  activeEnd: number | null;
}

/**
 * Builds the record of a flow from an event carrying its tuples (any type).
 * Times in µs; state and status as the flow table last saw them.
 */
export function recordFromEvent(ev: FlowEvent, key: number, ns: number, t: FlowTimes,
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
    key, start: t.start, startErr: t.startErr, end: t.end, endErr: t.endErr, activeEnd: t.activeEnd,
    family: ev.family === 10 ? 6 : 4, proto: ev.proto,
    src: o.src, sport, dst: o.dst, dport, natSrc, natSport, natDst, natDport,
    origPackets: ev.origPackets ?? null, origBytes: ev.origBytes ?? null,
    replyPackets: ev.replyPackets ?? null, replyBytes: ev.replyBytes ?? null,
    state, mark: ev.mark ?? 0, zone: ev.zone ?? 0, status, ctId: ev.id ?? 0, flags, ns,
  };
}

/** ns since the epoch -> µs, rounded down (a start) or up (an end) */
export const nsToUsFloor = (ns: bigint): number => Number(ns / 1000n);
export const nsToUsCeil = (ns: bigint): number => Number((ns + 999n) / 1000n);

/**
 * A flow record as the sinks that take flow records get it: when the flow
 * ended (its DESTROY, or a table dump that no longer had it), with its
 * network namespace named.
 */
export interface EndedFlow extends FlowRecord {
  /** the namespace's name: the daemon's own '', an `ip netns` name, or "net:[INODE]" */
  netns: string;
  /** its inode (0: not known) */
  netnsInode: number;
  /** this record replaces one sent before for the same flow (ended by a
   * dump, its DESTROY lost): the DESTROY came late after all */
  corrects: boolean;
  /**
   * 0: the flow's end. For a sink with active/inactive timeouts (IPFIX) the
   * flow is still open and this reports what it carried since its previous
   * record: 1 it carried nothing for the inactive timeout, 2 the active
   * timeout passed since that record. Such a record's counters, and those of
   * the end that follows one, count only what came since; its start is the
   * previous record's end. Other sinks get only whole flows (0).
   */
  report: 0 | 1 | 2;
  /** the records of this flow sent before this one (interim reports): 0, it is whole */
  reported: number;
}
