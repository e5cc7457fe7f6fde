// ctnetlink -> FlowEvent, straight from the receive buffer: one pass over the
// attributes, no intermediate object per attribute. Malformed, truncated or
// unknown messages are counted and skipped, never thrown.
import * as C from './constants.js';
import { AF_INET, AF_INET6, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_NOOP, NLMSG_OVERRUN } from '../../netlink/constants.js';
import { ipv4ToString, ipv6ToString } from '../../util/ip.js';
import { MALFORMED, Nla, u16, u32 } from '../../netlink/attr.js';
import { emptyEvent, emptyTuple, type FlowEvent, type FlowEventType, type Tuple } from '../../records/event.js';
import { emptyExpect, type ExpectEvent, type ExpectEventType } from '../../records/expect.js';

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

// one cursor per nesting depth, reused for every message
const c0 = new Nla();
const c1 = new Nla();
const c2 = new Nla();

function decodeIp(a: Nla, t: Tuple): void {
  while (a.next()) {
    switch (a.type) {
      case C.CTA_IP_V4_SRC: a.need(4); t.src = ipv4ToString(a.b, a.p); break;
      case C.CTA_IP_V4_DST: a.need(4); t.dst = ipv4ToString(a.b, a.p); break;
      case C.CTA_IP_V6_SRC: a.need(16); t.src = ipv6ToString(a.b, a.p); break;
      case C.CTA_IP_V6_DST: a.need(16); t.dst = ipv6ToString(a.b, a.p); break;
      default: break;
    }
  }
}

function decodeProto(a: Nla, t: Tuple): number {
  let proto = -1;
  while (a.next()) {
    switch (a.type) {
      case C.CTA_PROTO_NUM: proto = a.u8(); break;
      case C.CTA_PROTO_SRC_PORT: t.sport = a.be16(); break;
      case C.CTA_PROTO_DST_PORT: t.dport = a.be16(); break;
      case C.CTA_PROTO_ICMP_ID:
      case C.CTA_PROTO_ICMPV6_ID: t.icmpId = a.be16(); break;
      case C.CTA_PROTO_ICMP_TYPE:
      case C.CTA_PROTO_ICMPV6_TYPE: t.icmpType = a.u8(); break;
      case C.CTA_PROTO_ICMP_CODE:
      case C.CTA_PROTO_ICMPV6_CODE: t.icmpCode = a.u8(); break;
      default: break;
    }
  }
  return proto;
}

/** Decodes a CTA_TUPLE_* nest into `t`; returns the protocol number or -1. */
function decodeTuple(a: Nla, t: Tuple): number {
  let proto = -1;
  while (a.next()) {
    switch (a.type) {
      case C.CTA_TUPLE_IP: decodeIp(c2.reset(a.b, a.p, a.end), t); break;
      case C.CTA_TUPLE_PROTO: proto = decodeProto(c2.reset(a.b, a.p, a.end), t); break;
      case C.CTA_TUPLE_ZONE: t.zone = a.be16(); break;
      default: break;
    }
  }
  return proto;
}

function decodeProtoinfo(a: Nla, ev: FlowEvent): void {
  while (a.next()) {
    if (a.type === C.CTA_PROTOINFO_SCTP) { decodeSctp(c2.reset(a.b, a.p, a.end), ev); continue; }
    // each protocol nest starts with its *_STATE attribute (u8)
    const state = findU8(c2.reset(a.b, a.p, a.end), 1);
    if (a.type === C.CTA_PROTOINFO_TCP) ev.tcpState = state;
    else if (a.type === C.CTA_PROTOINFO_DCCP) ev.dccpState = state;
  }
}

/** CTA_PROTOINFO_SCTP: the state (u8) and the verification tags of both directions (be32) */
function decodeSctp(a: Nla, ev: FlowEvent): void {
  while (a.next()) {
    if (a.type === 1) ev.sctpState = a.u8();
    else if (a.type === 2) ev.sctpVtagOrig = a.be32();
    else if (a.type === 3) ev.sctpVtagReply = a.be32();
  }
}

