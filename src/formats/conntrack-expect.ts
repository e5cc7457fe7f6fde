// Expectations as `conntrack -L expect` and `conntrack -E expect` print them
// (conntrack-tools 1.4.7, libnetfilter_conntrack 1.0.9): the line, or with
// -o xml one <flow> element per line inside <expect>…</expect>.
import { protoName } from '../records/values.js';
import { NF_CT_EXPECT_INACTIVE, NF_CT_EXPECT_PERMANENT, NF_CT_EXPECT_USERSPACE, type ExpectEvent } from '../records/expect.js';
import { prefix, tupleText } from './conntrack.js';
import { l4 } from './conntrack-xml.js';

export const EXPECT_XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<expect>';
export const EXPECT_XML_END = '</expect>';

export interface ExpectFormatOptions {
  /** -o timestamp: "[sec.usec]\t" before the line (dumps too, as conntrack), or <when> in XML */
  timestamp?: boolean;
}

/** conntrack's "[%-8ld.%-6ld]\t" of when the record was read */
function timePrefix(us: number): string {
  const sec = Math.floor(us / 1e6);
  return '[' + String(sec).padEnd(8) + '.' + String(us - sec * 1e6).padEnd(6) + ']\t';
}
const readAt = (ex: ExpectEvent) => (ex.recvTime > 0 ? ex.recvTime : Date.now() * 1000);

/** The line conntrack prints for an expectation, without the newline. */
export function formatExpect(ex: ExpectEvent, o: ExpectFormatOptions = {}): string {
  let s = o.timestamp ? timePrefix(readAt(ex)) : '';
  s += prefix(ex.type);
  if (ex.timeout !== undefined) s += ex.timeout + ' ';
  s += 'proto=' + ex.proto + ' ';
  s += tupleText(ex.expected, ex.proto) + tupleText(ex.mask, ex.maskProto, 'mask-src', 'mask-dst') + tupleText(ex.master, ex.masterProto, 'master-src', 'master-dst');
  if (ex.zone !== undefined) s += 'zone=' + ex.zone + ' ';
  const f = ex.flags ?? 0;
  const names: string[] = [];
  if (f & NF_CT_EXPECT_PERMANENT) names.push('PERMANENT');
  if (f & NF_CT_EXPECT_INACTIVE) names.push('INACTIVE');
  if (f & NF_CT_EXPECT_USERSPACE) names.push('USERSPACE');
  s += names.join(',');
  if (f) s += ' ';
  if (ex.class !== undefined) s += 'class=' + ex.class + ' ';
  if (ex.helper !== undefined) s += 'helper=' + ex.helper;
  return s.endsWith(' ') ? s.slice(0, -1) : s;
}

const l3Name = (family: number) => (family === 2 ? 'ipv4' : family === 10 ? 'ipv6' : 'unknown');
const pad2 = (n: number) => (n < 10 ? '0' + n : String(n));

/** The <flow> element conntrack -o xml prints for an expectation. */
export function formatExpectXml(ex: ExpectEvent, o: ExpectFormatOptions = {}): string {
  let s = ex.type === 'NEW' ? '<flow type="new">' : ex.type === 'UPDATE' ? '<flow type="update">' : ex.type === 'DESTROY' ? '<flow type="destroy">' : '<flow>';
  s += `<layer3 protonum="${ex.family}" protoname="${l3Name(ex.family)}">` +
    `<expected><src>${ex.expected.src}</src><dst>${ex.expected.dst}</dst></expected>` +
    `<mask><src>${ex.mask.src}</src><dst>${ex.mask.dst}</dst></mask>` +
    `<master><src>${ex.master.src}</src><dst>${ex.master.dst}</dst></master></layer3>`;
  s += `<layer4 protonum="${ex.proto}" protoname="${protoName(ex.proto)}">` +
    `<expected>${l4(ex.expected, ex.proto)}</expected><mask>${l4(ex.mask, ex.maskProto)}</mask><master>${l4(ex.master, ex.masterProto)}</master></layer4>`;
  s += '<meta>';
  if (ex.helper !== undefined) s += `<helper-name>${ex.helper}</helper-name>`;
  if (ex.timeout !== undefined) s += `<timeout>${ex.timeout}</timeout>`;
  if (ex.class !== undefined) s += `<class>${ex.class}</class>`;
  if (ex.zone !== undefined) s += `<zone>${ex.zone}</zone>`;
  if (o.timestamp) {
    const d = new Date(readAt(ex) / 1000);
    s += `<when><hour>${d.getHours()}</hour><min>${pad2(d.getMinutes())}</min><sec>${pad2(d.getSeconds())}</sec>` +
      `<wday>${d.getDay() + 1}</wday><day>${d.getDate()}</day><month>${d.getMonth() + 1}</month><year>${d.getFullYear()}</year></when>`;
  }
  const f = ex.flags ?? 0;
  if (f & NF_CT_EXPECT_PERMANENT) s += '<permanent/>';
  if (f & NF_CT_EXPECT_INACTIVE) s += '<inactive/>';
  if (f & NF_CT_EXPECT_USERSPACE) s += '<userspace/>';
  return s + '</meta></flow>';
}
