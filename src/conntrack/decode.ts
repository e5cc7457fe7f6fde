// ctnetlink -> FlowEvent, straight from the receive buffer: one pass over the
// attributes, no intermediate object per attribute. Malformed, truncated or
// unknown messages are counted and skipped, never thrown.
import * as C from './constants.js';
import { AF_INET, AF_INET6, NLA_TYPE_MASK, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_NOOP, NLMSG_OVERRUN } from '../netlink/constants.js';
import { ipv4ToString, ipv6ToString } from '../util/ip.js';
import { emptyEvent, type FlowEvent, type FlowEventType, type Tuple } from './record.js';

export interface DecodeStats {
  /** conntrack messages decoded into events */
  events: number;
  /** messages that were not whole or not well-formed */
  malformed: number;
  /** netlink messages of other types / subsystems, skipped */
  unknown: number;
  /** NLMSG_ERROR messages with a non-zero error */
  errors: number;
  /** NLMSG_DONE seen (end of a dump) */
  done: number;
}

export function newDecodeStats(): DecodeStats {
  return { events: 0, malformed: 0, unknown: 0, errors: 0, done: 0 };
}

class Malformed extends Error {}
const MALFORMED = new Malformed('malformed');

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const be16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const be32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
const be64n = (b: Uint8Array, o: number) => be32(b, o) * 4294967296 + be32(b, o + 4);
// 64-bit timestamps through a DataView over the (reused) receive buffer:
// one bigint allocation instead of four.
let dvBuf: ArrayBufferLike | undefined;
let dv: DataView | undefined;
function be64(b: Uint8Array, o: number): bigint {
  if (b.buffer !== dvBuf) {
    dvBuf = b.buffer;
    dv = new DataView(b.buffer);
  }
  return dv!.getBigUint64(b.byteOffset + o);
}
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

function need(len: number, n: number): void {
  if (len < n) throw MALFORMED;
}

function cstring(b: Uint8Array, o: number, len: number): string {
  let end = o;
  const max = o + len;
  while (end < max && b[end] !== 0) end++;
  // one char per byte: printed back byte for byte (as conntrack does);
  // formats that need Unicode (JSON) reinterpret it as UTF-8
  return Buffer.from(b.buffer, b.byteOffset + o, end - o).toString('latin1');
}

function decodeIp(b: Uint8Array, start: number, end: number, t: Tuple): void {
  let o = start;
  while (o + 4 <= end) {
    const len = u16(b, o);
    if (len < 4 || o + len > end) throw MALFORMED;
    const type = u16(b, o + 2) & NLA_TYPE_MASK;
    const p = o + 4;
    const plen = len - 4;
    switch (type) {
      case C.CTA_IP_V4_SRC: need(plen, 4); t.src = ipv4ToString(b, p); break;
      case C.CTA_IP_V4_DST: need(plen, 4); t.dst = ipv4ToString(b, p); break;
      case C.CTA_IP_V6_SRC: need(plen, 16); t.src = ipv6ToString(b, p); break;
      case C.CTA_IP_V6_DST: need(plen, 16); t.dst = ipv6ToString(b, p); break;
      default: break;
    }
    o += (len + 3) & ~3;
  }
}

function decodeProto(b: Uint8Array, start: number, end: number, t: Tuple): number {
  let o = start;
  let proto = -1;
  while (o + 4 <= end) {
    const len = u16(b, o);
    if (len < 4 || o + len > end) throw MALFORMED;
    const type = u16(b, o + 2) & NLA_TYPE_MASK;
    const p = o + 4;
    const plen = len - 4;
    switch (type) {
      case C.CTA_PROTO_NUM: need(plen, 1); proto = b[p]; break;
      case C.CTA_PROTO_SRC_PORT: need(plen, 2); t.sport = be16(b, p); break;
      case C.CTA_PROTO_DST_PORT: need(plen, 2); t.dport = be16(b, p); break;
      case C.CTA_PROTO_ICMP_ID:
      case C.CTA_PROTO_ICMPV6_ID: need(plen, 2); t.icmpId = be16(b, p); break;
      case C.CTA_PROTO_ICMP_TYPE:
      case C.CTA_PROTO_ICMPV6_TYPE: need(plen, 1); t.icmpType = b[p]; break;
      case C.CTA_PROTO_ICMP_CODE:
      case C.CTA_PROTO_ICMPV6_CODE: need(plen, 1); t.icmpCode = b[p]; break;
      default: break;
    }
    o += (len + 3) & ~3;
  }
  return proto;
}

