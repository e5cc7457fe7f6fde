// ulogd2 2.0.8's packet outputs, byte for byte:
//  - logemu: NFLOG,BASE,IFINDEX,IP2STR,PRINTPKT,LOGEMU (the iptables-LOG-like
//    line after a syslog-like stamp and the host name)
//  - ulogd-json: NFLOG,BASE,IFINDEX,IP2STR[,HWHDR],JSON (the same keys, order
//    and values; jansson's ", " / ": " spacing)
// The packet's fields are what BASE makes of it (ulogd-base.ts).
import type { PacketLog } from '../../records/packet.js';
import { ctime } from '../../util/time.js';
import { colonHex, flat, HEX2U } from '../../util/hex.js';
import { janssonString } from '../../util/json.js';
import { ulogdZoneSuffix } from '../../util/time.js';
import { dvcJson, shortHostname } from '../ulogd.js';
import { ulogdBase, type UlogdBase } from './ulogd-base.js';

const macText = colonHex;

function protoBlock(k: UlogdBase, proto: number): string {
  switch (proto) {
    case 6: {
      if (k.tcpSport === undefined) return 'PROTO=TCP INCOMPLETE';
      let s = 'PROTO=TCP SPT=' + k.tcpSport + ' DPT=' + k.tcpDport + ' SEQ=' + k.tcpSeq + ' ACK=' + k.tcpAck + ' WINDOW=' + k.tcpWindow + ' ';
      if (k.tcpUrg) s += 'URG ';
      if (k.tcpAckF) s += 'ACK ';
      if (k.tcpPsh) s += 'PSH ';
      if (k.tcpRst) s += 'RST ';
      if (k.tcpSyn) s += 'SYN ';
      if (k.tcpFin) s += 'FIN ';
      return s + 'URGP=' + (k.tcpUrgp ?? 0) + ' ';
    }
    case 17:
      if (k.udpSport === undefined) return 'PROTO=UDP INCOMPLETE';
      return 'PROTO=UDP SPT=' + k.udpSport + ' DPT=' + k.udpDport + ' LEN=' + k.udpLen + ' ';
    case 132:
      if (k.sctpSport === undefined) return 'PROTO=SCTP INCOMPLETE';
      return 'PROTO=SCTP SPT=' + k.sctpSport + ' DPT=' + k.sctpDport + ' ';
    default: // 50, 51: the SPI is never decoded
      return 'PROTO=' + (k.protocol === 50 ? 'ESP' : 'AH') + ' INCOMPLETE';
  }
}

function ipv4Block(k: UlogdBase): string {
  let s = '';
  if (k.saddr !== undefined) s += 'SRC=' + k.saddr + ' DST=' + k.daddr + ' ';
  const tos = k.tos ?? 0;
  const fo = k.fragoff ?? 0;
  s += 'LEN=' + (k.totlen ?? 0) + ' TOS=' + HEX2U[tos & 0x1e] + ' PREC=0x' + HEX2U[tos & 0xe0] + ' TTL=' + (k.ttl ?? 0) + ' ID=' + (k.id ?? 0) + ' ';
  if (fo & 0x8000) s += 'CE ';
  if (fo & 0x4000) s += 'DF ';
  if (fo & 0x2000) s += 'MF ';
  if (fo & 0x1fff) s += 'FRAG:' + (fo & 0x1fff) + ' ';
  const proto = k.protocol ?? 0;
  switch (proto) {
    case 6: case 17: case 132: case 50: case 51:
      return s + protoBlock(k, proto);
    case 1: {
      if (k.icmpType === undefined) return s + 'PROTO=ICMP INCOMPLETE';
      s += 'PROTO=ICMP TYPE=' + k.icmpType + ' CODE=' + k.icmpCode + ' ';
      // ulogd picks the extra fields by the code, not the type
      switch (k.icmpCode) {
        case 0: case 8: return s + 'ID=' + (k.icmpEchoId ?? 0) + ' SEQ=' + (k.icmpEchoSeq ?? 0) + ' ';
        case 12: return s + 'PARAMETER=' + ((k.icmpGateway ?? 0) >>> 24) + ' ';
        case 5: {
          const g = k.icmpGateway ?? 0;
          return s + 'GATEWAY=' + (g >>> 24) + '.' + ((g >>> 16) & 0xff) + '.' + ((g >>> 8) & 0xff) + '.' + (g & 0xff) + ' ';
        }
        default: return s;
      }
    }
    default:
      return s + 'PROTO=' + proto + ' ';
  }
}

