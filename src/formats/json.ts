// conntrail's own JSON line: one object per event, every decoded field.
// Schema: docs/json-format.md.
import { IPPROTO_ICMP, IPPROTO_ICMPV6, STATUS_NAMES, protoName, TCP_STATES, SCTP_STATES, DCCP_STATES } from '../records/values.js';
import type { FlowEvent, Tuple } from '../records/event.js';
import { isoMicros, isoNanos, isoPrefix } from '../util/time.js';
import { asciiJsonString } from '../util/json.js';

function head(type: FlowEvent['type']): string {
  switch (type) {
    case 'NEW': return '{"event":"new","time":"';
    case 'UPDATE': return '{"event":"update","time":"';
    case 'DESTROY': return '{"event":"destroy","time":"';
    default: return '{"event":"dump","time":"';
  }
}

const statusCache = new Map<number, string>();
/** ',"status":[names],"status_bits":N', cached per value (few values occur) */
function statusText(status: number): string {
  let t = statusCache.get(status);
  if (t === undefined) {
    let s = '[';
    for (const [bit, name] of STATUS_NAMES) {
      if (status & bit) s += (s.length > 1 ? ',"' : '"') + name + '"';
    }
    t = ',"status":' + s + '],"status_bits":' + status;
    if (statusCache.size < 4096) statusCache.set(status, t);
  }
  return t;
}

function tuple(t: Tuple, proto: number, packets: number | undefined, bytes: number | undefined): string {
  let s = '{"src":"' + t.src + '","dst":"' + t.dst + '"';
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    if (t.icmpType !== undefined) s += ',"type":' + t.icmpType;
    if (t.icmpCode !== undefined) s += ',"code":' + t.icmpCode;
    if (t.icmpId !== undefined) s += ',"id":' + t.icmpId;
  } else {
    if (t.sport !== undefined) s += ',"sport":' + t.sport;
    if (t.dport !== undefined) s += ',"dport":' + t.dport;
  }
  if (t.zone !== undefined) s += ',"zone":' + t.zone;
  if (packets !== undefined) s += ',"packets":' + packets;
  if (bytes !== undefined) s += ',"bytes":' + bytes;
  return s + '}';
}

/** "<iso>","<name>_ns":"<ns>" from the decimal digits, without bigint arithmetic */
function nsTime(name: string, ns: bigint): string {
  const d = ns.toString();
  if (d.length > 9 && d.length <= 19) {
    return ',"' + name + '":"' + isoPrefix(Number(d.slice(0, -9))) + d.slice(-9) + 'Z","' + name + '_ns":"' + d + '"';
  }
  return nsTimeSlow(name, ns);
}

function nsTimeSlow(name: string, ns: bigint): string {
  // ns since the epoch exceed 2^53: a string, so every JSON parser keeps them exact
  return ',"' + name + '":"' + isoNanos(ns) + '","' + name + '_ns":"' + ns + '"';
}

// the receive time is the same for every event of a batch
let lastRecv = -1;
let lastRecvText = '';
function recvText(us: number): string {
  if (us !== lastRecv) {
    lastRecv = us;
    lastRecvText = isoMicros(us) + '","time_us":' + us;
  }
  return lastRecvText;
}

const familyProto: string[] = [];
function familyProtoText(family: number, proto: number): string {
  const k = (family << 8) | proto;
  let t = familyProto[k];
  if (t === undefined) {
    t = (family === 2 ? ',"family":"ipv4"' : family === 10 ? ',"family":"ipv6"' : ',"family":' + family) +
      ',"proto":"' + protoName(proto) + '","proto_num":' + proto;
    familyProto[k] = t;
  }
  return t;
}

export function formatJson(ev: FlowEvent): string {
  let s = head(ev.type) + recvText(ev.recvTime) + familyProtoText(ev.family, ev.proto);
  if (ev.id !== undefined) s += ',"id":' + ev.id;
  if (ev.tcpState !== undefined) s += ',"state":"' + (TCP_STATES[ev.tcpState] ?? ev.tcpState) + '"';
  else if (ev.sctpState !== undefined) s += ',"state":"' + (SCTP_STATES[ev.sctpState] ?? ev.sctpState) + '"';
  else if (ev.dccpState !== undefined) s += ',"state":"' + (DCCP_STATES[ev.dccpState] ?? ev.dccpState) + '"';
  if (ev.sctpVtagOrig !== undefined || ev.sctpVtagReply !== undefined) {
    s += ',"sctp_vtag":{"orig":' + (ev.sctpVtagOrig ?? null) + ',"reply":' + (ev.sctpVtagReply ?? null) + '}';
  }
  if (ev.timeout !== undefined) s += ',"timeout":' + ev.timeout;
  s += ',"orig":' + tuple(ev.orig, ev.proto, ev.origPackets, ev.origBytes);
  s += ',"reply":' + tuple(ev.reply, ev.proto, ev.replyPackets, ev.replyBytes);
  if (ev.status !== undefined) s += statusText(ev.status);
  if (ev.mark !== undefined) s += ',"mark":' + ev.mark;
  if (ev.secmark !== undefined) s += ',"secmark":' + ev.secmark;
  if (ev.secctx !== undefined) s += ',"secctx":' + asciiJsonString(ev.secctx, true);
  if (ev.zone !== undefined) s += ',"zone":' + ev.zone;
  if (ev.use !== undefined) s += ',"use":' + ev.use;
  if (ev.helper !== undefined) s += ',"helper":' + asciiJsonString(ev.helper, true);
  if (ev.labels !== undefined) s += ',"labels":"' + Buffer.from(ev.labels).toString('hex') + '"';
  if (ev.start !== undefined) s += nsTime('start', ev.start);
  if (ev.stop !== undefined) s += nsTime('stop', ev.stop);
  if (ev.start !== undefined && ev.stop !== undefined) {
    s += ',"duration_s":' + Number(ev.stop - ev.start) / 1e9;
  }
  if (ev.eventTime !== undefined) s += nsTime('event_time', ev.eventTime);
  if (ev.portid !== 0) s += ',"portid":' + ev.portid;
  if (ev.netns !== '') s += ',"netns":' + asciiJsonString(ev.netns) + (ev.netnsInode ? ',"netns_inode":' + ev.netnsInode : '');
  return s + '}';
}