function findU8(a: Nla, want: number): number | undefined {
  while (a.next()) if (a.type === want) return a.u8();
  return undefined;
}

function findString(a: Nla, want: number): string | undefined {
  while (a.next()) if (a.type === want) return a.str();
  return undefined;
}

function decodeCounters(a: Nla, ev: FlowEvent, orig: boolean): void {
  let packets: number | undefined;
  let bytes: number | undefined;
  while (a.next()) {
    switch (a.type) {
      case C.CTA_COUNTERS_PACKETS: packets = a.be64n(); break;
      case C.CTA_COUNTERS_BYTES: bytes = a.be64n(); break;
      case C.CTA_COUNTERS32_PACKETS: packets = a.be32(); break;
      case C.CTA_COUNTERS32_BYTES: bytes = a.be32(); break;
      default: break;
    }
  }
  if (orig) { ev.origPackets = packets; ev.origBytes = bytes; } else { ev.replyPackets = packets; ev.replyBytes = bytes; }
}

function decodeTimestamp(a: Nla, ev: FlowEvent): void {
  while (a.next()) {
    if (a.type === C.CTA_TIMESTAMP_START) ev.start = a.be64();
    else if (a.type === C.CTA_TIMESTAMP_STOP) ev.stop = a.be64();
  }
}

/**
 * Decodes the conntrack attributes in b[start, end) (the body of a
 * ctnetlink message, or an NFLOG packet's NFULA_CT nest) into `ev`.
 * Returns the original tuple's protocol number, or -1 if the attributes
 * have no original tuple. Throws MALFORMED.
 */
export function decodeCtAttrs(b: Uint8Array, start: number, end: number, ev: FlowEvent): number {
  const a = c0.reset(b, start, end);
  let proto = -1;
  let haveOrig = false;
  while (a.next()) {
    switch (a.type) {
      case C.CTA_TUPLE_ORIG: proto = decodeTuple(c1.reset(b, a.p, a.end), ev.orig); haveOrig = true; break;
      case C.CTA_TUPLE_REPLY: decodeTuple(c1.reset(b, a.p, a.end), ev.reply); break;
      case C.CTA_STATUS: ev.status = a.be32(); break;
      case C.CTA_PROTOINFO: decodeProtoinfo(c1.reset(b, a.p, a.end), ev); break;
      case C.CTA_HELP: ev.helper = findString(c1.reset(b, a.p, a.end), C.CTA_HELP_NAME); break;
      case C.CTA_TIMEOUT: ev.timeout = a.be32(); break;
      case C.CTA_MARK: ev.mark = a.be32(); break;
      case C.CTA_COUNTERS_ORIG: decodeCounters(c1.reset(b, a.p, a.end), ev, true); break;
      case C.CTA_COUNTERS_REPLY: decodeCounters(c1.reset(b, a.p, a.end), ev, false); break;
      case C.CTA_USE: ev.use = a.be32(); break;
      case C.CTA_ID: ev.id = a.be32(); break;
      case C.CTA_SECMARK: ev.secmark = a.be32(); break;
      case C.CTA_ZONE: ev.zone = a.be16(); break;
      case C.CTA_SECCTX: ev.secctx = findString(c1.reset(b, a.p, a.end), C.CTA_SECCTX_NAME); break;
      case C.CTA_TIMESTAMP: decodeTimestamp(c1.reset(b, a.p, a.end), ev); break;
      case C.CTA_TIMESTAMP_EVENT: ev.eventTime = a.be64(); break;
      case C.CTA_LABELS: ev.labels = a.bytes(); break;
      default: break;
    }
  }
  return haveOrig ? proto : -1;
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
    const proto = decodeCtAttrs(b, off + NLMSG_HDRLEN + C.NFGENMSG_LEN, end, ev);
    if (proto < 0 || (ev.family !== AF_INET && ev.family !== AF_INET6)) {
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
  return walkBatch(b, len, stats, (o, mlen) => {
    const ev = decodeMessage(b, o, mlen, stats, dump);
    if (ev) onEvent(ev);
  });
}

/** The messages of a batch to `onMessage` (offset, length); the end of a dump and the first error in the result. */
function walkBatch(b: Uint8Array, len: number, stats: DecodeStats, onMessage: (off: number, len: number) => void): BatchResult {
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
      onMessage(o, mlen);
    }
    o += (mlen + 3) & ~3;
  }
  return res;
}

