// The line `conntrack -E` / `conntrack -L` (conntrack-tools 1.4.7 with
// libnetfilter_conntrack 1.0.9) prints for a conntrack entry, byte for byte.
import { DCCP_STATES, IPPROTO_DCCP, IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, IPS_ASSURED, IPS_HW_OFFLOAD, IPS_OFFLOAD, IPS_SEEN_REPLY, SCTP_STATES, TCP_STATES, protoName } from '../records/values.js';
import type { FlowEvent, Tuple } from '../records/event.js';
import { ctime } from '../util/time.js';

export interface ConntrackFormatOptions {
  /** -o extended: layer-3 name and number */
  extended?: boolean;
  /** -o id */
  id?: boolean;
  /** -o timestamp: "[sec.usec]\t" receipt time before the line */
  timestamp?: boolean;
  /** -o ktimestamp: [start=...] [stop=...] from the kernel's timestamps */
  ktimestamp?: boolean;
  /** -o labels: label names from connlabel.conf (undefined: no map, nothing printed) */
  labelMap?: Map<number, string>;
  /** resolve "[USERSPACE] portid=N progname=NAME" (events only) */
  progname?: (portid: number) => string | undefined;
}

export function prefix(type: FlowEvent['type']): string {
  switch (type) {
    case 'NEW': return '    [NEW] ';
    case 'UPDATE': return ' [UPDATE] ';
    case 'DESTROY': return '[DESTROY] ';
    default: return '';
  }
}

