// A flow event or a packet log as systemd journal fields (the native protocol's
// KEY=VALUE pairs): every record field, structured, so `journalctl
// CT_ORIG_SRC=10.0.0.2` finds it. Names: CT_ + upper case.
import { IPS_DST_NAT, IPS_SRC_NAT, protoName, TCP_STATES, SCTP_STATES, DCCP_STATES } from '../records/values.js';
import type { FlowEvent, Tuple } from '../records/event.js';
import type { PacketLog } from '../records/packet.js';
import { HOOK_NAMES } from '../sources/nflog/constants.js';

export type Fields = Array<[string, string]>;

function tuple(f: Fields, dir: 'ORIG' | 'REPLY', t: Tuple, packets: number | undefined, bytes: number | undefined): void {
  f.push([`CT_${dir}_SRC`, t.src], [`CT_${dir}_DST`, t.dst]);
  if (t.sport !== undefined) f.push([`CT_${dir}_SPORT`, String(t.sport)]);
  if (t.dport !== undefined) f.push([`CT_${dir}_DPORT`, String(t.dport)]);
  if (t.icmpType !== undefined) f.push([`CT_${dir}_ICMP_TYPE`, String(t.icmpType)]);
  if (t.icmpCode !== undefined) f.push([`CT_${dir}_ICMP_CODE`, String(t.icmpCode)]);
  if (t.icmpId !== undefined) f.push([`CT_${dir}_ICMP_ID`, String(t.icmpId)]);
  if (t.zone !== undefined) f.push([`CT_${dir}_ZONE`, String(t.zone)]);
  if (packets !== undefined) f.push([`CT_${dir}_PACKETS`, String(packets)]);
  if (bytes !== undefined) f.push([`CT_${dir}_BYTES`, String(bytes)]);
}

/** The NAT translation made explicit: kind, and the inside and public sides. */
function nat(f: Fields, ev: FlowEvent): void {
  const st = ev.status ?? 0;
  const snat = (st & IPS_SRC_NAT) !== 0;
  const dnat = (st & IPS_DST_NAT) !== 0;
  f.push(['CT_NAT', snat && dnat ? 'both' : snat ? 'snat' : dnat ? 'dnat' : 'none']);
  const hp = (a: string, p: number | undefined) => (p === undefined ? a : a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
  if (snat) {
    f.push(['CT_SNAT_INSIDE', hp(ev.orig.src, ev.orig.sport)], ['CT_SNAT_PUBLIC', hp(ev.reply.dst, ev.reply.dport)]);
  }
  if (dnat) {
    f.push(['CT_DNAT_PUBLIC', hp(ev.orig.dst, ev.orig.dport)], ['CT_DNAT_INSIDE', hp(ev.reply.src, ev.reply.sport)]);
  }
}

export function journalFields(ev: FlowEvent): Fields {
  const f: Fields = [
    ['CT_EVENT', ev.type.toLowerCase()],
    ['CT_FAMILY', ev.family === 2 ? 'ipv4' : 'ipv6'],
    ['CT_PROTO', protoName(ev.proto)],
    ['CT_PROTO_NUM', String(ev.proto)],
  ];
  if (ev.id !== undefined) f.push(['CT_ID', String(ev.id)]);
  if (ev.tcpState !== undefined) f.push(['CT_STATE', TCP_STATES[ev.tcpState] ?? String(ev.tcpState)]);
  else if (ev.sctpState !== undefined) f.push(['CT_STATE', SCTP_STATES[ev.sctpState] ?? String(ev.sctpState)]);
  else if (ev.dccpState !== undefined) f.push(['CT_STATE', DCCP_STATES[ev.dccpState] ?? String(ev.dccpState)]);
  if (ev.timeout !== undefined) f.push(['CT_TIMEOUT', String(ev.timeout)]);
  tuple(f, 'ORIG', ev.orig, ev.origPackets, ev.origBytes);
  tuple(f, 'REPLY', ev.reply, ev.replyPackets, ev.replyBytes);
  nat(f, ev);
  if (ev.status !== undefined) f.push(['CT_STATUS', String(ev.status)]);
  if (ev.mark !== undefined) f.push(['CT_MARK', String(ev.mark)]);
  if (ev.zone !== undefined) f.push(['CT_ZONE', String(ev.zone)]);
  if (ev.secctx !== undefined) f.push(['CT_SECCTX', ev.secctx]);
  if (ev.helper !== undefined) f.push(['CT_HELPER', ev.helper]);
  if (ev.labels !== undefined) f.push(['CT_LABELS', Buffer.from(ev.labels).toString('hex')]);
  if (ev.start !== undefined) f.push(['CT_START_NS', String(ev.start)]);
  if (ev.stop !== undefined) f.push(['CT_STOP_NS', String(ev.stop)]);
  if (ev.start !== undefined && ev.stop !== undefined) f.push(['CT_DURATION_S', String(Number(ev.stop - ev.start) / 1e9)]);
  f.push(['CT_RECEIVED_US', String(ev.recvTime)]);
  if (ev.portid) f.push(['CT_PORTID', String(ev.portid)]);
  if (ev.netns) f.push(['CT_NETNS', ev.netns]);
  if (ev.netns && ev.netnsInode) f.push(['CT_NETNS_INODE', String(ev.netnsInode)]);
  return f;
}

/** The native protocol's datagram: KEY=VALUE lines, or KEY\n<u64 le length><value>\n for values with newlines. */
export function encodeJournal(fields: Fields): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of fields) {
    if (!v.includes('\n')) {
      parts.push(Buffer.from(`${k}=${v}\n`, 'latin1'));
    } else {
      const val = Buffer.from(v, 'latin1');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(val.length));
      parts.push(Buffer.from(`${k}\n`), len, val, Buffer.from('\n'));
    }
  }
  return Buffer.concat(parts);
}