export { AF_INET, AF_INET6 };

const c3 = new Nla();

/**
 * Decodes one expectation message (IPCTNL_MSG_EXP_NEW / _DELETE of
 * NFNL_SUBSYS_CTNETLINK_EXP). Undefined (and counted) for another kind of
 * message, or one without its expected tuple.
 */
export function decodeExpectMessage(b: Uint8Array, off: number, msgLen: number, stats: DecodeStats, dump = false): ExpectEvent | undefined {
  const type = u16(b, off + 4);
  const flags = u16(b, off + 6);
  let evType: ExpectEventType;
  if (type === C.EXP_MSG_NEW) {
    evType = dump || (flags & 0x2 /* NLM_F_MULTI */) ? 'DUMP' : (flags & 0x400 /* NLM_F_CREATE */) ? 'NEW' : 'UPDATE';
  } else if (type === C.EXP_MSG_DELETE) {
    evType = 'DESTROY';
  } else {
    stats.unknown++;
    return undefined;
  }
  if (msgLen < NLMSG_HDRLEN + C.NFGENMSG_LEN) { stats.malformed++; return undefined; }
  const ex = emptyExpect();
  ex.type = evType;
  ex.portid = u32(b, off + 12);
  ex.family = b[off + NLMSG_HDRLEN];
  let haveTuple = false;
  try {
    const a = c0.reset(b, off + NLMSG_HDRLEN + C.NFGENMSG_LEN, off + msgLen);
    while (a.next()) {
      switch (a.type) {
        case C.CTA_EXPECT_MASTER: ex.masterProto = decodeTuple(c1.reset(b, a.p, a.end), ex.master); break;
        case C.CTA_EXPECT_TUPLE: ex.proto = decodeTuple(c1.reset(b, a.p, a.end), ex.expected); haveTuple = true; break;
        case C.CTA_EXPECT_MASK: ex.maskProto = decodeTuple(c1.reset(b, a.p, a.end), ex.mask); break;
        case C.CTA_EXPECT_TIMEOUT: ex.timeout = a.be32(); break;
        case C.CTA_EXPECT_ID: ex.id = a.be32(); break;
        case C.CTA_EXPECT_HELP_NAME: ex.helper = a.str(); break;
        case C.CTA_EXPECT_ZONE: ex.zone = a.be16(); break;
        case C.CTA_EXPECT_FLAGS: ex.flags = a.be32(); break;
        case C.CTA_EXPECT_CLASS: ex.class = a.be32(); break;
        case C.CTA_EXPECT_FN: ex.fn = a.str(); break;
        case C.CTA_EXPECT_NAT: {
          const n = c1.reset(b, a.p, a.end);
          while (n.next()) {
            if (n.type === C.CTA_EXPECT_NAT_DIR) ex.natDir = n.be32();
            else if (n.type === C.CTA_EXPECT_NAT_TUPLE) { ex.nat = emptyTuple(); decodeTuple(c3.reset(b, n.p, n.end), ex.nat); }
          }
          break;
        }
        default: break;
      }
    }
  } catch (e) {
    if (e === MALFORMED) { stats.malformed++; return undefined; }
    throw e;
  }
  if (!haveTuple || ex.proto < 0) { stats.malformed++; return undefined; }
  stats.events++;
  return ex;
}

/** The expectation messages of a batch (as decodeBatch); the end of a dump and errors in the result. */
export function decodeExpectBatch(b: Uint8Array, len: number, stats: DecodeStats, onExpect: (ex: ExpectEvent) => void, dump = false): BatchResult {
  return walkBatch(b, len, stats, (o, mlen) => {
    const ex = decodeExpectMessage(b, o, mlen, stats, dump);
    if (ex) onExpect(ex);
  });
}
