// `conntrack -E -o xml` / `conntrack -L -o xml` (conntrack-tools 1.4.7 with
// libnetfilter_conntrack 1.0.9), byte for byte: one <flow> element per
// line, the document's head before the first and its end at exit (nothing
// at all when nothing was shown). Measured against the real conntrack:
// test/unit/formats.test.ts (captured lines) and test/e2e/conntrack-options.
import { IPPROTO_GRE, IPS_ASSURED, IPS_SEEN_REPLY, TCP_STATES, protoName } from '../records/values.js';
import { printsPorts, userspaceSuffix } from './conntrack.js';
import type { FlowEvent, Tuple } from '../records/event.js';

export const XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<conntrack>';
export const XML_END = '</conntrack>';

export interface ConntrackXmlOptions {
  /** -o timestamp: <when> with the local time of printing */
  time?: boolean;
  /** -o ktimestamp: <timestamp> with the kernel's start and stop (ns) */
  ktimestamp?: boolean;
  /** resolve "[USERSPACE] portid=N progname=NAME" (events only) */
  progname?: (portid: number) => string | undefined;
}

export function l4(t: Tuple, proto: number): string {
  if (printsPorts(proto)) return `<sport>${t.sport ?? 0}</sport><dport>${t.dport ?? 0}</dport>`;
  return proto === IPPROTO_GRE ? `<srckey>0x${(t.sport ?? 0).toString(16)}</srckey><dstkey>0x${(t.dport ?? 0).toString(16)}</dstkey>` : '';
}

function tuple(ev: FlowEvent, dir: 'original' | 'reply', counters: boolean): string {
  const t = dir === 'original' ? ev.orig : ev.reply;
  const l3 = ev.family === 2 ? '2" protoname="ipv4' : ev.family === 10 ? '10" protoname="ipv6' : `${ev.family}" protoname="unknown`;
  let s = `<meta direction="${dir}"><layer3 protonum="${l3}"><src>${t.src}</src><dst>${t.dst}</dst></layer3>` +
    `<layer4 protonum="${ev.proto}" protoname="${protoName(ev.proto)}">${l4(t, ev.proto)}</layer4>`;
  // a zone of this direction only (--orig-zone, --reply-zone)
  if (t.zone !== undefined) s += `<zone>${t.zone}</zone>`;
  if (counters) {
    // (the reply's printed whenever the original's are there, as the library does)
    const p = dir === 'original' ? ev.origPackets : ev.replyPackets;
    const b = dir === 'original' ? ev.origBytes : ev.replyBytes;
    s += `<counters><packets>${p ?? 0}</packets><bytes>${b ?? 0}</bytes></counters>`;
  }
  return s + '</meta>';
}

/**
 * The state as the XML writer names it: TCP's names for every protocol
 * (libnetfilter_conntrack looks SCTP's and DCCP's states up in the TCP
 * table there: an SCTP entry in SHUTDOWN_SENT prints CLOSE_WAIT), NONE past
 * the table's end.
 */
function xmlState(n: number, max: number): string {
  return n < max ? (TCP_STATES[n] ?? '(null)') : TCP_STATES[0];
}

/** when the record was read (µs), as conntrack's clock at printing */
const readAt = (ev: FlowEvent) => (ev.recvTime > 0 ? ev.recvTime : Date.now() * 1000);
const pad2 = (n: number) => (n < 10 ? '0' + n : String(n));

/** The <flow> element conntrack -o xml prints for `ev` (and its [USERSPACE] suffix), without the newline. */
export function formatConntrackXml(ev: FlowEvent, o: ConntrackXmlOptions = {}): string {
  let s = ev.type === 'NEW' ? '<flow type="new">' : ev.type === 'UPDATE' ? '<flow type="update">' : ev.type === 'DESTROY' ? '<flow type="destroy">' : '<flow>';
  const counters = ev.origPackets !== undefined && ev.origBytes !== undefined;
  s += tuple(ev, 'original', counters) + tuple(ev, 'reply', counters);
  const independent = ev.tcpState !== undefined || ev.sctpState !== undefined || ev.dccpState !== undefined || ev.timeout !== undefined ||
    ev.mark !== undefined || ev.secmark !== undefined || ev.zone !== undefined || ev.use !== undefined || ev.status !== undefined ||
    ev.id !== undefined || ev.start !== undefined || ev.stop !== undefined;
  if (independent) s += '<meta direction="independent">';
  if (ev.tcpState !== undefined) s += `<state>${xmlState(ev.tcpState, 10)}</state>`;
  if (ev.sctpState !== undefined) s += `<state>${xmlState(ev.sctpState, 10)}</state>`;
  if (ev.dccpState !== undefined) s += `<state>${xmlState(ev.dccpState, 10)}</state>`;
  if (ev.timeout !== undefined) s += `<timeout>${ev.timeout}</timeout>`;
  if (ev.mark !== undefined) s += `<mark>${ev.mark}</mark>`;
  if (ev.secmark !== undefined) s += `<secmark>${ev.secmark}</secmark>`;
  if (ev.secctx !== undefined) s += `<secctx>${ev.secctx}</secctx>`;
  if (ev.zone !== undefined) s += `<zone>${ev.zone}</zone>`;
  if (ev.use !== undefined) s += `<use>${ev.use}</use>`;
  if (ev.id !== undefined) s += `<id>${ev.id}</id>`;
  if (ev.status !== undefined && ev.status & IPS_ASSURED) s += '<assured/>';
  if (ev.status !== undefined && !(ev.status & IPS_SEEN_REPLY)) s += '<unreplied/>';
  if (o.ktimestamp && (ev.start !== undefined || ev.stop !== undefined)) {
    s += '<timestamp>';
    if (ev.start !== undefined) s += `<start>${ev.start}</start>`;
    if (ev.stop !== undefined) s += `<stop>${ev.stop}</stop>`;
    s += '</timestamp>';
  }
  if (ev.start !== undefined && ev.stop !== undefined) s += `<deltatime>${(ev.stop - ev.start) / 1000000000n}</deltatime>`;
  // (an entry still open: to now, that is when it was read, as the line format's delta-time)
  else if (ev.start !== undefined) s += `<deltatime>${Math.floor(readAt(ev) / 1e6) - Number(ev.start / 1000000000n)}</deltatime>`;
  if (independent) s += '</meta>';
  // (conntrack -L prints no <when>: a dump line has no time of its own)
  if (o.time && ev.type !== 'DUMP') {
    const d = new Date(readAt(ev) / 1000);
    s += `<when><hour>${d.getHours()}</hour><min>${pad2(d.getMinutes())}</min><sec>${pad2(d.getSeconds())}</sec>` +
      `<wday>${d.getDay() + 1}</wday><day>${d.getDate()}</day><month>${d.getMonth() + 1}</month><year>${d.getFullYear()}</year></when>`;
  }
  return s + '</flow>' + userspaceSuffix(ev, o.progname);
}
