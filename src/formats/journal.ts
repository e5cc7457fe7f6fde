// A flow event as systemd journal fields (the native protocol's
// KEY=VALUE pairs): every record field, structured, so `journalctl
// CT_ORIG_SRC=10.0.0.2` finds it. Names: CT_ + upper case.
import { IPS_DST_NAT, IPS_SRC_NAT, protoName, TCP_STATES, SCTP_STATES, DCCP_STATES } from '../records/values.js';
import type { FlowEvent, Tuple } from '../records/event.js';

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
