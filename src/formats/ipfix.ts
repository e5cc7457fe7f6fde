// IPFIX (RFC 7011) of flow records, with the NAT translation as RFC 8158
// names it: the message and set framing, the four templates (IPv4 and
// IPv6, each with and without NAT) and their data records. No library
// encodes IPFIX; this is small and written from the RFCs and IANA's
// registry of information elements.
import type { EndedFlow } from '../records/flow.js';
import type { AggregateKey, AggregateRecord } from '../records/aggregate.js';
import { FLAG_ACTIVE_ESTIMATED, isIcmp } from '../records/flow.js';
import { parseIp } from '../util/ip.js';

export const IPFIX_VERSION = 10;
export const MESSAGE_HEADER_LEN = 16;
export const SET_HEADER_LEN = 4;
export const TEMPLATE_SET_ID = 2;

/** IANA IPFIX information elements used here: [id, length] */
export const IE = {
  octetDeltaCount: 1, packetDeltaCount: 2, protocolIdentifier: 4, sourceTransportPort: 7, sourceIPv4Address: 8,
  destinationTransportPort: 11, destinationIPv4Address: 12,
  sourceIPv6Address: 27, destinationIPv6Address: 28, icmpTypeCodeIPv4: 32, flowEndReason: 136, icmpTypeCodeIPv6: 139,
  flowStartMilliseconds: 152, flowEndMilliseconds: 153, postNATSourceIPv4Address: 225, postNATDestinationIPv4Address: 226,
  postNAPTSourceTransportPort: 227, postNAPTDestinationTransportPort: 228, natEvent: 230,
  postNATSourceIPv6Address: 281, postNATDestinationIPv6Address: 282, observationTimeMilliseconds: 323,
  deltaFlowCount: 3, sourceIPv4PrefixLength: 9, destinationIPv4PrefixLength: 13, sourceIPv6PrefixLength: 29, destinationIPv6PrefixLength: 30,
} as const;

/** flowEndReason (IANA): the flow ended as far as the exporter can tell */
export const END_IDLE_TIMEOUT = 1;
export const END_ACTIVE_TIMEOUT = 2;
export const END_OF_FLOW = 3;
export const END_FORCED = 4;

/** natEvent: RFC 8158's session events, and the historic values (RFC 8158 §4.1: 1, 2) many collectors show as ADD/DELETE */
export const NAT_EVENT = {
  rfc8158: { create4: 4, delete4: 5, create6: 1, delete6: 2 },
  historic: { create4: 1, delete4: 2, create6: 1, delete6: 2 },
} as const;
export type NatEventNumbering = keyof typeof NAT_EVENT;

/** RFC 5103's private enterprise number for the reverse direction of a biflow */
export const REVERSE_PEN = 29305;
/** [id, length, enterprise number (0: IANA's)] */
type Field = readonly [id: number, len: number, pen: number];
const f = (id: number, len: number, pen = 0): Field => [id, len, pen];

/** the fields every template has, in order */
const COMMON: readonly Field[] = [
  f(IE.flowStartMilliseconds, 8), f(IE.flowEndMilliseconds, 8),
  // the reply direction's as RFC 5103's reverse octet/packetDeltaCount (a biflow: the flow is both directions)
  f(IE.octetDeltaCount, 8), f(IE.packetDeltaCount, 8), f(IE.octetDeltaCount, 8, REVERSE_PEN), f(IE.packetDeltaCount, 8, REVERSE_PEN),
  f(IE.protocolIdentifier, 1), f(IE.sourceTransportPort, 2), f(IE.destinationTransportPort, 2), f(IE.flowEndReason, 1),
];

export const TEMPLATE_V4 = 256;
export const TEMPLATE_V4_NAT = 257;
export const TEMPLATE_V6 = 258;
export const TEMPLATE_V6_NAT = 259;
export const TEMPLATE_EVENT_V4 = 260;
export const TEMPLATE_EVENT_V6 = 261;
/** aggregated records: with IPv4 addresses, IPv6 ones, or no address among the keys */
export const TEMPLATE_AGG_V4 = 262;
export const TEMPLATE_AGG_V6 = 263;
export const TEMPLATE_AGG = 264;

