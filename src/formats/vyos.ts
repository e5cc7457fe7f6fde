// The line VyOS's conntrack logger (vyos-conntrack-logger, vyos-1x 2024)
// logs for an event, from its format_event_message(). Differences, on
// purpose: the packets=/bytes= counters it means to print but never does
// (it stores them under a wrong key) are printed; where it would crash on a
// timestamp without a stop time, we print stop=None and no delta.
import { IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPS_ASSURED, IPS_OFFLOAD, IPS_SEEN_REPLY } from '../records/values.js';
import type { FlowEvent, Tuple } from '../records/event.js';
import { pyFloatRepr } from '../util/time.js';

const VYOS_PROTO: Record<number, string> = {
  [IPPROTO_ICMP]: 'icmp', [IPPROTO_TCP]: 'tcp', [IPPROTO_UDP]: 'udp',
  [IPPROTO_ICMPV6]: 'icmpv6', [IPPROTO_SCTP]: 'sctp', [IPPROTO_GRE]: 'gre',
};

// VyOS's own state tables (they differ from conntrack-tools': 9 is LISTEN,
// 0 has no name).
const VYOS_TCP = ['unknown', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK',
  'TIME_WAIT', 'CLOSE', 'LISTEN', 'MAX', 'IGNORE', 'RETRANS', 'UNACK', 'TIMEOUT_MAX'];
const VYOS_SCTP = ['unknown', 'CLOSED', 'COOKIE_WAIT', 'COOKIE_ECHOED', 'ESTABLISHED', 'SHUTDOWN_SENT',
  'SHUTDOWN_RECD', 'SHUTDOWN_ACK_SENT', 'HEARTBEAT_SENT', 'HEARTBEAT_ACKED', 'MAX'];

const PREFIX: Record<string, string> = {
  // f"{'[NEW]':<9}"
  NEW: '[NEW]    ', UPDATE: '[UPDATE] ', DESTROY: '[DESTROY]', DUMP: '[NEW]    ',
};

function flow(t: Tuple, packets: number | undefined, bytes: number | undefined): string {
  let s = 'src=' + t.src + ' dst=' + t.dst;
  if (t.sport !== undefined) s += ' sport=' + t.sport;
  if (t.dport !== undefined) s += ' dport=' + t.dport;
  if (t.icmpType !== undefined) s += ' type=' + t.icmpType;
  if (t.icmpCode !== undefined) s += ' code=' + t.icmpCode;
  if (t.icmpId !== undefined) s += ' id=' + t.icmpId;
  if (packets !== undefined) s += ' packets=' + packets;
  if (bytes !== undefined) s += ' bytes=' + bytes;
  return s;
}

/** Python's timedelta(seconds=ns // 1e9, microseconds=ns % 1e9 / 1000).total_seconds() */
export function vyosDelta(ns: bigint): string {
  const neg = ns < 0n;
  const a = neg ? -ns : ns;
  // floor division / modulo as Python does them, on exact integers
  const secs = neg ? -((a + 999999999n) / 1000000000n) : a / 1000000000n;
  const rem = ns - secs * 1000000000n; // 0 <= rem < 1e9
  // microseconds = rem / 1000 rounded half to even
  let us = rem / 1000n;
  const frac = rem - us * 1000n;
  if (frac > 500n || (frac === 500n && (us & 1n) === 1n)) us += 1n;
  const totalUs = secs * 1000000n + us;
  return pyFloatRepr(Number(totalUs) / 1e6);
}

export function formatVyos(ev: FlowEvent): string {
  let s = PREFIX[ev.type] + ' ' + (ev.id ?? 'None') + ' ';
  const name = VYOS_PROTO[ev.proto] ?? 'unknown';
  s += (name.length >= 8 ? name : name + ' '.repeat(8 - name.length)) + ' ' + ev.proto + ' ';
  if (ev.timeout !== undefined) s += ev.timeout + ' ';
  if (ev.tcpState !== undefined) s += (VYOS_TCP[ev.tcpState] ?? 'unknown') + ' ';
  else if (ev.sctpState !== undefined) s += (VYOS_SCTP[ev.sctpState] ?? 'unknown') + ' ';
  const status = ev.status ?? 0;
  s += flow(ev.orig, ev.origPackets, ev.origBytes) + ' ';
  if (!(status & IPS_SEEN_REPLY)) s += '[UNREPLIED] ';
  s += flow(ev.reply, ev.replyPackets, ev.replyBytes) + ' ';
  if (ev.mark !== undefined) s += 'mark=' + ev.mark + ' ';
  if (status & IPS_OFFLOAD) s += ' [OFFLOAD] ';
  else if (status & IPS_ASSURED) s += ' [ASSURED] ';
  if (ev.portid) s += 'portid=' + ev.portid + ' ';
  if (ev.start !== undefined) {
    s += 'start=' + ev.start + ' stop=' + (ev.stop ?? 'None') + ' ';
    if (ev.stop !== undefined) s += 'delta=' + vyosDelta(ev.stop - ev.start) + ' ';
  }
  return s;
}