/** Decodes a CTA_TUPLE_* nest into `t`; returns the protocol number or -1. */
function decodeTuple(b: Uint8Array, start: number, end: number, t: Tuple): number {
  let o = start;
  let proto = -1;
  while (o + 4 <= end) {
    const len = u16(b, o);
    if (len < 4 || o + len > end) throw MALFORMED;
    const type = u16(b, o + 2) & NLA_TYPE_MASK;
    const p = o + 4;
    switch (type) {
      case C.CTA_TUPLE_IP: decodeIp(b, p, o + len, t); break;
      case C.CTA_TUPLE_PROTO: proto = decodeProto(b, p, o + len, t); break;
      case C.CTA_TUPLE_ZONE: need(len - 4, 2); t.zone = be16(b, p); break;
      default: break;
    }
    o += (len + 3) & ~3;
  }
  return proto;
}

function decodeProtoinfo(b: Uint8Array, start: number, end: number, ev: FlowEvent): void {
  let o = start;
  while (o + 4 <= end) {
    const len = u16(b, o);
    if (len < 4 || o + len > end) throw MALFORMED;
    const type = u16(b, o + 2) & NLA_TYPE_MASK;
    // each protocol nest starts with its *_STATE attribute (u8)
    const state = findU8(b, o + 4, o + len, 1);
    if (type === C.CTA_PROTOINFO_TCP) ev.tcpState = state;
    else if (type === C.CTA_PROTOINFO_SCTP) ev.sctpState = state;
    else if (type === C.CTA_PROTOINFO_DCCP) ev.dccpState = state;
    o += (len + 3) & ~3;
  }
}

function findU8(b: Uint8Array, start: number, end: number, want: number): number | undefined {
  let o = start;
  while (o + 4 <= end) {
    const len = u16(b, o);
    if (len < 4 || o + len > end) throw MALFORMED;
    if ((u16(b, o + 2) & NLA_TYPE_MASK) === want) {
      need(len - 4, 1);
      return b[o + 4];
    }
    o += (len + 3) & ~3;
  }
  return undefined;
}

function decodeCounters(b: Uint8Array, start: number, end: number, ev: FlowEvent, orig: boolean): void {
  let o = start;
  let packets: number | undefined;
  let bytes: number | undefined;
  while (o + 4 <= end) {
    const len = u16(b, o);
    if (len < 4 || o + len > end) throw MALFORMED;
    const type = u16(b, o + 2) & NLA_TYPE_MASK;
    const p = o + 4;
    const plen = len - 4;
    switch (type) {
      case C.CTA_COUNTERS_PACKETS: need(plen, 8); packets = be64n(b, p); break;
      case C.CTA_COUNTERS_BYTES: need(plen, 8); bytes = be64n(b, p); break;
      case C.CTA_COUNTERS32_PACKETS: need(plen, 4); packets = be32(b, p); break;
      case C.CTA_COUNTERS32_BYTES: need(plen, 4); bytes = be32(b, p); break;
      default: break;
    }
    o += (len + 3) & ~3;
  }
  if (orig) { ev.origPackets = packets; ev.origBytes = bytes; } else { ev.replyPackets = packets; ev.replyBytes = bytes; }
}

function decodeTimestamp(b: Uint8Array, start: number, end: number, ev: FlowEvent): void {
  let o = start;
  while (o + 4 <= end) {
    const len = u16(b, o);
    if (len < 4 || o + len > end) throw MALFORMED;
    const type = u16(b, o + 2) & NLA_TYPE_MASK;
    if (type === C.CTA_TIMESTAMP_START) { need(len - 4, 8); ev.start = be64(b, o + 4); }
    else if (type === C.CTA_TIMESTAMP_STOP) { need(len - 4, 8); ev.stop = be64(b, o + 4); }
    o += (len + 3) & ~3;
  }
}

function findString(b: Uint8Array, start: number, end: number, want: number): string | undefined {
  let o = start;
  while (o + 4 <= end) {
    const len = u16(b, o);
    if (len < 4 || o + len > end) throw MALFORMED;
    if ((u16(b, o + 2) & NLA_TYPE_MASK) === want) return cstring(b, o + 4, len - 4);
    o += (len + 3) & ~3;
  }
  return undefined;
}

/**
 * Decodes one ctnetlink message at b[off, off+msgLen) (a whole nlmsghdr).
 * Returns undefined (and counts) if it is not a conntrack NEW/DELETE message
 * or is malformed.
 */