function ipv6Block(k: UlogdBase): string {
  let s = '';
  if (k.saddr !== undefined) {
    s += 'SRC=' + k.saddr + ' DST=' + k.daddr + ' LEN=' + ((k.ip6PayloadLen ?? 0) + 40) + ' TC=' + k.ip6Priority +
      ' HOPLIMIT=' + k.ip6HopLimit + ' FLOWLBL=' + k.ip6FlowLabel + ' ';
  }
  if (k.ip6FragOff !== undefined && k.ip6FragId !== undefined) {
    s += 'FRAG: ' + k.ip6FragOff + ' ID: ' + k.ip6FragId.toString(16).padStart(8, '0') + ' ';
  }
  const nh = k.ip6NextHdr ?? 0;
  switch (nh) {
    case 6: case 17: case 132: case 50: case 51:
      return s + protoBlock(k, nh);
    case 58: {
      if (k.icmp6Type === undefined) return s + 'PROTO=ICMPv6 INCOMPLETE';
      s += 'PROTO=ICMPv6 TYPE=' + k.icmp6Type + ' CODE=' + k.icmp6Code + ' ';
      if (k.icmp6Type === 128 || k.icmp6Type === 129) s += 'ID=' + k.icmp6EchoId + ' SEQ=' + k.icmp6EchoSeq + ' ';
      return s;
    }
    default:
      return s + 'PROTO=' + nh + ' ';
  }
}

function arpBlock(k: UlogdBase): string {
  let s = 'PROTO=ARP ';
  if (k.arpOp !== undefined) {
    s += k.arpOp === 1 ? 'REQUEST ' : k.arpOp === 2 ? 'REPLY ' : k.arpOp === 10 ? 'NAK ' : 'CODE=' + k.arpOp + ' ';
    if (k.arpOp === 2 && k.arpSha) s += 'REPLY_MAC=' + macText(k.arpSha, 6) + ' ';
  }
  return s;
}

/** PRINTPKT's text for the packet (without the stamp and the newline). */
export function printpkt(p: PacketLog): string {
  const k = ulogdBase(p);
  // NFLOG always sends the prefix ("" when the rule has none): then a lone space
  let s = p.prefix + ' IN=' + p.indevName + ' OUT=' + p.outdevName + ' ';
  s += p.hwHeader && p.hwLen ? 'MAC=' + macText(p.hwHeader, p.hwLen) + ' ' : 'MAC= ';
  switch (p.family) {
    case 2: s += ipv4Block(k); break;
    case 10: s += ipv6Block(k); break;
    case 7:
      if (p.hwProtocol === 0x0800) s += ipv4Block(k);
      else if (p.hwProtocol === 0x86dd) s += ipv6Block(k);
      else if (p.hwProtocol === 0x0806) s += arpBlock(k);
      else s += 'PROTO=' + p.hwProtocol + ' ';
      break;
    default: break;
  }
  if (p.uid !== undefined) s += 'UID=' + p.uid + ' ';
  if (p.gid !== undefined) s += 'GID=' + p.gid + ' ';
  return s + 'MARK=0x' + (p.mark ?? 0).toString(16) + ' ';
}

export interface PacketLogemuOptions {
  hostname?: string;
}

/** The LOGEMU line: "Mmm dd HH:MM:SS host " + PRINTPKT's text. */
export function formatPacketLogemu(p: PacketLog, o: PacketLogemuOptions = {}): string {
  return stamp(Math.floor(p.time / 1e6), o.hostname ?? shortHostname()) + printpkt(p);
}

let stampSec = NaN;
let stampHost = '';
let stampText = '';
/** "Mmm dd HH:MM:SS host ", the last one kept (many lines to a second) */
function stamp(sec: number, host: string): string {
  if (sec !== stampSec || host !== stampHost) {
    stampText = flat(ctime(sec).slice(4, 19) + ' ' + host + ' ');
    stampSec = sec;
    stampHost = host;
  }
  return stampText;
}

