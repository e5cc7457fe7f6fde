// nfnetlink_log -> PacketLog, straight from the receive buffer with the
// shared attribute cursor. Malformed messages are counted and skipped, never
// thrown; a packet whose own headers are cut short is kept and counted.
import { AF_INET, AF_INET6, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_NOOP, NLMSG_OVERRUN } from '../../netlink/constants.js';
import { be32, copyBytes, cstring, MALFORMED, Nla, u16, u32 } from '../../netlink/attr.js';
import { NFGENMSG_LEN } from '../conntrack/constants.js';
import { decodeCtAttrs } from '../conntrack/decode.js';
import { emptyEvent } from '../../records/event.js';
import { emptyPacket, type PacketLog } from '../../records/packet.js';
import * as C from './constants.js';
import { parsePayload } from './packet.js';
import { LastBytes } from '../../util/last.js';

export interface NflogDecodeStats {
  /** packet messages decoded */
  packets: number;
  /** netlink messages that were not whole or not well-formed (skipped) */
  malformed: number;
  /** packets whose own headers were cut short or inconsistent (kept) */
  truncatedPackets: number;
  /** messages of other types, skipped */
  unknown: number;
  /** NLMSG_ERROR messages with a non-zero error */
  errors: number;
  /** packets the per-group sequence numbers show were never received */
  seqGaps: number;
}

export function newNflogStats(): NflogDecodeStats {
  return { packets: 0, malformed: 0, truncatedPackets: 0, unknown: 0, errors: 0, seqGaps: 0 };
}

const c0 = new Nla();
const c1 = new Nla();

// The packets of one rule and one link repeat their prefix and link-layer
// header: the last copy (bytes or text) is given again while the bytes are
// the same, instead of a new one per packet. Records are read downstream,
// never changed, so sharing is safe.

/** b[o, o+n) as a copy of its own, the last one if the same bytes */
function copyLast(last: LastBytes<Uint8Array>, b: Uint8Array, o: number, n: number): Uint8Array {
  const v = last.get(b, o, n);
  if (v !== undefined) return v;
  const c = copyBytes(b, o, o + n);
  return last.keep(c, c);
}
/** b[o, o+n) up to the first NUL as text, the last one if the same bytes */
function strLast(last: LastBytes<string>, b: Uint8Array, o: number, n: number): string {
  return last.get(b, o, n) ?? last.keep(copyBytes(b, o, o + n), cstring(b, o, n));
}
const lastPrefix = new LastBytes<string>();
const lastHwHeader = new LastBytes<Uint8Array>();
const lastHwAddr = new LastBytes<Uint8Array>();

/**
 * Decodes one NFLOG packet message at b[off, off+msgLen). `recvUs` is when
 * it was read (the time when the kernel sent no timestamp).
 */
export function decodePacket(b: Uint8Array, off: number, msgLen: number, stats: NflogDecodeStats, recvUs: number, keepRaw = false): PacketLog | undefined {
  if (u16(b, off + 4) !== C.NFLOG_PACKET) { stats.unknown++; return undefined; }
  if (msgLen < NLMSG_HDRLEN + NFGENMSG_LEN) { stats.malformed++; return undefined; }
  const p = emptyPacket();
  p.family = b[off + NLMSG_HDRLEN];
  p.group = (b[off + NLMSG_HDRLEN + 2] << 8) | b[off + NLMSG_HDRLEN + 3];
  p.time = recvUs;
  let gotHdr = false;
  try {
    const a = c0.reset(b, off + NLMSG_HDRLEN + NFGENMSG_LEN, off + msgLen);
    while (a.next()) {
      switch (a.type) {
        case C.NFULA_PACKET_HDR: a.need(3); p.hwProtocol = (b[a.p] << 8) | b[a.p + 1]; p.hook = b[a.p + 2]; gotHdr = true; break;
        case C.NFULA_MARK: p.mark = a.be32(); break;
        case C.NFULA_TIMESTAMP: {
          a.need(16);
          const sec = be32(b, a.p) * 4294967296 + be32(b, a.p + 4);
          const usec = be32(b, a.p + 8) * 4294967296 + be32(b, a.p + 12);
          // a time no clock gives (past year 9999, a fraction of a second
          // that is not one) is not taken: the packet keeps when it was read
          if (sec <= 253402300799 && usec < 1e6) {
            p.time = sec * 1e6 + usec;
            p.kernelTime = true;
          }
          break;
        }
        case C.NFULA_IFINDEX_INDEV: p.indev = a.be32(); break;
        case C.NFULA_IFINDEX_OUTDEV: p.outdev = a.be32(); break;
        case C.NFULA_IFINDEX_PHYSINDEV: p.physindev = a.be32(); break;
        case C.NFULA_IFINDEX_PHYSOUTDEV: p.physoutdev = a.be32(); break;
        case C.NFULA_HWADDR: {
          a.need(4);
          const n = Math.min((b[a.p] << 8) | b[a.p + 1], 8, a.plen - 4);
          p.hwAddr = copyLast(lastHwAddr, b, a.p + 4, n);
          break;
        }
        case C.NFULA_PAYLOAD: p.payload = a.bytes(); break;
        case C.NFULA_PREFIX: p.prefix = strLast(lastPrefix, b, a.p, a.plen); break;
        case C.NFULA_UID: p.uid = a.be32(); break;
        case C.NFULA_GID: p.gid = a.be32(); break;
        case C.NFULA_SEQ: p.seq = a.be32(); break;
        case C.NFULA_SEQ_GLOBAL: p.seqGlobal = a.be32(); break;
        case C.NFULA_HWTYPE: p.hwType = a.be16(); break;
        case C.NFULA_HWHEADER: p.hwHeader = copyLast(lastHwHeader, b, a.p, a.plen); break;
        case C.NFULA_HWLEN: p.hwLen = a.be16(); break;
        case C.NFULA_CT: {
          const ev = emptyEvent();
          ev.type = 'UPDATE';
          const proto = decodeCtAttrs(b, a.p, a.end, ev);
          if (proto >= 0) { ev.proto = proto; p.ct = ev; }
          break;
        }
        case C.NFULA_CT_INFO: p.ctInfo = a.be32(); break;
        case C.NFULA_VLAN: {
          const v = c1.reset(b, a.p, a.end);
          while (v.next()) {
            if (v.type === C.NFULA_VLAN_PROTO) p.vlanProto = v.be16();
            else if (v.type === C.NFULA_VLAN_TCI) p.vlanTci = v.be16();
          }
          break;
        }
        case C.NFULA_L2HDR: p.l2hdr = a.bytes(); break;
        default: break;
      }
    }
  } catch (e) {
    if (e === MALFORMED) { stats.malformed++; return undefined; }
    throw e;
  }
  if (!gotHdr) { stats.malformed++; return undefined; }
  if (keepRaw) p.raw = copyBytes(b, off + NLMSG_HDRLEN, off + msgLen);
  if (p.ct) p.ct.family = p.family === AF_INET6 || (p.payload.length > 0 && p.payload[0] >> 4 === 6) ? AF_INET6 : AF_INET;
  parsePayload(p);
  if (p.truncated) stats.truncatedPackets++;
  stats.packets++;
  return p;
}