function padRight(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

const L4_HEAD: string[] = [];
function l4Head(proto: number): string {
  let s = L4_HEAD[proto];
  if (s === undefined) {
    s = padRight(protoName(proto), 8) + ' ' + proto + ' ';
    L4_HEAD[proto] = s;
  }
  return s;
}

/** the protocols libnetfilter_conntrack prints ports of (sport=, <sport>) */
export function printsPorts(proto: number): boolean {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === IPPROTO_SCTP || proto === IPPROTO_DCCP;
}

/** "src=A dst=B " and the protocol's ports, keys or ICMP fields, as libnetfilter_conntrack prints a tuple (an expectation's mask and master with their own tags) */
export function tupleText(t: Tuple, proto: number, srcTag = 'src', dstTag = 'dst'): string {
  let s = srcTag + '=' + t.src + ' ' + dstTag + '=' + t.dst + ' ';
  if (printsPorts(proto)) return s + 'sport=' + (t.sport ?? 0) + ' dport=' + (t.dport ?? 0) + ' ';
  switch (proto) {
    case IPPROTO_GRE:
      s += 'srckey=0x' + (t.sport ?? 0).toString(16) + ' dstkey=0x' + (t.dport ?? 0).toString(16) + ' ';
      break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      s += 'type=' + (t.icmpType ?? 0) + ' code=' + (t.icmpCode ?? 0) + ' id=' + (t.icmpId ?? 0) + ' ';
      break;
    default:
      break;
  }
  return s;
}

const NFCT_SCTP_NAMES = SCTP_STATES.slice(0, 8);

function stateName(names: readonly string[], max: number, state: number): string {
  // libnetfilter_conntrack prints NONE for states past its table
  return state < max ? (names[state] ?? '(null)') : names[0];
}

/** The conntrack -E line for `ev`, without the trailing newline. */
export function formatConntrack(ev: FlowEvent, o: ConntrackFormatOptions = {}): string {
  let s = '';
  if (o.timestamp && ev.type !== 'DUMP') {
    const us = ev.recvTime;
    const sec = Math.floor(us / 1e6);
    const usec = us - sec * 1e6;
    s += '[' + String(sec).padStart(8, '0') + '.' + String(usec).padStart(6, '0') + ']\t';
  }
  s += prefix(ev.type);
  if (o.extended) s += ev.family === 2 ? 'ipv4     2 ' : ev.family === 10 ? 'ipv6     10 ' : padRight('unknown', 8) + ' ' + ev.family + ' ';
  s += l4Head(ev.proto);
  if (ev.timeout !== undefined) s += ev.timeout + ' ';
  if (ev.tcpState !== undefined) s += stateName(TCP_STATES, 10, ev.tcpState) + ' ';
  // libnetfilter_conntrack 1.0.9 sizes its SCTP table by the kernel enum
  // (10 entries) but names only the first 8; DCCP states are looked up in
  // the SCTP table.
  if (ev.sctpState !== undefined) s += stateName(NFCT_SCTP_NAMES, 10, ev.sctpState) + ' ';
  if (ev.dccpState !== undefined) s += stateName(NFCT_SCTP_NAMES, DCCP_STATES.length, ev.dccpState) + ' ';
  s += tupleText(ev.orig, ev.proto);
  if (ev.orig.zone !== undefined) s += 'zone-orig=' + ev.orig.zone + ' ';
  if (ev.origPackets !== undefined && ev.origBytes !== undefined) {
    s += 'packets=' + ev.origPackets + ' bytes=' + ev.origBytes + ' ';
  }
  const status = ev.status;
  if (status !== undefined && !(status & IPS_SEEN_REPLY)) s += '[UNREPLIED] ';
  s += tupleText(ev.reply, ev.proto);
  if (ev.reply.zone !== undefined) s += 'zone-reply=' + ev.reply.zone + ' ';
  if (ev.replyPackets !== undefined && ev.replyBytes !== undefined) {
    s += 'packets=' + ev.replyPackets + ' bytes=' + ev.replyBytes + ' ';
  }
  if (status !== undefined) {
    if (status & IPS_HW_OFFLOAD) s += '[HW_OFFLOAD] ';
    else if (status & IPS_OFFLOAD) s += '[OFFLOAD] ';
    else if (status & IPS_ASSURED) s += '[ASSURED] ';
  }
  if (ev.mark !== undefined) s += 'mark=' + ev.mark + ' ';
  if (ev.secmark !== undefined) s += 'secmark=' + ev.secmark + ' ';
  if (ev.secctx !== undefined) s += 'secctx=' + ev.secctx + ' ';
  if (ev.zone !== undefined) s += 'zone=' + ev.zone + ' ';
  if (ev.start !== undefined) {
    const startSec = Number(ev.start / 1000000000n);
    const stopSec = ev.stop !== undefined && ev.stop !== 0n
      ? Number(ev.stop / 1000000000n)
      : Math.floor(ev.recvTime / 1e6);
    s += 'delta-time=' + (stopSec - startSec) + ' ';
    if (o.ktimestamp) {
      s += '[start=' + ctime(startSec) + '] ';
      if (ev.stop !== undefined) s += '[stop=' + ctime(Number(ev.stop / 1000000000n)) + '] ';
    }
  }
  if (ev.helper !== undefined) s += 'helper=' + ev.helper + ' ';
  if (ev.use !== undefined) s += 'use=' + ev.use + ' ';
  if (o.id && ev.id !== undefined) s += 'id=' + ev.id + ' ';
  if (o.labelMap && ev.labels !== undefined) s += labelsText(ev.labels, o.labelMap);
  return s.slice(0, -1) + userspaceSuffix(ev, o.progname);
}

/** " [USERSPACE] portid=N progname=NAME" after an event a process caused (conntrack prints it after every output format) */
export function userspaceSuffix(ev: FlowEvent, progname: ((portid: number) => string | undefined) | undefined): string {
  if (ev.portid === 0 || ev.type === 'DUMP') return '';
  // the name looked up as the event was received, else (a record made elsewhere) now
  const prog = ev.progname !== undefined ? (ev.progname ?? undefined) : progname?.(ev.portid);
  return ' [USERSPACE] portid=' + ev.portid + (prog !== undefined ? ' progname=' + prog : '');
}

function labelsText(labels: Uint8Array, map: Map<number, string>): string {
  // The kernel sends the bitmap as host-order words; on a little-endian
  // host bit N is bit N%8 of byte N/8.
  const names: string[] = [];
  for (let bit = 0; bit < labels.length * 8; bit++) {
    if (labels[bit >> 3] & (1 << (bit & 7))) {
      const name = map.get(bit);
      if (name) names.push(name);
    }
  }
  // libnetfilter_conntrack removes the last character written, whether it
  // is the trailing comma or, with no named label, the '='.
  return names.length ? 'labels=' + names.join(',') + ' ' : 'labels ';
}