const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'];
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/**
 * A packet log as journal fields: PKT_ + upper case, one for every field
 * the packet has (so `journalctl PKT_PREFIX=sg-drop: PKT_DPT=22` finds it).
 */
export function packetJournalFields(p: PacketLog): Fields {
  const f: Fields = [
    ['PKT_PREFIX', p.prefix],
    ['PKT_GROUP', String(p.group)],
    ['PKT_FAMILY', String(p.family)],
    ['PKT_HOOK', p.family === 0 ? String(p.hook) : HOOK_NAMES[p.hook] ?? String(p.hook)],
    ['PKT_TIME_US', String(p.time)],
  ];
  if (p.hwProtocol) f.push(['PKT_HW_PROTOCOL', String(p.hwProtocol)]);
  if (p.indev) f.push(['PKT_IN', p.indevName || String(p.indev)], ['PKT_IN_IFINDEX', String(p.indev)]);
  if (p.outdev) f.push(['PKT_OUT', p.outdevName || String(p.outdev)], ['PKT_OUT_IFINDEX', String(p.outdev)]);
  if (p.physindev) f.push(['PKT_PHYSIN', p.physindevName || String(p.physindev)]);
  if (p.physoutdev) f.push(['PKT_PHYSOUT', p.physoutdevName || String(p.physoutdev)]);
  if (p.hwAddr) f.push(['PKT_HW_ADDR', hex(p.hwAddr)]);
  if (p.hwType !== undefined) f.push(['PKT_HW_TYPE', String(p.hwType)]);
  if (p.hwHeader) f.push(['PKT_HW_HEADER', hex(p.hwHeader)]);
  if (p.mark !== undefined) f.push(['PKT_MARK', String(p.mark)]);
  if (p.uid !== undefined) f.push(['PKT_UID', String(p.uid)]);
  if (p.gid !== undefined) f.push(['PKT_GID', String(p.gid)]);
  if (p.seq !== undefined) f.push(['PKT_SEQ', String(p.seq)]);
  if (p.seqGlobal !== undefined) f.push(['PKT_SEQ_GLOBAL', String(p.seqGlobal)]);
  if (p.vlanTci !== undefined) f.push(['PKT_VLAN_ID', String(p.vlanTci & 0xfff)]);
  if (p.ipVersion) {
    f.push(['PKT_IP_VERSION', String(p.ipVersion)], ['PKT_SRC', p.src], ['PKT_DST', p.dst], ['PKT_LEN', String(p.ipLen)],
      ['PKT_TOS', String(p.tos)], ['PKT_TTL', String(p.ttl)]);
    if (p.ipId !== undefined) f.push(['PKT_IP_ID', String(p.ipId)]);
    if (p.ipFlags & 0x4000) f.push(['PKT_DF', '1']);
    if (p.ipFlags & 0x2000) f.push(['PKT_MF', '1']);
    if (p.fragOff) f.push(['PKT_FRAG_OFFSET', String(p.fragOff)]);
    if (p.ipVersion === 6) f.push(['PKT_FLOW_LABEL', String(p.flowLabel)]);
  }
  if (p.proto >= 0) f.push(['PKT_PROTO', protoName(p.proto)], ['PKT_PROTO_NUM', String(p.proto)]);
  if (p.sport !== undefined) f.push(['PKT_SPT', String(p.sport)]);
  if (p.dport !== undefined) f.push(['PKT_DPT', String(p.dport)]);
  if (p.tcpFlags !== undefined) {
    f.push(['PKT_TCP_FLAGS', TCP_FLAG_NAMES.filter((_, i) => (p.tcpFlags! >> i) & 1).join(',')]);
    if (p.tcpSeq !== undefined) f.push(['PKT_TCP_SEQ', String(p.tcpSeq)]);
    if (p.tcpAck !== undefined) f.push(['PKT_TCP_ACK', String(p.tcpAck)]);
    if (p.tcpWindow !== undefined) f.push(['PKT_TCP_WINDOW', String(p.tcpWindow)]);
  }
  if (p.icmpType !== undefined) f.push(['PKT_ICMP_TYPE', String(p.icmpType)], ['PKT_ICMP_CODE', String(p.icmpCode ?? 0)]);
  if (p.icmpId !== undefined) f.push(['PKT_ICMP_ID', String(p.icmpId)]);
  if (p.icmpSeq !== undefined) f.push(['PKT_ICMP_SEQ', String(p.icmpSeq)]);
  if (p.truncated) f.push(['PKT_TRUNCATED', '1']);
  if (p.ct) {
    if (p.ct.id !== undefined) f.push(['PKT_CT_ID', String(p.ct.id)]);
    if (p.ctInfo !== undefined) f.push(['PKT_CT_INFO', String(p.ctInfo)]);
  }
  if (p.netns) f.push(['PKT_NETNS', p.netns]);
  if (p.netns && p.netnsInode) f.push(['PKT_NETNS_INODE', String(p.netnsInode)]);
  return f;
}
