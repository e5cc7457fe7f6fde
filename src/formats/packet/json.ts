// conntrail's own JSON line for a packet log: one object per packet, every
// decoded field (absent ones left out). Schema: docs/packets.md.
import { protoName, STATUS_NAMES, TCP_STATES } from '../../records/values.js';
import type { PacketLog } from '../../records/packet.js';
import { CTINFO_NAMES, HOOK_NAMES } from '../../sources/nflog/constants.js';
import { isoMicros } from '../../util/time.js';
import { asciiJsonString } from '../../util/json.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP } from '../../sources/nflog/packet.js';

export const TCP_FLAG_NAMES: Array<[number, string]> = [
  [0x80, 'CWR'], [0x40, 'ECE'], [0x20, 'URG'], [0x10, 'ACK'], [0x08, 'PSH'], [0x04, 'RST'], [0x02, 'SYN'], [0x01, 'FIN'],
];

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
const mac = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');

export function familyName(f: number): string {
  return f === 2 ? 'ipv4' : f === 10 ? 'ipv6' : f === 7 ? 'bridge' : f === 3 ? 'arp' : f === 5 ? 'netdev' : String(f);
}

function list(names: ReadonlyArray<readonly [number, string]>, v: number): string {
  let s = '[';
  for (const [bit, n] of names) if (v & bit) s += (s.length > 1 ? ',"' : '"') + n + '"';
  return s + ']';
}

export function formatPacketJson(p: PacketLog): string {
  let s = '{"time":"' + isoMicros(p.time) + '","time_us":' + p.time;
  if (!p.kernelTime) s += ',"time_source":"received"';
  s += ',"group":' + p.group + ',"prefix":' + asciiJsonString(p.prefix, true);
  s += ',"family":"' + familyName(p.family) + '","hook":' + (p.family === 5 ? '"INGRESS"' : '"' + (HOOK_NAMES[p.hook] ?? p.hook) + '"');
  if (p.indev) s += ',"in":' + asciiJsonString(p.indevName, true) + ',"in_index":' + p.indev;
  if (p.outdev) s += ',"out":' + asciiJsonString(p.outdevName, true) + ',"out_index":' + p.outdev;
  if (p.physindev) s += ',"physin":' + asciiJsonString(p.physindevName, true) + ',"physin_index":' + p.physindev;
  if (p.physoutdev) s += ',"physout":' + asciiJsonString(p.physoutdevName, true) + ',"physout_index":' + p.physoutdev;
  if (p.hwProtocol) s += ',"hw_protocol":' + p.hwProtocol;
  if (p.hwAddr) s += ',"hw_addr":"' + mac(p.hwAddr) + '"';
  if (p.hwType !== undefined) s += ',"hw_type":' + p.hwType;
  if (p.hwHeader) s += ',"hw_header":"' + hex(p.hwHeader) + '"';
  if (p.vlanTci !== undefined) s += ',"vlan":{"proto":' + (p.vlanProto ?? 0) + ',"id":' + (p.vlanTci & 0xfff) + ',"pcp":' + (p.vlanTci >> 13) + '}';
  if (p.mark !== undefined) s += ',"mark":' + p.mark;
  if (p.uid !== undefined) s += ',"uid":' + p.uid;
  if (p.gid !== undefined) s += ',"gid":' + p.gid;
  if (p.seq !== undefined) s += ',"seq":' + p.seq;
  if (p.seqGlobal !== undefined) s += ',"seq_global":' + p.seqGlobal;
  if (p.ipVersion) {
    s += ',"ip":{"version":' + p.ipVersion + ',"src":"' + p.src + '","dst":"' + p.dst + '","len":' + p.ipLen;
    if (p.ipVersion === 4) {
      s += ',"tos":' + p.tos + ',"ttl":' + p.ttl + ',"id":' + p.ipId + ',"ihl":' + p.ihl;
      if (p.ipFlags) s += ',"flags":' + list([[0x8000, 'CE'], [0x4000, 'DF'], [0x2000, 'MF']], p.ipFlags);
    } else {
      s += ',"tc":' + p.tos + ',"hoplimit":' + p.ttl + ',"flowlabel":' + p.flowLabel;
      if (p.ipId !== undefined) s += ',"frag_id":' + p.ipId + (p.ipFlags ? ',"flags":["MF"]' : '');
    }
    if (p.fragOff) s += ',"frag_off":' + p.fragOff;
    s += '}';
    if (p.proto >= 0) s += ',"proto":"' + protoName(p.proto) + '","proto_num":' + p.proto;
    if (p.sport !== undefined) s += ',"sport":' + p.sport + ',"dport":' + p.dport;
    if (p.proto === IPPROTO_TCP && p.tcpFlags !== undefined) {
      s += ',"tcp":{"flags":' + list(TCP_FLAG_NAMES, p.tcpFlags) + ',"seq":' + p.tcpSeq + ',"ack":' + p.tcpAck +
        ',"window":' + p.tcpWindow + ',"urgp":' + p.tcpUrgp + ',"res":' + p.tcpRes + ',"hdr_len":' + p.tcpHdrLen + '}';
    }
    if ((p.proto === IPPROTO_ICMP || p.proto === IPPROTO_ICMPV6) && p.icmpType !== undefined) {
      s += ',"icmp":{"type":' + p.icmpType + ',"code":' + p.icmpCode;
      if (p.icmpId !== undefined) s += ',"id":' + p.icmpId + ',"seq":' + p.icmpSeq;
      s += '}';
    }
  }
  s += ',"payload_len":' + p.payload.length;
  if (p.truncated) s += ',"truncated":true';
  if (p.ct) {
    const c = p.ct;
    s += ',"ct":{';
    let first = true;
    const add = (k: string, v: string) => { s += (first ? '"' : ',"') + k + '":' + v; first = false; };
    if (c.id !== undefined) add('id', String(c.id));
    if (p.ctInfo !== undefined) add('info', '"' + (CTINFO_NAMES[p.ctInfo] || p.ctInfo) + '"');
    if (c.tcpState !== undefined) add('state', '"' + (TCP_STATES[c.tcpState] ?? c.tcpState) + '"');
    if (c.status !== undefined) add('status', list(STATUS_NAMES, c.status));
    add('orig', tupleJson(c.orig));
    add('reply', tupleJson(c.reply));
    if (c.mark !== undefined) add('mark', String(c.mark));
    if (c.zone !== undefined) add('zone', String(c.zone));
    s += '}';
  } else if (p.ctInfo !== undefined) s += ',"ct":{"info":"' + (CTINFO_NAMES[p.ctInfo] || p.ctInfo) + '"}';
  if (p.netns !== '') s += ',"netns":' + asciiJsonString(p.netns) + (p.netnsInode ? ',"netns_inode":' + p.netnsInode : '');
  return s + '}';
}

function tupleJson(t: { src: string; dst: string; sport?: number; dport?: number; icmpType?: number; icmpCode?: number; icmpId?: number }): string {
  let s = '{"src":"' + t.src + '","dst":"' + t.dst + '"';
  if (t.sport !== undefined) s += ',"sport":' + t.sport;
  if (t.dport !== undefined) s += ',"dport":' + t.dport;
  if (t.icmpType !== undefined) s += ',"type":' + t.icmpType + ',"code":' + t.icmpCode;
  if (t.icmpId !== undefined) s += ',"id":' + t.icmpId;
  return s + '}';
}