/** Per-group sequence tracking: counts the packets the numbers show were skipped. */
export class SeqTracker {
  private last = new Map<number, number>();

  /** `p.seq` in order; returns how many were skipped before it (0 if none or unknown) */
  check(p: PacketLog): number {
    if (p.seq === undefined) return 0;
    const prev = this.last.get(p.group);
    this.last.set(p.group, p.seq);
    if (prev === undefined) return 0;
    const gap = (p.seq - prev - 1) >>> 0;
    // a restart of the numbering (the group was rebound) is not a gap
    return gap < 0x80000000 ? gap : 0;
  }

  /** the group was just bound by us: its numbering starts at 0, so a loss before the first packet counts too */
  bound(group: number): void {
    this.last.set(group, 0xffffffff);
  }

  reset(): void {
    this.last.clear();
  }
}

export interface NflogBatchResult {
  /** NLMSG_ERROR acknowledgements (errno 0) seen */
  acks: number;
  /** every NLMSG_ERROR answer with a non-zero errno (positive), and the group its request named (-1: unknown), in order */
  errors: Array<[number, number]>;
}

/** Walks every netlink message in b[0, len), handing each packet to `onPacket`. */
export function decodeNflogBatch(
  b: Uint8Array, len: number, stats: NflogDecodeStats, recvUs: number, onPacket: (p: PacketLog) => void, keepRaw = false,
): NflogBatchResult {
  const res: NflogBatchResult = { acks: 0, errors: [] };
  let o = 0;
  while (o + NLMSG_HDRLEN <= len) {
    const mlen = u32(b, o);
    if (mlen < NLMSG_HDRLEN || o + mlen > len) { stats.malformed++; break; }
    const type = u16(b, o + 4);
    if (type === NLMSG_ERROR) {
      const err = mlen >= NLMSG_HDRLEN + 4 ? -(u32(b, o + NLMSG_HDRLEN) | 0) : 0;
      if (err !== 0) {
        stats.errors++;
        // the error carries the request back: its nfgenmsg names the group
        const req = o + NLMSG_HDRLEN + 4;
        const group = mlen >= NLMSG_HDRLEN + 4 + NLMSG_HDRLEN + NFGENMSG_LEN && u16(b, req + 4) === C.NFLOG_CONFIG ? (b[req + NLMSG_HDRLEN + 2] << 8) | b[req + NLMSG_HDRLEN + 3] : -1;
        res.errors.push([err, group]);
      } else res.acks++;
    } else if (type === NLMSG_DONE || type === NLMSG_NOOP || type === NLMSG_OVERRUN) {
      // nothing
    } else {
      const p = decodePacket(b, o, mlen, stats, recvUs, keepRaw);
      if (p) onPacket(p);
    }
    o += (mlen + 3) & ~3;
  }
  return res;
}

export { AF_INET, AF_INET6 };