/**
 * The flow records' templates. (natEvent is not in them: pmacct's nfacctd
 * takes a record whose template has it for an event, and drops its
 * counters; the NAT session events have templates of their own.)
 */
export const TEMPLATES: ReadonlyArray<{ id: number; fields: readonly Field[] }> = [
  { id: TEMPLATE_V4, fields: [...COMMON, f(IE.icmpTypeCodeIPv4, 2), f(IE.sourceIPv4Address, 4), f(IE.destinationIPv4Address, 4)] },
  {
    id: TEMPLATE_V4_NAT,
    fields: [...COMMON, f(IE.icmpTypeCodeIPv4, 2), f(IE.sourceIPv4Address, 4), f(IE.destinationIPv4Address, 4),
      f(IE.postNATSourceIPv4Address, 4), f(IE.postNATDestinationIPv4Address, 4),
      f(IE.postNAPTSourceTransportPort, 2), f(IE.postNAPTDestinationTransportPort, 2)],
  },
  { id: TEMPLATE_V6, fields: [...COMMON, f(IE.icmpTypeCodeIPv6, 2), f(IE.sourceIPv6Address, 16), f(IE.destinationIPv6Address, 16)] },
  {
    id: TEMPLATE_V6_NAT,
    fields: [...COMMON, f(IE.icmpTypeCodeIPv6, 2), f(IE.sourceIPv6Address, 16), f(IE.destinationIPv6Address, 16),
      f(IE.postNATSourceIPv6Address, 16), f(IE.postNATDestinationIPv6Address, 16),
      f(IE.postNAPTSourceTransportPort, 2), f(IE.postNAPTDestinationTransportPort, 2)],
  },
];

/** RFC 8158's NAT session events (§4.2: session create and delete), IPv4 and IPv6 */
export const EVENT_TEMPLATES: ReadonlyArray<{ id: number; fields: readonly Field[] }> = [4, 16].map((alen) => ({
  id: alen === 4 ? TEMPLATE_EVENT_V4 : TEMPLATE_EVENT_V6,
  fields: [
    f(IE.observationTimeMilliseconds, 8), f(IE.natEvent, 1), f(IE.protocolIdentifier, 1),
    f(alen === 4 ? IE.sourceIPv4Address : IE.sourceIPv6Address, alen), f(alen === 4 ? IE.destinationIPv4Address : IE.destinationIPv6Address, alen),
    f(IE.sourceTransportPort, 2), f(IE.destinationTransportPort, 2),
    f(alen === 4 ? IE.postNATSourceIPv4Address : IE.postNATSourceIPv6Address, alen),
    f(alen === 4 ? IE.postNATDestinationIPv4Address : IE.postNATDestinationIPv6Address, alen),
    f(IE.postNAPTSourceTransportPort, 2), f(IE.postNAPTDestinationTransportPort, 2),
    f(alen === 4 ? IE.icmpTypeCodeIPv4 : IE.icmpTypeCodeIPv6, 2),
  ],
}));

const recordLen = (fields: readonly Field[]) => fields.reduce((n, [, l]) => n + l, 0);
export const RECORD_LEN: Readonly<Record<number, number>> = Object.fromEntries([...TEMPLATES, ...EVENT_TEMPLATES].map((t) => [t.id, recordLen(t.fields)]));
/** the longest record of any template */
export const MAX_RECORD_LEN = Math.max(...Object.values(RECORD_LEN));

export function setOf(list: ReadonlyArray<{ id: number; fields: readonly Field[] }>): Buffer {
  const len = SET_HEADER_LEN + list.reduce((n, t) => n + 4 + t.fields.reduce((k, [, , pen]) => k + (pen ? 8 : 4), 0), 0);
  const b = Buffer.alloc(len);
  b.writeUInt16BE(TEMPLATE_SET_ID, 0);
  b.writeUInt16BE(len, 2);
  let o = SET_HEADER_LEN;
  for (const t of list) {
    b.writeUInt16BE(t.id, o);
    b.writeUInt16BE(t.fields.length, o + 2);
    o += 4;
    for (const [id, l, pen] of t.fields) {
      // (an enterprise-specific element: the high bit set, its number after it)
      b.writeUInt16BE(pen ? id | 0x8000 : id, o);
      b.writeUInt16BE(l, o + 2);
      o += 4;
      if (pen) { b.writeUInt32BE(pen, o); o += 4; }
    }
  }
  return b;
}

