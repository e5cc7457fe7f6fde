// The IPFIX encoder, read back by a reader written here from RFC 7011 (the
// message header, template sets, data sets by template): every record
// field where the template says it is, 64-bit counters above 2^32, message
// sizes within the limit, sets split by template, sequence numbers that
// count the data records before each message, templates first and again
// on their timer. (The collectors read it in test/e2e/ipfix.test.ts.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  IE, IpfixPacker, NAT_EVENT, TEMPLATE_EVENT_V4, TEMPLATE_V4, TEMPLATE_V4_NAT, TEMPLATE_V6_NAT, endReason, eventTemplateSet, templateSet,
} from '../../src/formats/ipfix.js';
import { cachedLookup, IpfixSink, type Lookup } from '../../src/sinks/ipfix.js';
import { FLAG_ACTIVE_ESTIMATED, FLAG_END_ESTIMATED, FLAG_START_UNKNOWN, type EndedFlow } from '../../src/records/flow.js';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';

/** the key of an RFC 5103 reverse element in a parsed record */
const REV = 0x10000;
interface Parsed { version: number; length: number; exportTime: number; seq: number; domain: number; sets: Array<{ id: number; records: Array<Map<number, Buffer>> }> }

/** RFC 7011 §3: a message, with the templates it has learnt (in `templates`) */
function parse(b: Buffer, templates: Map<number, Array<[number, number]>>): Parsed {
  const m: Parsed = { version: b.readUInt16BE(0), length: b.readUInt16BE(2), exportTime: b.readUInt32BE(4), seq: b.readUInt32BE(8), domain: b.readUInt32BE(12), sets: [] };
  assert.equal(m.length, b.length, 'the header\'s length is the message\'s');
  let o = 16;
  while (o < b.length) {
    const id = b.readUInt16BE(o);
    const len = b.readUInt16BE(o + 2);
    assert.ok(len >= 4 && o + len <= b.length, `set ${id} at ${o}: length ${len}`);
    const set = { id, records: [] as Array<Map<number, Buffer>> };
    if (id === 2) {
      let p = o + 4;
      while (p < o + len) {
        const tid = b.readUInt16BE(p);
        const n = b.readUInt16BE(p + 2);
        p += 4;
        const fields: Array<[number, number]> = [];
        for (let i = 0; i < n; i++, p += 4) {
          const id = b.readUInt16BE(p);
          // an enterprise element (high bit): its number follows; RFC 5103's reverse ones are keyed REV + id here
          if (id & 0x8000) { assert.equal(b.readUInt32BE(p + 4), 29305, 'the only enterprise is RFC 5103\'s reverse'); fields.push([REV + (id & 0x7fff), b.readUInt16BE(p + 2)]); p += 4; }
          else fields.push([id, b.readUInt16BE(p + 2)]);
        }
        templates.set(tid, fields);
      }
    } else {
      const t = templates.get(id);
      assert.ok(t, `a data set of template ${id} before its template`);
      const rlen = t.reduce((n, [, l]) => n + l, 0);
      let p = o + 4;
      // (no padding is written: the set is whole records)
      assert.equal((len - 4) % rlen, 0, `set ${id}: ${len - 4} bytes of ${rlen}-byte records`);
      while (p < o + len) {
        const r = new Map<number, Buffer>();
        for (const [fid, l] of t) { r.set(fid, b.subarray(p, p + l)); p += l; }
        set.records.push(r);
      }
    }
    m.sets.push(set);
    o += len;
  }
  return m;
}

