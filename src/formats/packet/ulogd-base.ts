// What ulogd2 2.0.8's BASE plugin makes of a packet: its keys and their
// validity, computed the way BASE computes them (its quirks included: a
// later IPv4 fragment is read as if it began with a transport header, SCTP
// is not parsed over IPv6, AH/ESP never give an SPI, an IPv4 packet that is
// only a header is not parsed at all). The ulogd formats (logemu, ulogd-json)
// print from these, so they match ulogd byte for byte; conntrail's own
// formats use the record's own decoding instead.
import type { PacketLog } from '../../records/packet.js';
import { be16, be32 } from '../../netlink/attr.js';
import { ipv4ToString, ipv6ToString } from '../../util/ip.js';

/** BASE's output keys; undefined = not valid */
export interface UlogdBase {
  saddr?: string; daddr?: string;
  protocol?: number; tos?: number; ttl?: number; totlen?: number; ihl?: number; csum?: number; id?: number; fragoff?: number;
  ip6PayloadLen?: number; ip6Priority?: number; ip6FlowLabel?: number; ip6HopLimit?: number; ip6NextHdr?: number;
  ip6FragOff?: number; ip6FragId?: number;
  tcpSport?: number; tcpDport?: number; tcpSeq?: number; tcpAck?: number; tcpWindow?: number;
  tcpUrg?: number; tcpUrgp?: number; tcpAckF?: number; tcpPsh?: number; tcpRst?: number; tcpSyn?: number; tcpFin?: number;
  tcpRes1?: number; tcpRes2?: number; tcpCsum?: number;
  udpSport?: number; udpDport?: number; udpLen?: number; udpCsum?: number;
  icmpType?: number; icmpCode?: number; icmpEchoId?: number; icmpEchoSeq?: number; icmpGateway?: number; icmpFragMtu?: number; icmpCsum?: number;
  icmp6Type?: number; icmp6Code?: number; icmp6EchoId?: number; icmp6EchoSeq?: number; icmp6Csum?: number;
  sctpSport?: number; sctpDport?: number; sctpCsum?: number;
  arpHwType?: number; arpProtoType?: number; arpOp?: number; arpSha?: Uint8Array;
}

/** BASE's keys in one fixed shape (every key present, undefined = not valid): fast to fill and read */
class Keys implements UlogdBase {
  saddr: string | undefined = undefined;
  daddr: string | undefined = undefined;
  protocol: number | undefined = undefined;
  tos: number | undefined = undefined;
  ttl: number | undefined = undefined;
  totlen: number | undefined = undefined;
  ihl: number | undefined = undefined;
  csum: number | undefined = undefined;
  id: number | undefined = undefined;
  fragoff: number | undefined = undefined;
  ip6PayloadLen: number | undefined = undefined;
  ip6Priority: number | undefined = undefined;
  ip6FlowLabel: number | undefined = undefined;
  ip6HopLimit: number | undefined = undefined;
  ip6NextHdr: number | undefined = undefined;
  ip6FragOff: number | undefined = undefined;
  ip6FragId: number | undefined = undefined;
  tcpSport: number | undefined = undefined;
  tcpDport: number | undefined = undefined;
  tcpSeq: number | undefined = undefined;
  tcpAck: number | undefined = undefined;
  tcpWindow: number | undefined = undefined;
  tcpUrg: number | undefined = undefined;
  tcpUrgp: number | undefined = undefined;
  tcpAckF: number | undefined = undefined;
  tcpPsh: number | undefined = undefined;
  tcpRst: number | undefined = undefined;
  tcpSyn: number | undefined = undefined;
  tcpFin: number | undefined = undefined;
  tcpRes1: number | undefined = undefined;
  tcpRes2: number | undefined = undefined;
  tcpCsum: number | undefined = undefined;
  udpSport: number | undefined = undefined;
  udpDport: number | undefined = undefined;
  udpLen: number | undefined = undefined;
  udpCsum: number | undefined = undefined;
  icmpType: number | undefined = undefined;
  icmpCode: number | undefined = undefined;
  icmpEchoId: number | undefined = undefined;
  icmpEchoSeq: number | undefined = undefined;
  icmpGateway: number | undefined = undefined;
  icmpFragMtu: number | undefined = undefined;
  icmpCsum: number | undefined = undefined;
  icmp6Type: number | undefined = undefined;
  icmp6Code: number | undefined = undefined;
  icmp6EchoId: number | undefined = undefined;
  icmp6EchoSeq: number | undefined = undefined;
  icmp6Csum: number | undefined = undefined;
  sctpSport: number | undefined = undefined;
  sctpDport: number | undefined = undefined;
  sctpCsum: number | undefined = undefined;
  arpHwType: number | undefined = undefined;
  arpProtoType: number | undefined = undefined;
  arpOp: number | undefined = undefined;
  arpSha: Uint8Array | undefined = undefined;
}

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_ARP = 0x0806;
/** little-endian read: a checksum BASE stores without ntohs */
const le16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);

export function ulogdBase(p: PacketLog): UlogdBase {
  const k: UlogdBase = new Keys();
  const b = p.payload;
  switch (p.family) {
    case 2: ipv4(k, b); break;
    case 10: ipv6(k, b); break;
    case 7:
      if (p.hwProtocol === ETH_P_IP) ipv4(k, b);
      else if (p.hwProtocol === ETH_P_IPV6) ipv6(k, b);
      else if (p.hwProtocol === ETH_P_ARP) arp(k, b);
      break;
    case 3: arp(k, b); break;
    default: break;
  }
  return k;
}