/** The template set of the flow records' four templates. */
export function templateSet(): Buffer { return setOf(TEMPLATES); }
/** The template set of the NAT event records' two. */
export function eventTemplateSet(): Buffer { return setOf(EVENT_TEMPLATES); }

/** The template of a flow: its family, and whether it was translated. */
export function templateOf(r: Pick<EndedFlow, 'family' | 'natSrc' | 'natDst'>): number {
  const nat = r.natSrc !== null || r.natDst !== null;
  return r.family === 6 ? (nat ? TEMPLATE_V6_NAT : TEMPLATE_V6) : (nat ? TEMPLATE_V4_NAT : TEMPLATE_V4);
}

/**
 * Why the flow ended, as far as its record tells (flowEndReason): a TCP
 * connection whose FIN or RST was seen (its last state FIN_WAIT, CLOSE_WAIT,
 * LAST_ACK, TIME_WAIT or CLOSE: end of flow detected), an entry whose
 * timeout ran out (idle timeout), else forced end: deleted (conntrack -D, a
 * flush), or an end the record cannot tell (its DESTROY lost, the
 * namespace's timeouts unknown). An interim report of an open flow: the
 * active or the inactive timeout that sent it.
 */
export function endReason(r: Pick<EndedFlow, 'proto' | 'state' | 'flags'> & Partial<Pick<EndedFlow, 'report'>>): number {
  // an interim report of a flow still open: the timeout that sent it
  if (r.report) return r.report === 2 ? END_ACTIVE_TIMEOUT : END_IDLE_TIMEOUT;
  if (r.proto === 6 && r.state !== null && r.state >= 4 && r.state <= 8) return END_OF_FLOW;
  if (r.flags & FLAG_ACTIVE_ESTIMATED) return END_IDLE_TIMEOUT;
  return END_FORCED;
}

/** an unsigned 64-bit field from a safe integer (counters stay below 2^53), without a BigInt */
function u64(b: Buffer, o: number, v: number | null): void {
  const x = v ?? 0;
  b.writeUInt32BE(Math.floor(x / 4294967296), o);
  b.writeUInt32BE(x >>> 0, o + 4);
}

function addr(b: Buffer, o: number, text: string, len: 4 | 16): void {
  if (len === 4) {
    // the decoder's dotted quad: four numbers, parsed in place
    let n = 0;
    let k = o;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 46) { b[k++] = n; n = 0; } else n = n * 10 + (c - 48);
    }
    if (k === o + 3) { b[k] = n; return; }
    b.fill(0, o, o + 4);
    return;
  }
  const a = parseIp(text);
  if (a && a.length === len) b.set(a, o);
  // (an address of the other family cannot be in a record of this template: left zero)
}

/** the ports of a record: for ICMP the echo id as the source port (translated as one), 0 as the destination's (type and code go in icmpTypeCode*) */
function ports(r: EndedFlow): [number, number, number, number] {
  const icmp = isIcmp(r.proto);
  const sp = r.sport ?? 0;
  const dp = icmp ? 0 : r.dport ?? 0;
  const nsp = r.natSrc !== null ? r.natSport ?? sp : sp;
  const ndp = icmp ? 0 : r.natDst !== null ? r.natDport ?? dp : dp;
  return [sp, dp, nsp, ndp];
}

/**
 * Writes the flow record of `r` at `o` in `b` (RECORD_LEN[templateOf(r)]
 * bytes): its times to the millisecond (the start rounded down, the end
 * up), the original direction's counters as octet/packetDeltaCount, the
 * reply's as RFC 5103's reverse ones (nfdump's in and out), and,
 * translated, the addresses and ports after it (an untranslated side as it
 * was). Returns the length.
 */
