// The line the kernel's own LOG target writes for a packet (nft `log`
// without a group, iptables -j LOG; net/netfilter/nf_log_syslog.c with no
// log flags), from the packet NFLOG gave us: the prefix as it is, IN= OUT=,
// MAC= only for packets that came in, IPv4 with TOS=0x.., IPv6 with full
// addresses, TCP with RES= and CWR/ECE and no SEQ/ACK, ICMP errors with the
// packet inside [ ], MARK= only when not 0. What syslog puts before it (the
// time, the host, "kernel:") is not part of it.
import type { PacketLog } from '../../records/packet.js';
import { be16, be32 } from '../../netlink/attr.js';
import { ipv4ToString } from '../../util/ip.js';
import { colonHex, HEX2, HEX2U } from '../../util/hex.js';


/** %pI6: eight groups of four hex digits, nothing left out */
function fullIpv6(b: Uint8Array, o: number): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += (i ? ':' : '') + be16(b, o + 2 * i).toString(16).padStart(4, '0');
  return s;
}

/** bytes of the ICMP message the kernel wants before it prints a type's fields */
const ICMP_REQUIRED: Record<number, number> = { 0: 8, 3: 8 + 20, 4: 8 + 20, 5: 8 + 20, 8: 8, 11: 8 + 20, 12: 8 + 20, 13: 20, 14: 20, 17: 12, 18: 12 };

function tcp(b: Uint8Array, o: number, fragment: boolean): string {
  let s = 'PROTO=TCP ';
  if (fragment) return s;
  if (b.length - o < 20) return s + 'INCOMPLETE [' + Math.max(0, b.length - o) + ' bytes] ';
  s += 'SPT=' + be16(b, o) + ' DPT=' + be16(b, o + 2) + ' ';
  s += 'WINDOW=' + be16(b, o + 14) + ' ';
  s += 'RES=0x' + HEX2[((b[o + 12] & 0x0f) << 2) & 0xff] + ' ';
  const f = b[o + 13];
  if (f & 0x80) s += 'CWR ';
  if (f & 0x40) s += 'ECE ';
  if (f & 0x20) s += 'URG ';
  if (f & 0x10) s += 'ACK ';
  if (f & 0x08) s += 'PSH ';
  if (f & 0x04) s += 'RST ';
  if (f & 0x02) s += 'SYN ';
  if (f & 0x01) s += 'FIN ';
  return s + 'URGP=' + be16(b, o + 18) + ' ';
}

function udp(b: Uint8Array, o: number, fragment: boolean, lite: boolean): string {
  let s = lite ? 'PROTO=UDPLITE ' : 'PROTO=UDP ';
  if (fragment) return s;
  if (b.length - o < 8) return s + 'INCOMPLETE [' + Math.max(0, b.length - o) + ' bytes] ';
  return s + 'SPT=' + be16(b, o) + ' DPT=' + be16(b, o + 2) + ' LEN=' + be16(b, o + 4) + ' ';
}

/** dump_ipv4_packet from offset `o` of `b` (nested > 0: inside an ICMP error) */
function ipv4(b: Uint8Array, o: number, nested: boolean, mark: number): string {
  if (b.length - o < 20) return 'TRUNCATED';
  const ihl = (b[o] & 0x0f) * 4;
  const tos = b[o + 1];
  const fo = be16(b, o + 6);
  let s = 'SRC=' + ipv4ToString(b, o + 12) + ' DST=' + ipv4ToString(b, o + 16) + ' ';
  s += 'LEN=' + be16(b, o + 2) + ' TOS=0x' + HEX2U[tos & 0x1e] + ' PREC=0x' + HEX2U[tos & 0xe0] + ' TTL=' + b[o + 8] + ' ID=' + be16(b, o + 4) + ' ';
  if (fo & 0x8000) s += 'CE ';
  if (fo & 0x4000) s += 'DF ';
  if (fo & 0x2000) s += 'MF ';
  if (fo & 0x1fff) s += 'FRAG:' + (fo & 0x1fff) + ' ';
  const fragment = (fo & 0x1fff) !== 0;
  const l4 = o + ihl;
  switch (b[o + 9]) {
    case 6: s += tcp(b, l4, fragment); break;
    case 17: s += udp(b, l4, fragment, false); break;
    case 136: s += udp(b, l4, fragment, true); break;
    case 1: {
      s += 'PROTO=ICMP ';
      if (fragment) break;
      const left = b.length - l4;
      if (left < 4) { s += 'INCOMPLETE [' + Math.max(0, left) + ' bytes] '; break; }
      const type = b[l4];
      const code = b[l4 + 1];
      s += 'TYPE=' + type + ' CODE=' + code + ' ';
      const need = ICMP_REQUIRED[type];
      if (need !== undefined && left < need) { s += 'INCOMPLETE [' + left + ' bytes] '; break; }
      if (type === 0 || type === 8) s += 'ID=' + be16(b, l4 + 4) + ' SEQ=' + be16(b, l4 + 6) + ' ';
      else if (type === 12) s += 'PARAMETER=' + (be32(b, l4 + 4) >>> 24) + ' ';
      else if (type === 5) s += 'GATEWAY=' + ipv4ToString(b, l4 + 4) + ' ';
      if ((type === 3 || type === 4 || type === 5 || type === 11) && !nested) {
        s += '[' + ipv4(b, l4 + 8, true, 0) + '] ';
        if (type === 3 && code === 4) s += 'MTU=' + be16(b, l4 + 6) + ' ';
      }
      break;
    }
    case 51: case 50: {
      s += b[o + 9] === 51 ? 'PROTO=AH ' : 'PROTO=ESP ';
      if (fragment) break;
      const spiAt = b[o + 9] === 51 ? l4 + 4 : l4;
      if (b.length - spiAt < 4) { s += 'INCOMPLETE [' + Math.max(0, b.length - l4) + ' bytes] '; break; }
      s += 'SPI=0x' + be32(b, spiAt).toString(16) + ' ';
      break;
    }
    default:
      s += 'PROTO=' + b[o + 9] + ' ';
  }
  if (!nested && mark) s += 'MARK=0x' + mark.toString(16) + ' ';
  return s;
}