const base: EndedFlow = {
  key: 1, start: 1_796_000_000_123_456, startErr: 0, end: 1_796_000_005_654_321, endErr: 0, activeEnd: null, family: 4, proto: 17,
  src: '10.0.0.5', sport: 40000, dst: '198.51.100.1', dport: 53, natSrc: null, natSport: null, natDst: null, natDport: null,
  origPackets: 3, origBytes: 6_000_000_000, replyPackets: 4_294_967_297, replyBytes: 120, state: null, mark: 0, zone: 0, status: 0,
  ctId: 9, flags: 0, ns: 0, netns: '', netnsInode: 0, corrects: false, report: 0, reported: 0,
};
const u = (b: Buffer | undefined) => (b!.length === 8 ? Number(b!.readBigUInt64BE(0)) : b!.length === 4 ? b!.readUInt32BE(0) : b!.length === 2 ? b!.readUInt16BE(0) : b!.readUInt8(0));
const ip = (b: Buffer | undefined) => (b!.length === 4 ? [...b!].join('.') : b!.toString('hex'));

/** a collector stand-in on the loopback: every datagram it receives */
async function receiver() {
  const rx = createSocket('udp4');
  const got: Buffer[] = [];
  rx.on('message', (b) => got.push(b));
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  return { rx, got };
}