export function writeRecord(b: Buffer, o: number, r: EndedFlow): number {
  const t = templateOf(r);
  const alen = r.family === 6 ? 16 : 4;
  const [sp, dp, nsp, ndp] = ports(r);
  b.fill(0, o, o + RECORD_LEN[t]);
  u64(b, o, Math.floor(r.start / 1000));
  u64(b, o + 8, Math.ceil((r.end ?? r.start) / 1000));
  u64(b, o + 16, r.origBytes);
  u64(b, o + 24, r.origPackets);
  u64(b, o + 32, r.replyBytes);
  u64(b, o + 40, r.replyPackets);
  b.writeUInt8(r.proto & 0xff, o + 48);
  b.writeUInt16BE(sp, o + 49);
  b.writeUInt16BE(dp, o + 51);
  b.writeUInt8(endReason(r), o + 53);
  b.writeUInt16BE(isIcmp(r.proto) ? r.dport ?? 0 : 0, o + 54);
  let p = o + 56;
  addr(b, p, r.src, alen); p += alen;
  addr(b, p, r.dst, alen); p += alen;
  if (t === TEMPLATE_V4_NAT || t === TEMPLATE_V6_NAT) {
    addr(b, p, r.natSrc ?? r.src, alen); p += alen;
    addr(b, p, r.natDst ?? r.dst, alen); p += alen;
    b.writeUInt16BE(nsp, p);
    b.writeUInt16BE(ndp, p + 2);
    p += 4;
  }
  return p - o;
}

/**
 * Writes the NAT session event of `r` (a translated flow): `ended` false, its
 * create at its start; true, its delete at its end. Returns the length.
 */
export function writeEvent(b: Buffer, o: number, r: EndedFlow, ended: boolean, nat: NatEventNumbering): number {
  const v6 = r.family === 6;
  const alen = v6 ? 16 : 4;
  const [sp, dp, nsp, ndp] = ports(r);
  const n = NAT_EVENT[nat];
  u64(b, o, ended ? Math.ceil((r.end ?? r.start) / 1000) : Math.floor(r.start / 1000));
  b.writeUInt8(ended ? (v6 ? n.delete6 : n.delete4) : (v6 ? n.create6 : n.create4), o + 8);
  b.writeUInt8(r.proto & 0xff, o + 9);
  let p = o + 10;
  b.fill(0, p, p + 4 * alen + 10);
  addr(b, p, r.src, alen); p += alen;
  addr(b, p, r.dst, alen); p += alen;
  b.writeUInt16BE(sp, p); b.writeUInt16BE(dp, p + 2); p += 4;
  addr(b, p, r.natSrc ?? r.src, alen); p += alen;
  addr(b, p, r.natDst ?? r.dst, alen); p += alen;
  b.writeUInt16BE(nsp, p); b.writeUInt16BE(ndp, p + 2); p += 4;
  b.writeUInt16BE(isIcmp(r.proto) ? r.dport ?? 0 : 0, p); p += 2;
  return p - o;
}

/** The message header (16 bytes) at the front of `b`. */
export function writeHeader(b: Buffer, length: number, exportSecs: number, sequence: number, domain: number): void {
  b.writeUInt16BE(IPFIX_VERSION, 0);
  b.writeUInt16BE(length, 2);
  b.writeUInt32BE(exportSecs >>> 0, 4);
  b.writeUInt32BE(sequence >>> 0, 8);
  b.writeUInt32BE(domain >>> 0, 12);
}

/**
 * Builds messages of at most `maxLen` bytes from flow records: each
 * message one data set per template it carries (records of one template
 * follow each other in a set; a record of another template starts a new
 * set), the template set first when `withTemplates`. The sequence number
 * is the count of data records sent before the message (RFC 7011 §3.1),
 * kept by the caller.
 */
export class IpfixPacker {
  private readonly buf: Buffer;
  private len = MESSAGE_HEADER_LEN;
  private setStart = -1;
  private setId = -1;
  /** data records in the message being built */
  records = 0;

  constructor(private readonly maxLen: number, private readonly nat: NatEventNumbering) {
    this.buf = Buffer.alloc(maxLen);
  }

