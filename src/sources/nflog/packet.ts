// The packet's own headers, read from the NFLOG payload (which starts at the
// network header): IPv4 (options), IPv6 (extension headers, fragments),
// TCP, UDP, UDP-Lite, SCTP, DCCP, ICMP, ICMPv6; other protocols by number.
// A payload cut short (copy range) or inconsistent is marked `truncated`:
// what could be read is kept, nothing is thrown.
import { be16, be32 } from '../../netlink/attr.js';
import { ipv4ToString, ipv6ToString } from '../../util/ip.js';
import type { PacketLog } from '../../records/packet.js';

export const IPPROTO_ICMP = 1;
export const IPPROTO_IGMP = 2;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_GRE = 47;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;

/** Fills the decoded fields of `p` from `p.payload`. */
export function parsePayload(p: PacketLog): void {
  const b = p.payload;
  if (b.length < 1) { if (isIpFamily(p)) p.truncated = true; return; }
  const v = b[0] >> 4;
  if (!isIpFamily(p) || (v !== 4 && v !== 6)) return;
  if (v === 4) parseIpv4(p, b); else parseIpv6(p, b);
}

function isIpFamily(p: PacketLog): boolean {
  return p.family === 2 || p.family === 10 || p.hwProtocol === ETH_P_IP || p.hwProtocol === ETH_P_IPV6;
}

function parseIpv4(p: PacketLog, b: Uint8Array): void {
  if (b.length < 20) { p.truncated = true; return; }
  const ihl = (b[0] & 0x0f) * 4;
  p.ipVersion = 4;
  p.tos = b[1];
  p.ipLen = be16(b, 2);
  p.ipId = be16(b, 4);
  const fo = be16(b, 6);
  p.ipFlags = fo & 0xe000;
  p.fragOff = (fo & 0x1fff) * 8;
  p.ttl = b[8];
  p.proto = b[9];
  p.src = ipv4ToString(b, 12);
  p.dst = ipv4ToString(b, 16);
  p.ihl = ihl;
  if (ihl < 20 || ihl > b.length) { p.truncated = true; return; }
  if (p.fragOff !== 0) return; // a later fragment: no transport header
  parseL4(p, b, ihl, p.proto);
}

// extension headers that chain on with (next header, length in 8-byte units - 1)
const EXT_HOP = 0;
const EXT_ROUTING = 43;
const EXT_FRAGMENT = 44;
const EXT_DSTOPTS = 60;
const EXT_NONE = 59;
const EXT_MOBILITY = 135;
const EXT_HIP = 139;
const EXT_SHIM6 = 140;

function parseIpv6(p: PacketLog, b: Uint8Array): void {
  if (b.length < 40) { p.truncated = true; return; }
  p.ipVersion = 6;
  const w = be32(b, 0);
  p.tos = (w >>> 20) & 0xff;
  p.flowLabel = w & 0xfffff;
  p.ipLen = be16(b, 4) + 40;
  p.ttl = b[7];
  p.src = ipv6ToString(b, 8);
  p.dst = ipv6ToString(b, 24);
  let nh = b[6];
  let o = 40;
  // walk the extension headers (bounded: each one moves forward)
  for (;;) {
    if (nh === EXT_HOP || nh === EXT_ROUTING || nh === EXT_DSTOPTS || nh === EXT_MOBILITY || nh === EXT_HIP || nh === EXT_SHIM6) {
      if (o + 2 > b.length) { p.proto = nh; p.truncated = true; return; }
      const next = b[o];
      o += (b[o + 1] + 1) * 8;
      nh = next;
    } else if (nh === EXT_FRAGMENT) {
      if (o + 8 > b.length) { p.proto = nh; p.truncated = true; return; }
      const fw = be16(b, o + 2);
      p.fragOff = fw & 0xfff8;
      p.ipFlags = fw & 1 ? 0x2000 : 0;
      p.ipId = be32(b, o + 4);
      nh = b[o];
      o += 8;
      if (p.fragOff !== 0) { p.proto = nh; return; }
    } else if (nh === IPPROTO_AH) {
      if (o + 2 > b.length) { p.proto = nh; p.truncated = true; return; }
      const next = b[o];
      o += (b[o + 1] + 2) * 4;
      nh = next;
    } else break;
    if (o > b.length) { p.proto = nh; p.truncated = true; return; }
  }
  p.proto = nh;
  if (nh === EXT_NONE) return;
  parseL4(p, b, o, nh);
}

function parseL4(p: PacketLog, b: Uint8Array, o: number, proto: number): void {
  const left = b.length - o;
  switch (proto) {
    case IPPROTO_TCP:
      if (left < 20) { p.truncated = true; return; }
      p.l4Off = o;
      p.sport = be16(b, o);
      p.dport = be16(b, o + 2);
      p.tcpSeq = be32(b, o + 4);
      p.tcpAck = be32(b, o + 8);
      p.tcpHdrLen = (b[o + 12] >> 4) * 4;
      p.tcpRes = b[o + 12] & 0x0f;
      p.tcpFlags = b[o + 13];
      p.tcpWindow = be16(b, o + 14);
      p.tcpUrgp = be16(b, o + 18);
      return;
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
      if (left < 8) { p.truncated = true; return; }
      p.l4Off = o;
      p.sport = be16(b, o);
      p.dport = be16(b, o + 2);
      return;
    case IPPROTO_SCTP:
    case IPPROTO_DCCP:
      if (left < 12) { p.truncated = true; return; }
      p.l4Off = o;
      p.sport = be16(b, o);
      p.dport = be16(b, o + 2);
      return;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      if (left < 4) { p.truncated = true; return; }
      p.l4Off = o;
      p.icmpType = b[o];
      p.icmpCode = b[o + 1];
      if (left >= 8 && isEcho(proto, p.icmpType)) {
        p.icmpId = be16(b, o + 4);
        p.icmpSeq = be16(b, o + 6);
      }
      return;
    default:
      // GRE, ESP, IGMP, ...: the protocol number, and where its header is
      if (left > 0) p.l4Off = o;
  }
}

/** ICMP messages whose second word is identifier + sequence */
function isEcho(proto: number, type: number): boolean {
  if (proto === IPPROTO_ICMP) return type === 0 || type === 8 || type === 13 || type === 14 || type === 15 || type === 16 || type === 17 || type === 18;
  return type === 128 || type === 129;
}