export interface PacketUlogdJsonOptions {
  device?: string;
  eventv1?: boolean;
  /** the stack has HWHDR (the mac.* keys; oob.protocol and raw.type as HWHDR sets them) */
  hwhdr?: boolean;
  /** the NFLOG plugin has seq_local = 1 and seq_global = 1 (the oob.seq.* keys) */
  seq?: boolean;
}

const p2 = (n: number) => (n < 10 ? '0' + n : String(n));
let jsonSec = NaN;
let jsonDate = '';
let jsonZone = '';
/** JSON's timestamp: local time with the microseconds; a zone suffix only when the offset is not 0 */
function jsonStamp(us: number): string {
  const sec = Math.floor(us / 1e6);
  if (sec !== jsonSec) {
    const d = new Date(sec * 1000);
    jsonDate = flat(d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + 'T' + p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds()) + '.');
    jsonZone = ulogdZoneSuffix(d);
    jsonSec = sec;
  }
  const frac = us - sec * 1e6;
  return jsonDate + (frac < 100000 ? String(frac).padStart(6, '0') : String(frac)) + jsonZone;
}

/** One line of ulogd's JSON for the packet. */
export function formatPacketUlogdJson(p: PacketLog, o: PacketUlogdJsonOptions = {}): string {
  const k = ulogdBase(p);
  const sec = Math.floor(p.time / 1e6);
  let s = o.eventv1 ? '{"@version": 1, "@timestamp": "' : '{"timestamp": "';
  s += jsonStamp(p.time) + '", "dvc": ' + dvcJson(o.device ?? 'Netfilter');
  // each key's text (with its separator) is a constant: one concatenation per value
  const n = (key: string, v: number | undefined) => { if (v !== undefined) s += key + v; };
  const hasMac = p.hwLen !== undefined && p.hwLen !== 0 && p.hwHeader !== undefined;
  // HWHDR: raw.type / oob.protocol as it sets them (the ethertype from an Ethernet header)
  let rawType = hasMac ? p.hwType : undefined;
  let oobProto = p.hwProtocol;
  if (o.hwhdr) {
    if (hasMac) {
      if (p.hwType === 1 && p.hwHeader!.length >= 14) oobProto = (p.hwHeader![12] << 8) | p.hwHeader![13];
    } else if (p.hwAddr) rawType = 0xffff;
  }
  // NFLOG's keys
  n(', "raw.pktlen": ', p.payload.length);
  n(', "raw.pktcount": ', 1);
  // (raw UTF-8, as jansson writes it; a prefix that is not UTF-8 it leaves out)
  const prefix = janssonString(p.prefix, true);
  if (prefix !== undefined) s += ', "oob.prefix": ' + prefix;
  n(', "oob.time.sec": ', sec);
  n(', "oob.time.usec": ', p.time - sec * 1e6);
  n(', "oob.mark": ', p.mark ?? 0);
  if (p.indev) n(', "oob.ifindex_in": ', p.indev);
  if (p.outdev) n(', "oob.ifindex_out": ', p.outdev);
  n(', "oob.hook": ', p.hook);
  if (hasMac) n(', "raw.mac_len": ', p.hwLen);
  // conntrail always asks for sequence numbers (to count gaps); ulogd only
  // with seq_local / seq_global, off by default
  if (o.seq) { n(', "oob.seq.local": ', p.seq); n(', "oob.seq.global": ', p.seqGlobal); }
  n(', "oob.family": ', p.family);
  n(', "oob.protocol": ', oobProto);
  n(', "oob.uid": ', p.uid);
  n(', "oob.gid": ', p.gid);
  n(', "raw.label": ', 0);
  n(', "raw.type": ', rawType);
  if (p.hwAddr) n(', "raw.mac.addrlen": ', p.hwAddr.length);
  // BASE's keys
  n(', "ip.protocol": ', k.protocol);
  n(', "ip.tos": ', k.tos);
  n(', "ip.ttl": ', k.ttl);
  n(', "ip.totlen": ', k.totlen);
  n(', "ip.ihl": ', k.ihl);
  n(', "ip.csum": ', k.csum);
  n(', "ip.id": ', k.id);
  n(', "ip.fragoff": ', k.fragoff);
  n(', "ip6.payloadlen": ', k.ip6PayloadLen);
  n(', "ip6.priority": ', k.ip6Priority);
  n(', "ip6.flowlabel": ', k.ip6FlowLabel);
  n(', "ip6.hoplimit": ', k.ip6HopLimit);
  n(', "ip6.nexthdr": ', k.ip6NextHdr);
  n(', "ip6.fragoff": ', k.ip6FragOff);
  n(', "ip6.fragid": ', k.ip6FragId);
  // tcp.sport/udp.sport/sctp.sport share the name src_port (the first position, the valid value)
  const sport = k.tcpSport ?? k.udpSport ?? k.sctpSport;
  const dport = k.tcpDport ?? k.udpDport ?? k.sctpDport;
  n(', "src_port": ', sport);
  n(', "dest_port": ', dport);
  if (k.tcpSport !== undefined) {
    n(', "tcp.seq": ', k.tcpSeq);
    n(', "tcp.ackseq": ', k.tcpAck);
    n(', "tcp.window": ', k.tcpWindow);
    n(', "tcp.offset": ', 0);
    n(', "tcp.reserved": ', 0);
    n(', "tcp.urg": ', k.tcpUrg);
    n(', "tcp.urgp": ', k.tcpUrgp);
    n(', "tcp.ack": ', k.tcpAckF);
    n(', "tcp.psh": ', k.tcpPsh);
    n(', "tcp.rst": ', k.tcpRst);
    n(', "tcp.syn": ', k.tcpSyn);
    n(', "tcp.fin": ', k.tcpFin);
    n(', "tcp.res1": ', k.tcpRes1);
    n(', "tcp.res2": ', k.tcpRes2);
    n(', "tcp.csum": ', k.tcpCsum);
  }
  n(', "udp.len": ', k.udpLen);
  n(', "udp.csum": ', k.udpCsum);
  n(', "icmp.type": ', k.icmpType);
  n(', "icmp.code": ', k.icmpCode);
  n(', "icmp.echoid": ', k.icmpEchoId);
  n(', "icmp.echoseq": ', k.icmpEchoSeq);
  n(', "icmp.fragmtu": ', k.icmpFragMtu);
  n(', "icmp.csum": ', k.icmpCsum);
  n(', "icmpv6.type": ', k.icmp6Type);
  n(', "icmpv6.code": ', k.icmp6Code);
  n(', "icmpv6.echoid": ', k.icmp6EchoId);
  n(', "icmpv6.echoseq": ', k.icmp6EchoSeq);
  n(', "icmpv6.csum": ', k.icmp6Csum);
  n(', "arp.hwtype": ', k.arpHwType);
  n(', "arp.protocoltype": ', k.arpProtoType);
  n(', "arp.operation": ', k.arpOp);
  n(', "sctp.csum": ', k.sctpCsum);
  // IFINDEX's, IP2STR's
  const inName = janssonString(p.indevName, true);
  const outName = janssonString(p.outdevName, true);
  if (inName !== undefined) s += ', "oob.in": ' + inName;
  if (outName !== undefined) s += ', "oob.out": ' + outName;
  if (k.saddr !== undefined) s += ', "src_ip": "' + k.saddr + '", "dest_ip": "' + k.daddr + '"';
  if (o.hwhdr) {
    if (p.hwAddr) s += ', "mac.saddr.str": "' + macText(p.hwAddr) + '"';
    else if (hasMac && p.hwType === 1 && p.hwHeader!.length >= 12) s += ', "mac.saddr.str": "' + macText(p.hwHeader!.subarray(6, 12)) + '"';
    if (hasMac && p.hwType === 1 && p.hwHeader!.length >= 6) s += ', "mac.daddr.str": "' + macText(p.hwHeader!.subarray(0, 6)) + '"';
    if (hasMac) s += ', "mac.str": "' + macText(p.hwHeader!, p.hwLen) + '"';
  }
  return s + '}';
}