  get empty(): boolean { return this.len === MESSAGE_HEADER_LEN; }

  /** the template set, at the start of a message */
  addTemplates(t: Buffer): void {
    if (!this.empty) throw new Error('the templates go first in a message');
    t.copy(this.buf, this.len);
    this.len += t.length;
  }

  private fits(t: number): boolean {
    return this.len + RECORD_LEN[t] + (t === this.setId ? 0 : SET_HEADER_LEN) <= this.maxLen;
  }

  /** Does the flow record of `r` fit in this message (in its current set or a new one)? */
  fitsFlow(r: EndedFlow): boolean { return this.fits(templateOf(r)); }
  fitsEvent(r: EndedFlow): boolean { return this.fits(r.family === 6 ? TEMPLATE_EVENT_V6 : TEMPLATE_EVENT_V4); }

  addFlow(r: EndedFlow): void {
    const t = templateOf(r);
    if (t !== this.setId) this.startSet(t);
    this.len += writeRecord(this.buf, this.len, r);
    this.records++;
  }

  /** Does a record of `len` bytes of template `id` fit in this message? */
  fitsRecord(id: number, len: number): boolean {
    return this.len + len + (id === this.setId ? 0 : SET_HEADER_LEN) <= this.maxLen;
  }

  /** A record of template `id`, written by `write` (which returns its length). */
  addRecord(id: number, write: (b: Buffer, o: number) => number): void {
    if (id !== this.setId) this.startSet(id);
    this.len += write(this.buf, this.len);
    this.records++;
  }

  addEvent(r: EndedFlow, ended: boolean): void {
    const t = r.family === 6 ? TEMPLATE_EVENT_V6 : TEMPLATE_EVENT_V4;
    if (t !== this.setId) this.startSet(t);
    this.len += writeEvent(this.buf, this.len, r, ended, this.nat);
    this.records++;
  }

  private startSet(id: number): void {
    this.endSet();
    this.setStart = this.len;
    this.setId = id;
    this.buf.writeUInt16BE(id, this.len);
    this.len += SET_HEADER_LEN;
  }

  private endSet(): void {
    if (this.setStart >= 0) this.buf.writeUInt16BE(this.len - this.setStart, this.setStart + 2);
    this.setStart = -1;
    this.setId = -1;
  }

  /** The message (a copy), and the packer empty again. */
  finish(exportSecs: number, sequence: number, domain: number): Buffer {
    this.endSet();
    writeHeader(this.buf, this.len, exportSecs, sequence, domain);
    const m = Buffer.from(this.buf.subarray(0, this.len));
    this.len = MESSAGE_HEADER_LEN;
    this.records = 0;
    return m;
  }
}

type AggWriter = (b: Buffer, o: number, r: AggregateRecord) => void;

/**
 * The templates and records of one aggregation stage's records: the times
 * (the earliest start, the latest end), the sums of both directions'
 * counters, how many flows (`deltaFlowCount`, nfdump's aggregated flows),
 * then only the stage's keys: the protocol, the ports, the addresses (with
 * their prefix length when shorter than the family's: 9/13, 29/30) and
 * after NAT. With an address among the keys, one template per family;
 * without, one for both.
 */
export class AggregateEncoding {
  readonly templates: Buffer;
  private readonly byId = new Map<number, { fields: Field[]; writers: AggWriter[]; len: number }>();
  private readonly addressed: boolean;