export function decodeMessage(
  b: Uint8Array, off: number, msgLen: number, stats: DecodeStats, dump = false,
): FlowEvent | undefined {
  const type = u16(b, off + 4);
  const flags = u16(b, off + 6);
  let evType: FlowEventType;
  if (type === C.CT_MSG_NEW) {
    // a dump reply (NLM_F_MULTI), also when it shares the event socket
    evType = dump || (flags & 0x2 /* NLM_F_MULTI */) ? 'DUMP' : (flags & 0x400 /* NLM_F_CREATE */) ? 'NEW' : 'UPDATE';
  } else if (type === C.CT_MSG_DELETE) {
    evType = 'DESTROY';
  } else {
    stats.unknown++;
    return undefined;
  }
  const end = off + msgLen;
  if (msgLen < NLMSG_HDRLEN + C.NFGENMSG_LEN) { stats.malformed++; return undefined; }
  const ev = emptyEvent();
  ev.type = evType;
  ev.portid = u32(b, off + 12);
  ev.family = b[off + NLMSG_HDRLEN];
  try {
    let o = off + NLMSG_HDRLEN + C.NFGENMSG_LEN;
    let proto = -1;
    let haveOrig = false;
    while (o + 4 <= end) {
      const len = u16(b, o);
      if (len < 4 || o + len > end) throw MALFORMED;
      const at = u16(b, o + 2) & NLA_TYPE_MASK;
      const p = o + 4;
      const plen = len - 4;
      switch (at) {
        case C.CTA_TUPLE_ORIG: proto = decodeTuple(b, p, o + len, ev.orig); haveOrig = true; break;
        case C.CTA_TUPLE_REPLY: decodeTuple(b, p, o + len, ev.reply); break;
        case C.CTA_STATUS: need(plen, 4); ev.status = be32(b, p); break;
        case C.CTA_PROTOINFO: decodeProtoinfo(b, p, o + len, ev); break;
        case C.CTA_HELP: ev.helper = findString(b, p, o + len, C.CTA_HELP_NAME); break;
        case C.CTA_TIMEOUT: need(plen, 4); ev.timeout = be32(b, p); break;
        case C.CTA_MARK: need(plen, 4); ev.mark = be32(b, p); break;
        case C.CTA_COUNTERS_ORIG: decodeCounters(b, p, o + len, ev, true); break;
        case C.CTA_COUNTERS_REPLY: decodeCounters(b, p, o + len, ev, false); break;
        case C.CTA_USE: need(plen, 4); ev.use = be32(b, p); break;
        case C.CTA_ID: need(plen, 4); ev.id = be32(b, p); break;
        case C.CTA_SECMARK: need(plen, 4); ev.secmark = be32(b, p); break;
        case C.CTA_ZONE: need(plen, 2); ev.zone = be16(b, p); break;
        case C.CTA_SECCTX: ev.secctx = findString(b, p, o + len, C.CTA_SECCTX_NAME); break;
        case C.CTA_TIMESTAMP: decodeTimestamp(b, p, o + len, ev); break;
        case C.CTA_TIMESTAMP_EVENT: need(plen, 8); ev.eventTime = be64(b, p); break;
        case C.CTA_LABELS: ev.labels = b.slice(p, p + plen); break;
        default: break;
      }
      o += (len + 3) & ~3;
    }
    if (!haveOrig || proto < 0 || (ev.family !== AF_INET && ev.family !== AF_INET6)) {
      stats.malformed++;
      return undefined;
    }
    ev.proto = proto;
  } catch (e) {
    if (e === MALFORMED) { stats.malformed++; return undefined; }
    throw e;
  }
  stats.events++;
  return ev;
}

export interface BatchResult {
  /** an NLMSG_DONE was seen (dump finished) */
  done: boolean;
  /** the first NLMSG_ERROR errno (positive), 0 if none */
  error: number;
}

/**
 * Walks every netlink message in b[0, len) and hands each decoded event to
 * `onEvent`. Control messages (DONE, ERROR) are reported in the result.
 */
export function decodeBatch(
  b: Uint8Array, len: number, stats: DecodeStats, onEvent: (ev: FlowEvent) => void, dump = false,
): BatchResult {
  const res: BatchResult = { done: false, error: 0 };
  let o = 0;
  while (o + NLMSG_HDRLEN <= len) {
    const mlen = u32(b, o);
    if (mlen < NLMSG_HDRLEN || o + mlen > len) {
      // A broken length: the rest of this datagram cannot be delimited.
      stats.malformed++;
      break;
    }
    const type = u16(b, o + 4);
    if (type === NLMSG_DONE) {
      stats.done++;
      res.done = true;
    } else if (type === NLMSG_ERROR) {
      const err = mlen >= NLMSG_HDRLEN + 4 ? -(u32(b, o + NLMSG_HDRLEN) | 0) : 0;
      if (err !== 0) { stats.errors++; if (!res.error) res.error = err; }
    } else if (type === NLMSG_NOOP || type === NLMSG_OVERRUN) {
      // nothing
    } else {
      const ev = decodeMessage(b, o, mlen, stats, dump);
      if (ev) onEvent(ev);
    }
    o += (mlen + 3) & ~3;
  }
  return res;
}

export { AF_INET, AF_INET6 };