function ipv6(b: Uint8Array, o: number, nested: boolean, mark: number): string {
  if (b.length - o < 40) return 'TRUNCATED';
  const w = be32(b, o);
  let s = 'SRC=' + fullIpv6(b, o + 8) + ' DST=' + fullIpv6(b, o + 24) + ' ';
  s += 'LEN=' + (be16(b, o + 4) + 40) + ' TC=' + ((w >>> 20) & 0xff) + ' HOPLIMIT=' + b[o + 7] + ' FLOWLBL=' + (w & 0xfffff) + ' ';
  let nh = b[o + 6];
  let p = o + 40;
  let fragment = false;
  for (;;) {
    if (nh === 44) {
      if (b.length - p < 8) { s += 'TRUNCATED'; return s; }
      const fw = be16(b, p + 2);
      s += 'FRAG:' + (fw & 0xfff8) + ' ';
      if (fw & 1) s += 'INCOMPLETE ';
      s += 'ID:' + be32(b, p + 4).toString(16).padStart(8, '0') + ' ';
      if (fw & 0xfff8) { fragment = true; nh = b[p]; p += 8; break; }
      nh = b[p];
      p += 8;
    } else if (nh === 0 || nh === 43 || nh === 60) {
      if (b.length - p < 2) { s += 'TRUNCATED'; return s; }
      const next = b[p];
      p += (b[p + 1] + 1) * 8;
      nh = next;
    } else break;
  }
  if (fragment) return s + (nested ? '' : mark ? 'MARK=0x' + mark.toString(16) + ' ' : '');
  switch (nh) {
    case 6: s += tcp(b, p, false); break;
    case 17: s += udp(b, p, false, false); break;
    case 136: s += udp(b, p, false, true); break;
    case 58: {
      s += 'PROTO=ICMPv6 ';
      const left = b.length - p;
      if (left < 4) { s += 'INCOMPLETE [' + Math.max(0, left) + ' bytes] '; break; }
      const type = b[p];
      s += 'TYPE=' + type + ' CODE=' + b[p + 1] + ' ';
      if ((type === 128 || type === 129) && left >= 8) s += 'ID=' + be16(b, p + 4) + ' SEQ=' + be16(b, p + 6) + ' ';
      else if (type >= 1 && type <= 4 && !nested) {
        if (type === 4 && left >= 8) s += 'POINTER=' + be32(b, p + 4).toString(16).padStart(8, '0') + ' ';
        s += '[' + ipv6(b, p + 8, true, 0) + '] ';
        if (type === 2 && left >= 8) s += 'MTU=' + be32(b, p + 4) + ' ';
      }
      break;
    }
    default:
      s += 'PROTO=' + nh + ' ';
  }
  if (!nested && mark) s += 'MARK=0x' + mark.toString(16) + ' ';
  return s;
}

/** The kernel LOG line for the packet (without the syslog stamp). */
export function formatPacketKernel(p: PacketLog): string {
  let s = p.prefix + 'IN=' + p.indevName + ' OUT=' + p.outdevName + ' ';
  if (p.physindev) s += 'PHYSIN=' + p.physindevName + ' ';
  if (p.physoutdev) s += 'PHYSOUT=' + p.physoutdevName + ' ';
  if (p.indev) s += p.hwHeader && p.hwLen ? 'MAC=' + colonHex(p.hwHeader, Math.min(p.hwLen, p.hwHeader.length)) + ' ' : 'MAC= ';
  const b = p.payload;
  if (p.ipVersion === 4) s += ipv4(b, 0, false, p.mark ?? 0);
  else if (p.ipVersion === 6) s += ipv6(b, 0, false, p.mark ?? 0);
  return s;
}