function ipv4(k: UlogdBase, b: Uint8Array): void {
  const len = b.length;
  if (len < 20) return;
  const ihl = b[0] & 0x0f;
  if (len <= ihl * 4) return;
  k.saddr = ipv4ToString(b, 12);
  k.daddr = ipv4ToString(b, 16);
  k.protocol = b[9];
  k.tos = b[1];
  k.ttl = b[8];
  k.totlen = be16(b, 2);
  k.ihl = ihl;
  k.csum = be16(b, 10);
  k.id = be16(b, 4);
  k.fragoff = be16(b, 6);
  const o = ihl * 4;
  const left = len - o;
  switch (b[9]) {
    case 6: tcp(k, b, o, left); break;
    case 17: udp(k, b, o, left); break;
    case 1: icmp(k, b, o, left); break;
    case 132: sctp(k, b, o, left); break;
    default: break;
  }
}

function ipv6(k: UlogdBase, b: Uint8Array): void {
  let len = b.length;
  if (len < 40) return;
  k.saddr = ipv6ToString(b, 8);
  k.daddr = ipv6ToString(b, 24);
  k.ip6PayloadLen = be16(b, 4);
  const flow = be32(b, 0);
  k.ip6Priority = (flow & 0x0ff00000) >>> 20;
  k.ip6FlowLabel = flow & 0x000fffff;
  k.ip6HopLimit = b[7];
  let cur = b[6];
  let ptr = 40;
  len -= 40;
  let fragment = false;
  walk: while (cur !== 59 && (cur === 0 || cur === 43 || cur === 44 || cur === 50 || cur === 51 || cur === 60)) {
    if (len < 2) return;
    let hdrlen: number;
    switch (cur) {
      case 44:
        hdrlen = 8;
        if (len < hdrlen) return;
        len -= hdrlen;
        k.ip6FragOff = be16(b, ptr + 2) & 0xfff8;
        k.ip6FragId = be32(b, ptr + 4);
        if (k.ip6FragOff) fragment = true;
        break;
      case 0: case 43: case 60:
        if (fragment) break walk;
        hdrlen = (b[ptr + 1] + 1) << 3;
        if (len < hdrlen) return;
        len -= hdrlen;
        break;
      case 51:
        if (fragment) break walk;
        hdrlen = (b[ptr + 1] + 2) << 2;
        if (len < hdrlen) return;
        len -= hdrlen;
        break;
      default: // 50 ESP: its length is read the same way, then the walk stops
        if (fragment) break walk;
        hdrlen = (b[ptr + 1] + 2) << 2;
        if (len < hdrlen) return;
        len -= hdrlen;
        k.ip6NextHdr = cur;
        return;
    }
    cur = b[ptr];
    ptr += hdrlen;
  }
  if (!fragment) {
    k.protocol = cur;
    switch (cur) {
      case 6: tcp(k, b, ptr, len); break;
      case 17: udp(k, b, ptr, len); break;
      case 58: icmpv6(k, b, ptr, len); break;
      default: break;
    }
  }
  k.ip6NextHdr = cur;
}

function tcp(k: UlogdBase, b: Uint8Array, o: number, len: number): void {
  if (len < 20) return;
  k.tcpSport = be16(b, o);
  k.tcpDport = be16(b, o + 2);
  k.tcpSeq = be32(b, o + 4);
  k.tcpAck = be32(b, o + 8);
  k.tcpWindow = be16(b, o + 14);
  const f = b[o + 13];
  k.tcpUrg = (f >> 5) & 1;
  if (k.tcpUrg) k.tcpUrgp = be16(b, o + 18);
  k.tcpAckF = (f >> 4) & 1;
  k.tcpPsh = (f >> 3) & 1;
  k.tcpRst = (f >> 2) & 1;
  k.tcpSyn = (f >> 1) & 1;
  k.tcpFin = f & 1;
  k.tcpRes1 = b[o + 12] & 0x0f;
  k.tcpRes2 = f >> 6;
  k.tcpCsum = be16(b, o + 16);
}

function udp(k: UlogdBase, b: Uint8Array, o: number, len: number): void {
  if (len < 8) return;
  k.udpSport = be16(b, o);
  k.udpDport = be16(b, o + 2);
  k.udpLen = be16(b, o + 4);
  k.udpCsum = be16(b, o + 6);
}

function sctp(k: UlogdBase, b: Uint8Array, o: number, len: number): void {
  if (len < 12) return;
  k.sctpSport = be16(b, o);
  k.sctpDport = be16(b, o + 2);
  k.sctpCsum = be32(b, o + 8);
}

function icmp(k: UlogdBase, b: Uint8Array, o: number, len: number): void {
  if (len < 8) return;
  const type = b[o];
  k.icmpType = type;
  k.icmpCode = b[o + 1];
  if (type === 0 || type === 8) {
    k.icmpEchoId = be16(b, o + 4);
    k.icmpEchoSeq = be16(b, o + 6);
  } else if (type === 5 || type === 12) {
    k.icmpGateway = be32(b, o + 4);
  } else if (type === 3 && b[o + 1] === 4) {
    k.icmpFragMtu = be16(b, o + 6);
  }
  k.icmpCsum = le16(b, o + 2);
}

function icmpv6(k: UlogdBase, b: Uint8Array, o: number, len: number): void {
  if (len < 8) return;
  const type = b[o];
  k.icmp6Type = type;
  k.icmp6Code = b[o + 1];
  if (type === 128 || type === 129) {
    k.icmp6EchoId = be16(b, o + 4);
    k.icmp6EchoSeq = be16(b, o + 6);
  }
  k.icmp6Csum = le16(b, o + 2);
}

function arp(k: UlogdBase, b: Uint8Array): void {
  if (b.length < 28) return;
  k.arpHwType = be16(b, 0);
  k.arpProtoType = be16(b, 2);
  k.arpOp = be16(b, 6);
  k.arpSha = b.subarray(8, 14);
}