describe('IPFIX encoding', () => {
  it('a flow record: times to the ms (start down, end up), both directions\' 64-bit counters, ports, addresses; NAT after translation', () => {
    const p = new IpfixPacker(1400, 'rfc8158');
    p.addTemplates(templateSet());
    p.addFlow(base);
    p.addFlow({ ...base, natSrc: '203.0.113.7', natSport: 1024, natDst: '192.168.1.9', natDport: 8053 });
    p.addFlow({ ...base, family: 6, src: 'fd00::5', dst: '2001:db8::1', natSrc: '2001:db8:1::1', natSport: 40000 });
    p.addFlow({ ...base, proto: 1, sport: 77, dport: 8 * 256, natSrc: '203.0.113.7', natSport: 78 });
    const templates = new Map<number, Array<[number, number]>>();
    const m = parse(p.finish(1_796_000_010, 5, 42), templates);
    assert.deepEqual([m.version, m.exportTime, m.seq, m.domain], [10, 1_796_000_010, 5, 42]);
    assert.deepEqual(m.sets.map((s) => s.id), [2, TEMPLATE_V4, TEMPLATE_V4_NAT, TEMPLATE_V6_NAT, TEMPLATE_V4_NAT]);
    const [plain] = m.sets[1].records;
    assert.equal(u(plain.get(IE.flowStartMilliseconds)), 1_796_000_000_123);
    assert.equal(u(plain.get(IE.flowEndMilliseconds)), 1_796_000_005_655);
    assert.equal(u(plain.get(IE.octetDeltaCount)), 6_000_000_000);
    assert.equal(u(plain.get(IE.packetDeltaCount)), 3);
    assert.equal(u(plain.get(REV + IE.octetDeltaCount)), 120);
    assert.equal(u(plain.get(REV + IE.packetDeltaCount)), 4_294_967_297);
    assert.deepEqual([u(plain.get(IE.protocolIdentifier)), u(plain.get(IE.sourceTransportPort)), u(plain.get(IE.destinationTransportPort))], [17, 40000, 53]);
    assert.deepEqual([ip(plain.get(IE.sourceIPv4Address)), ip(plain.get(IE.destinationIPv4Address))], ['10.0.0.5', '198.51.100.1']);
    assert.equal(plain.has(IE.postNATSourceIPv4Address), false);
    assert.equal(plain.has(IE.natEvent), false, 'no natEvent in a flow record (nfacctd would drop its counters)');
    const [nat] = m.sets[2].records;
    assert.deepEqual([ip(nat.get(IE.postNATSourceIPv4Address)), u(nat.get(IE.postNAPTSourceTransportPort)), ip(nat.get(IE.postNATDestinationIPv4Address)), u(nat.get(IE.postNAPTDestinationTransportPort))],
      ['203.0.113.7', 1024, '192.168.1.9', 8053]);
    const [six] = m.sets[3].records;
    assert.equal(ip(six.get(IE.sourceIPv6Address)), 'fd000000000000000000000000000005');
    assert.equal(ip(six.get(IE.postNATSourceIPv6Address)), '20010db8000100000000000000000001');
    // an untranslated side is as it was
    assert.equal(ip(six.get(IE.postNATDestinationIPv6Address)), '20010db8000000000000000000000001');
    const [icmp] = m.sets[4].records;
    assert.deepEqual([u(icmp.get(IE.sourceTransportPort)), u(icmp.get(IE.destinationTransportPort)), u(icmp.get(IE.icmpTypeCodeIPv4)), u(icmp.get(IE.postNAPTSourceTransportPort))], [77, 0, 0x0800, 78]);
  });

  it('NAT session events: RFC 8158 numbers or the historic ones, at the start (create) and the end (delete)', () => {
    for (const numbering of ['rfc8158', 'historic'] as const) {
      const p = new IpfixPacker(1400, numbering);
      p.addTemplates(Buffer.concat([templateSet(), eventTemplateSet()]));
      const r = { ...base, natSrc: '203.0.113.7', natSport: 1024 };
      p.addEvent(r, false);
      p.addEvent(r, true);
      p.addEvent({ ...r, family: 6, src: 'fd00::5', dst: '2001:db8::1', natSrc: '2001:db8:1::1' }, true);
      const m = parse(p.finish(1, 0, 1), new Map());
      const ev = m.sets.filter((s) => s.id !== 2).flatMap((s) => s.records);
      assert.deepEqual(ev.map((x) => u(x.get(IE.natEvent))), [NAT_EVENT[numbering].create4, NAT_EVENT[numbering].delete4, NAT_EVENT[numbering].delete6]);
      assert.deepEqual(ev.map((x) => u(x.get(IE.observationTimeMilliseconds))), [1_796_000_000_123, 1_796_000_005_655, 1_796_000_005_655]);
      assert.equal(m.sets.find((x) => x.id !== 2)!.id, TEMPLATE_EVENT_V4);
      assert.deepEqual([ip(ev[0].get(IE.postNATSourceIPv4Address)), u(ev[0].get(IE.postNAPTSourceTransportPort))], ['203.0.113.7', 1024]);
    }
  });

  it('flowEndReason: FIN/RST seen, expired, deleted', () => {
    // conntrack's TCP states: 3 ESTABLISHED, 4 FIN_WAIT, 5 CLOSE_WAIT, 6 LAST_ACK, 7 TIME_WAIT, 8 CLOSE, 9 SYN_SENT2
    for (const st of [4, 5, 6, 7, 8]) assert.equal(endReason({ proto: 6, state: st, flags: 0 }), 3, `state ${st}`);
    for (const st of [1, 2, 3, 9]) assert.equal(endReason({ proto: 6, state: st, flags: 0 }), 4, `state ${st}`);
    assert.equal(endReason({ proto: 6, state: 7, flags: FLAG_ACTIVE_ESTIMATED }), 3);
    assert.equal(endReason({ proto: 6, state: 3, flags: FLAG_ACTIVE_ESTIMATED }), 1);
    // interim reports of open flows: the timeout that sent them, whatever the state
    assert.equal(endReason({ proto: 6, state: 7, flags: 0, report: 2 }), 2);
    assert.equal(endReason({ proto: 17, state: null, flags: FLAG_ACTIVE_ESTIMATED, report: 1 }), 1);
    assert.equal(endReason({ proto: 17, state: null, flags: FLAG_ACTIVE_ESTIMATED }), 1);
    assert.equal(endReason({ proto: 17, state: null, flags: 0 }), 4);
    assert.equal(endReason({ proto: 17, state: null, flags: FLAG_END_ESTIMATED }), 4);
  });

  it('the sink: messages within max_message_size (576), sequence numbers counting the records before, templates first and on their timer; corrections not sent again', async () => {
    const { rx, got } = await receiver();
    let now = 1_796_000_000;
    try {
    const s = new IpfixSink({
      name: 'ipfix0', address: `udp://127.0.0.1:${rx.address().port}`, domain: 3, templateRefreshSecs: 60, maxMessageSize: 576,
      natEvents: true, natEventNumbers: 'rfc8158', queueSize: 100000, whenFull: 'block', warn: (m) => assert.fail(m), now: () => now,
    });
    const N = 500;
    for (let i = 0; i < N; i++) {
      const r = { ...base, sport: 1000 + i, natSrc: i % 3 === 0 ? '203.0.113.7' : null, natSport: i % 3 === 0 ? 2000 + i : null, family: (i % 5 === 0 ? 6 : 4) as 4 | 6 };
      if (r.family === 6) { r.src = 'fd00::5'; r.dst = '2001:db8::1'; if (r.natSrc) r.natSrc = '2001:db8:1::1'; }
      if (r.natSrc) s.push('', { ...r, end: null }, 'flow'); // its create
      s.push('', r, 'flow');
      if (i === 250) { s.flush(); now += 61; }
    }
    s.push('', { ...base, corrects: true }, 'flow');
    s.flush();
    await s.close();
    // every datagram read (on the loopback, in order): as many data records as the sink wrote
    const dataRecords = () => { const tm = new Map<number, Array<[number, number]>>(); return got.reduce((n, b) => n + parse(b, tm).sets.filter((x) => x.id !== 2).reduce((k, x) => k + x.records.length, 0), 0); };
    for (const end = Date.now() + 5000; dataRecords() < s.stats().written && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
    const st = s.stats();
    const nat = Math.ceil(N / 3);
    assert.equal(st.written, N + 2 * nat);
    assert.deepEqual([st.dropped, st.queued, st.errors, st.skipped], [0, 0, 0, 1]);
    const templates = new Map<number, Array<[number, number]>>();
    let seq = 0;
    let withTemplates = 0;
    const flows = new Set<number>();
    for (const b of got) {
      assert.ok(b.length <= 576, `a message of ${b.length} bytes`);
      const m = parse(b, templates);
      assert.equal(m.seq, seq, 'the records sent before');
      assert.equal(m.domain, 3);
      if (m.sets[0].id === 2) withTemplates++;
      const recs = m.sets.filter((x) => x.id !== 2).flatMap((x) => x.records);
      seq += recs.length;
      for (const r of recs) if (!r.has(IE.natEvent)) flows.add(u(r.get(IE.sourceTransportPort)));
    }
    assert.equal(seq, N + 2 * nat);
    assert.equal(flows.size, N);
    assert.equal(withTemplates, 2, 'the templates in the first message, and again once the refresh had passed');
    } finally {
      rx.close();
    }
  });
  it('a collector given by name is looked up once a minute, one lookup at a time; the last answer serves while it is asked again and after a failure', async () => {
    let asked = 0;
    let fail = false;
    let hold: Array<() => void> | undefined;
    const real: Lookup = (host, family, cb) => {
      asked++;
      const answer = () => (fail ? cb(Object.assign(new Error('EAI_AGAIN'), { code: 'EAI_AGAIN' }), '', 0) : cb(null, '127.0.0.1', 4));
      if (hold) hold.push(answer); else answer();
    };
    let now = 0;
    const l = cachedLookup(real, 60_000, () => now, 5_000);
    const ask = (host = 'collector.example') => new Promise<string>((r) => l(host, 4, (err, a) => r(err ? err.message : a)));
    // datagrams sent while the first lookup is under way wait for it: one lookup
    hold = [];
    const first = [ask(), ask(), ask()];
    assert.equal(asked, 1);
    for (const h of hold) h();
    hold = undefined;
    assert.deepEqual([...(await Promise.all(first)), asked], ['127.0.0.1', '127.0.0.1', '127.0.0.1', 1]);
    assert.deepEqual([await ask(), asked], ['127.0.0.1', 1]);
    // a minute on: the answer still serves while the next lookup fails; not asked again for 5 s
    now += 60_001;
    fail = true;
    assert.deepEqual([await ask(), await ask(), asked], ['127.0.0.1', '127.0.0.1', 2]);
    now += 5_001;
    fail = false;
    assert.deepEqual([await ask(), asked], ['127.0.0.1', 3]);
    assert.deepEqual([await ask(), asked], ['127.0.0.1', 3]);
    // a name never answered: the failure is the answer for 5 s, then it is asked again
    fail = true;
    assert.deepEqual([await ask('down.example'), await ask('down.example'), asked], ['EAI_AGAIN', 'EAI_AGAIN', 4]);
    now += 5_001;
    assert.deepEqual([await ask('down.example'), asked], ['EAI_AGAIN', 5]);
    // and the sink, to "localhost": every record arrives
    const { rx, got } = await receiver();
    try {
      const s = new IpfixSink({
        name: 'ipfix0', address: `udp://localhost:${rx.address().port}`, domain: 3, templateRefreshSecs: 60, maxMessageSize: 1400,
        natEvents: false, natEventNumbers: 'rfc8158', queueSize: 100000, whenFull: 'block', warn: (m) => assert.fail(m),
      });
      for (let i = 0; i < 200; i++) { s.push('', { ...base, sport: 1000 + i }, 'flow'); if (i % 20 === 19) s.flush(); }
      await s.close();
      assert.deepEqual([s.stats().written, s.stats().dropped], [200, 0]);
      const tm = new Map<number, Array<[number, number]>>();
      const records = () => got.reduce((n, b) => n + parse(b, tm).sets.filter((x) => x.id !== 2).reduce((k, x) => k + x.records.length, 0), 0);
      for (const end = Date.now() + 5000; records() < 200 && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
      assert.equal(records(), 200);
    } finally {
      rx.close();
    }
  });
  it('the sink counts in data records: when_full = "drop" drops what does not fit, and after close() nothing is sent', async () => {
    const rx = createSocket('udp4');
    await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
    try {
      const s = new IpfixSink({
        name: 'ipfix0', address: `udp://127.0.0.1:${rx.address().port}`, domain: 1, templateRefreshSecs: 60, maxMessageSize: 1400,
        natEvents: true, natEventNumbers: 'rfc8158', queueSize: 3, whenFull: 'drop', warn: () => {},
      });
      const nat = { ...base, natSrc: '203.0.113.7', natSport: 1024 };
      s.push('', nat, 'flow'); // 2 records: the flow and its delete
      s.push('', nat, 'flow'); // 2 more: the queue had 2 of 3, admitted
      s.push('', nat, 'flow'); // full: both dropped
      s.push('', { ...nat, end: null, flags: FLAG_START_UNKNOWN }, 'flow'); // no create for a flow whose start is unknown
      assert.deepEqual([s.stats().queued, s.stats().dropped], [4, 2]);
      s.flush();
      await s.close();
      s.push('', base, 'flow');
      const st = s.stats();
      assert.deepEqual([st.written, st.dropped, st.queued], [4, 3, 0]);
    } finally {
      rx.close();
    }
  });
  it('interim reports: one flow record each, no NAT event; an end after them with nothing since writes only its delete event', async () => {
    const { rx, got } = await receiver();
    try {
      const s = new IpfixSink({
        name: 'ipfix0', address: `udp://127.0.0.1:${rx.address().port}`, domain: 1, templateRefreshSecs: 60, maxMessageSize: 1400,
        natEvents: true, natEventNumbers: 'rfc8158', queueSize: 100, whenFull: 'block', warn: (m) => assert.fail(m),
      });
      const nat = { ...base, natSrc: '203.0.113.7', natSport: 1024 };
      s.push('', { ...nat, end: null }, 'flow'); // create
      s.push('', { ...nat, report: 2, origPackets: 2, replyPackets: 1 }, 'flow'); // interim: a flow record
      s.push('', { ...nat, report: 1, reported: 1, origPackets: 1, replyPackets: 0 }, 'flow'); // interim (idle)
      s.push('', { ...nat, reported: 2, origPackets: 0, origBytes: 0, replyPackets: 0, replyBytes: 0 }, 'flow'); // the end: its delete only
      s.push('', { ...base, reported: 1, origPackets: 0, replyPackets: 0 }, 'flow'); // untranslated, nothing since: nothing
      s.flush();
      await s.close();
      for (const end = Date.now() + 5000; !got.length && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
      const tm = new Map<number, Array<[number, number]>>();
      const recs = got.flatMap((b) => parse(b, tm).sets.filter((x) => x.id !== 2).flatMap((x) => x.records));
      const what = recs.map((r) => (r.has(IE.natEvent) ? `event ${u(r.get(IE.natEvent))}` : `flow ${u(r.get(IE.flowEndReason))} ${u(r.get(IE.packetDeltaCount))}`));
      assert.deepEqual(what, ['event 4', 'flow 2 2', 'flow 1 1', 'event 5']);
      assert.deepEqual([s.stats().written, s.stats().dropped], [4, 0]);
    } finally {
      rx.close();
    }
  });
  it('over TCP: each connection opens with the templates and counts from 0; a record is written when acknowledged; after a reset, the rest on a new connection', async () => {
    // a collector: the byte stream of each connection, cut into messages by their length
    const conns: Buffer[][] = [];
    let cut = false;
    const server = createServer((c) => {
      const msgs: Buffer[] = [];
      conns.push(msgs);
      let buf = Buffer.alloc(0);
      c.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 4 && buf.length >= buf.readUInt16BE(2)) { msgs.push(buf.subarray(0, buf.readUInt16BE(2))); buf = buf.subarray(buf.readUInt16BE(2)); }
        // the first connection is reset once it has had some records
        if (!cut && msgs.length >= 3) { cut = true; c.resetAndDestroy(); }
      });
      c.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const warnings: string[] = [];
    try {
      const s = new IpfixSink({
        name: 'ipfix0', address: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`, domain: 7, templateRefreshSecs: 60, maxMessageSize: 576,
        natEvents: false, natEventNumbers: 'rfc8158', queueSize: 100000, whenFull: 'block', warn: (m) => warnings.push(m),
      });
      const N = 400;
      for (let i = 0; i < N; i++) {
        s.push('', { ...base, sport: 1000 + i }, 'flow');
        if (i % 50 === 49) { s.flush(); await new Promise((r) => setTimeout(r, 20)); }
      }
      s.flush();
      for (const end = Date.now() + 10_000; s.stats().written < N && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
      await s.close();
      const st = s.stats();
      assert.deepEqual([st.written, st.dropped, st.queued], [N, 0, 0], JSON.stringify(st));
      assert.ok(conns.length >= 2, 'a second connection after the reset');
      // (on the loopback the kernel acknowledges at once: what the reset connection had is acknowledged, none need go again)
      assert.ok(conns[1].length > 1, 'records on the second connection');
      const seen = new Set<number>();
      for (const msgs of conns) {
        const tm = new Map<number, Array<[number, number]>>();
        // the templates alone first, sequence 0; then each message's sequence is the records before it on this connection
        const first = parse(msgs[0], tm);
        assert.deepEqual([first.seq, first.domain, first.sets.map((x) => x.id)], [0, 7, [2]]);
        let seq = 0;
        for (const b of msgs.slice(1)) {
          const m = parse(b, tm);
          assert.equal(m.seq, seq);
          assert.ok(!m.sets.some((x) => x.id === 2), 'no templates again on a connection');
          for (const r of m.sets.flatMap((x) => x.records)) { seen.add(u(r.get(IE.sourceTransportPort))); seq++; }
        }
      }
      // at least once: every record reached the collector
      assert.equal(seen.size, N);
      assert.deepEqual(warnings.filter((w) => !/ECONNRESET|closed the connection/.test(w)), [], warnings.join('\n'));
    } finally {
      server.close();
    }
  });
});