  constructor(keys: readonly AggregateKey[], prefix: { src4: number; src6: number; dst4: number; dst6: number }) {
    const has = (k: AggregateKey) => keys.includes(k);
    this.addressed = has('src') || has('dst') || has('nat_src') || has('nat_dst');
    const list: Array<{ id: number; fields: Field[] }> = [];
    for (const fam of this.addressed ? [4, 6] as const : [0] as const) {
      const alen = fam === 6 ? 16 : 4;
      const fields: Field[] = [];
      const writers: AggWriter[] = [];
      const add = (fl: Field, w: AggWriter) => { fields.push(fl); writers.push(w); };
      add(f(IE.flowStartMilliseconds, 8), (b, o, r) => u64(b, o, Math.floor(r.first / 1000)));
      add(f(IE.flowEndMilliseconds, 8), (b, o, r) => u64(b, o, Math.ceil(r.last / 1000)));
      add(f(IE.octetDeltaCount, 8), (b, o, r) => u64(b, o, r.origBytes));
      add(f(IE.packetDeltaCount, 8), (b, o, r) => u64(b, o, r.origPackets));
      add(f(IE.octetDeltaCount, 8, REVERSE_PEN), (b, o, r) => u64(b, o, r.replyBytes));
      add(f(IE.packetDeltaCount, 8, REVERSE_PEN), (b, o, r) => u64(b, o, r.replyPackets));
      add(f(IE.deltaFlowCount, 8), (b, o, r) => u64(b, o, r.flows));
      if (has('proto')) add(f(IE.protocolIdentifier, 1), (b, o, r) => { b[o] = (r.proto ?? 0) & 0xff; });
      if (has('sport')) add(f(IE.sourceTransportPort, 2), (b, o, r) => b.writeUInt16BE(r.sport ?? 0, o));
      if (has('dport')) add(f(IE.destinationTransportPort, 2), (b, o, r) => b.writeUInt16BE(r.dport ?? 0, o));
      const v6 = fam === 6;
      const full = v6 ? 128 : 32;
      const sp = v6 ? prefix.src6 : prefix.src4;
      const dp = v6 ? prefix.dst6 : prefix.dst4;
      if (has('src')) add(f(v6 ? IE.sourceIPv6Address : IE.sourceIPv4Address, alen), (b, o, r) => addr(b, o, r.src!, alen));
      if (has('dst')) add(f(v6 ? IE.destinationIPv6Address : IE.destinationIPv4Address, alen), (b, o, r) => addr(b, o, r.dst!, alen));
      if (has('nat_src')) add(f(v6 ? IE.postNATSourceIPv6Address : IE.postNATSourceIPv4Address, alen), (b, o, r) => addr(b, o, r.natSrc!, alen));
      if (has('nat_dst')) add(f(v6 ? IE.postNATDestinationIPv6Address : IE.postNATDestinationIPv4Address, alen), (b, o, r) => addr(b, o, r.natDst!, alen));
      if ((has('src') || has('nat_src')) && sp < full) add(f(v6 ? IE.sourceIPv6PrefixLength : IE.sourceIPv4PrefixLength, 1), (b, o) => { b[o] = sp; });
      if ((has('dst') || has('nat_dst')) && dp < full) add(f(v6 ? IE.destinationIPv6PrefixLength : IE.destinationIPv4PrefixLength, 1), (b, o) => { b[o] = dp; });
      if (has('nat_sport')) add(f(IE.postNAPTSourceTransportPort, 2), (b, o, r) => b.writeUInt16BE(r.natSport ?? 0, o));
      if (has('nat_dport')) add(f(IE.postNAPTDestinationTransportPort, 2), (b, o, r) => b.writeUInt16BE(r.natDport ?? 0, o));
      const id = fam === 6 ? TEMPLATE_AGG_V6 : fam === 4 ? TEMPLATE_AGG_V4 : TEMPLATE_AGG;
      this.byId.set(id, { fields, writers, len: recordLen(fields) });
      list.push({ id, fields });
    }
    this.templates = setOf(list);
  }

  templateOf(r: AggregateRecord): number {
    return !this.addressed ? TEMPLATE_AGG : r.family === 6 ? TEMPLATE_AGG_V6 : TEMPLATE_AGG_V4;
  }

  recordLen(id: number): number { return this.byId.get(id)!.len; }

  /** the longest record */
  get maxRecordLen(): number { return Math.max(...[...this.byId.values()].map((t) => t.len)); }

  /** Writes the record of `r` at `o` in `b`; returns its length. */
  write(b: Buffer, o: number, r: AggregateRecord): number {
    const t = this.byId.get(this.templateOf(r))!;
    b.fill(0, o, o + t.len);
    let p = o;
    for (let i = 0; i < t.fields.length; i++) { t.writers[i](b, p, r); p += t.fields[i][1]; }
    return t.len;
  }
}
