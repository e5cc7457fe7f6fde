// ulogd2's conntrack outputs (as Debian 12's ulogd 2.0.8 writes them), so
// pipelines built on ulogd keep working:
//  - logemu: NFCT -> IP2STR -> PRINTFLOW -> LOGEMU, a syslog-like line
//  - ulogd-json: NFCT -> IP2STR -> JSON, the same keys, order and values.
// ulogd (with hash_enable=0) logs NEW and DESTROY; UPDATE events are
// formatted the same way with ct.event 2.
import { hostname } from 'node:os';
import { IPPROTO_DCCP, IPPROTO_ICMP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../records/values.js';
import type { FlowEvent, Tuple } from '../records/event.js';
import { ctime } from '../util/time.js';
import { janssonString } from '../util/json.js';
import { ulogdZoneSuffix } from '../util/time.js';

/** the host name as LOGEMU prints it: up to the first dot */
export function shortHostname(): string {
  return hostname().split('.')[0];
}

const EVENT_NUM: Record<string, number> = { NEW: 1, UPDATE: 2, DESTROY: 4, DUMP: 1 };
const PF_NAMES: Record<number, string> = { 6: 'TCP', 17: 'UDP', 1: 'ICMP', 50: 'ESP', 51: 'AH' };

function flowSide(t: Tuple, ev: FlowEvent, packets: number | undefined, bytes: number | undefined): string {
  let s = 'SRC=' + t.src + ' DST=' + t.dst + ' ';
  const name = PF_NAMES[ev.proto];
  if (name === undefined) s += 'PROTO=' + ev.proto + ' ';
  else {
    s += 'PROTO=' + name + ' ';
    if (ev.proto === IPPROTO_TCP || ev.proto === IPPROTO_UDP) s += 'SPT=' + (t.sport ?? 0) + ' DPT=' + (t.dport ?? 0) + ' ';
    // PRINTFLOW prints the ICMP code as TYPE and the type as CODE, for both directions
    else if (ev.proto === IPPROTO_ICMP) s += 'TYPE=' + (ev.orig.icmpCode ?? 0) + ' CODE=' + (ev.orig.icmpType ?? 0) + ' ';
  }
  return s + 'PKTS=' + (packets ?? 0) + ' BYTES=' + (bytes ?? 0) + ' ';
}

export interface LogemuOptions {
  /** host name after the time stamp (default: this host's, up to the first dot) */
  hostname?: string;
}

/** The LOGEMU line (PRINTFLOW text after a syslog-like stamp), without the newline. */
export function formatLogemu(ev: FlowEvent, o: LogemuOptions = {}): string {
  const stamp = ctime(Math.floor(ev.recvTime / 1e6)).slice(4, 19);
  const type = ev.type === 'DUMP' ? 'NEW' : ev.type;
  return stamp + ' ' + (o.hostname ?? shortHostname()) + ' [' + type + '] ORIG: ' +
    flowSide(ev.orig, ev, ev.origPackets, ev.origBytes) + ', REPLY: ' +
    flowSide(ev.reply, ev, ev.replyPackets, ev.replyBytes);
}

export interface UlogdJsonOptions {
  /** JSON plugin's eventv1: "@version": 1 and "@timestamp" (Logstash event v1) */
  eventv1?: boolean;
  /** JSON plugin's device: the "dvc" value (default "Netfilter") */
  device?: string;
}

const p2 = (n: number) => (n < 10 ? '0' + n : String(n));
let stampSec = -1;
let stampText = '';
/** local time, "%Y-%m-%dT%H:%M:%S" and the zone suffix ulogd writes outside UTC (the last second's text is kept) */
function localStamp(sec: number): string {
  if (sec !== stampSec) {
    const d = new Date(sec * 1000);
    stampText = d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + 'T' +
      p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds()) + ulogdZoneSuffix(d);
    stampSec = sec;
  }
  return stampText;
}

const dvcCache = new Map<string, string>();
/** the "dvc" value as jansson writes it: raw UTF-8 (a device name from the configuration is valid Unicode) */
export function dvcJson(device: string): string {
  let t = dvcCache.get(device);
  if (t === undefined) {
    t = janssonString(device)!;
    dvcCache.set(device, t);
  }
  return t;
}

function hasPorts(proto: number): boolean {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE ||
    proto === IPPROTO_SCTP || proto === IPPROTO_DCCP;
}

function secUsec(ns: bigint): [number, number] {
  const sec = ns / 1000000000n;
  return [Number(sec), Number((ns - sec * 1000000000n) / 1000n)];
}

/** One line of ulogd's JSON output for the event (jansson's ", " / ": " spacing). */
export function formatUlogdJson(ev: FlowEvent, o: UlogdJsonOptions = {}): string {
  const recvSec = Math.floor(ev.recvTime / 1e6);
  let s = o.eventv1 ? '{"@version": 1, "@timestamp": "' : '{"timestamp": "';
  s += localStamp(recvSec) + '", "dvc": ' + dvcJson(o.device ?? 'Netfilter');
  const ports = hasPorts(ev.proto);
  s += ', "orig.ip.protocol": ' + ev.proto;
  if (ports) s += ', "orig.l4.sport": ' + (ev.orig.sport ?? 0) + ', "orig.l4.dport": ' + (ev.orig.dport ?? 0);
  s += ', "orig.raw.pktlen": ' + (ev.origBytes ?? 0) + ', "orig.raw.pktcount": ' + (ev.origPackets ?? 0);
  s += ', "reply.ip.protocol": ' + ev.proto;
  if (ports) s += ', "reply.l4.sport": ' + (ev.reply.sport ?? 0) + ', "reply.l4.dport": ' + (ev.reply.dport ?? 0);
  s += ', "reply.raw.pktlen": ' + (ev.replyBytes ?? 0) + ', "reply.raw.pktcount": ' + (ev.replyPackets ?? 0);
  if (ev.proto === IPPROTO_ICMP) s += ', "icmp.code": ' + (ev.orig.icmpCode ?? 0) + ', "icmp.type": ' + (ev.orig.icmpType ?? 0);
  s += ', "ct.mark": ' + (ev.mark ?? 0) + ', "ct.id": ' + (ev.id ?? 0) + ', "ct.event": ' + EVENT_NUM[ev.type];
  // flow times: the kernel's timestamps when it sent them; otherwise a new
  // flow starts, and a destroyed one ends, when the event is received
  const recvUsec = ev.recvTime - recvSec * 1e6;
  if (ev.start !== undefined) {
    const [ss, su] = secUsec(ev.start);
    s += ', "flow.start.sec": ' + ss + ', "flow.start.usec": ' + su;
  } else if (ev.type === 'NEW' || ev.type === 'DUMP') {
    s += ', "flow.start.sec": ' + recvSec + ', "flow.start.usec": ' + recvUsec;
  }
  if (ev.stop !== undefined) {
    const [es, eu] = secUsec(ev.stop);
    s += ', "flow.end.sec": ' + es + ', "flow.end.usec": ' + eu;
  } else if (ev.type === 'DESTROY') {
    s += ', "flow.end.sec": ' + recvSec + ', "flow.end.usec": ' + recvUsec;
  }
  s += ', "oob.family": ' + ev.family + ', "oob.protocol": 0';
  s += ', "src_ip": "' + ev.orig.src + '", "dest_ip": "' + ev.orig.dst +
    '", "reply.ip.saddr.str": "' + ev.reply.src + '", "reply.ip.daddr.str": "' + ev.reply.dst + '"}';
  return s;
}
