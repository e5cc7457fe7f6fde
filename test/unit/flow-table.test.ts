// The flow table over events captured from the real kernel: one record per
// flow, the NAT translation, partial flows, settling after a lost DESTROY.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFixture } from '../helpers/fixtures.js';
import { FlowTable, flowKey, type FlowOutput } from '../../src/flow/table.js';
import { FLAG_END_ESTIMATED, FLAG_NO_NEW, FLAG_START_UNKNOWN, natKind, type FlowRecord } from '../../src/flow/record.js';
import type { FlowEvent } from '../../src/conntrack/record.js';

function collector(): FlowOutput & { opened_: FlowRecord[]; closed_: FlowRecord[]; settled_: Array<{ key: number; end: number; flags: number }> } {
  const o = {
    opened_: [] as FlowRecord[], closed_: [] as FlowRecord[], settled_: [] as Array<{ key: number; end: number; flags: number }>,
    opened(r: FlowRecord) { o.opened_.push(r); },
    closed(r: FlowRecord) { o.closed_.push(r); },
    settled(key: number, end: number, flags: number) { o.settled_.push({ key, end, flags }); },
  };
  return o;
}

describe('flow table', () => {
  it('emits one record per flow, NEW to DESTROY, with the masquerade made explicit (kernel fixture)', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const out = collector();
    const t = new FlowTable(0, out);
    for (const ev of evs) t.handle(ev);
    const ids = new Set(evs.filter((e) => e.type === 'DESTROY').map((e) => e.id));
    assert.equal(out.closed_.length, ids.size);
    assert.ok(out.closed_.length > 0);
    for (const r of out.closed_) {
      const destroy = evs.find((e) => e.type === 'DESTROY' && e.id === r.ctId)!;
      const isNew = evs.some((e) => e.type === 'NEW' && e.id === r.ctId);
      assert.equal(r.flags & FLAG_NO_NEW, isNew ? 0 : FLAG_NO_NEW);
      // kernel timestamps: start and end from the DESTROY's CTA_TIMESTAMP
      assert.equal(r.start, Number(destroy.start! / 1000000n));
      assert.equal(r.end, Number(destroy.stop! / 1000000n));
      assert.equal(r.src, destroy.orig.src);
      if (destroy.reply.dst !== destroy.orig.src) {
        assert.equal(natKind(r), 'snat');
        assert.equal(r.natSrc, destroy.reply.dst);
        assert.equal(r.natSport, destroy.proto === 1 ? destroy.reply.icmpId : destroy.reply.dport);
      }
      assert.equal(r.origBytes, destroy.origBytes);
      assert.equal(r.replyPackets, destroy.replyPackets);
    }
    assert.equal(t.size, evs.filter((e) => e.type === 'NEW').length - out.closed_.filter((r) => !(r.flags & FLAG_NO_NEW)).length);
  });

  it('keeps the last TCP state and the status bits from before the DESTROY', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const out = collector();
    const t = new FlowTable(0, out);
    for (const ev of evs) t.handle(ev);
    const tcp = out.closed_.filter((r) => r.proto === 6 && !(r.flags & FLAG_NO_NEW));
    assert.ok(tcp.length > 0);
    for (const r of tcp) {
      const last = evs.filter((e) => e.id === r.ctId && e.type !== 'DESTROY' && e.tcpState !== undefined).pop();
      assert.equal(r.state, last?.tcpState ?? null);
    }
  });

  it('DNAT and SNAT on one flow: both translations (kernel fixture)', () => {
    const out = collector();
    const t = new FlowTable(0, out);
    const evs = decodeFixture('snat-dnat');
    for (const ev of evs) t.handle(ev);
    const kinds = new Set([...out.opened_, ...out.closed_].map(natKind));
    assert.ok(kinds.has('dnat') || kinds.has('both'), [...kinds].join());
    for (const r of [...out.opened_, ...out.closed_]) {
      const ev = evs.find((e) => e.id === r.ctId)!;
      if (natKind(r) === 'dnat' || natKind(r) === 'both') {
        assert.equal(r.natDst, ev.reply.src);
        assert.equal(r.dst, ev.orig.dst);
      }
    }
  });

  it('a DESTROY without its NEW is a partial record; without a kernel timestamp the start is unknown', () => {
    const evs = decodeFixture('ipv4-no-acct-no-ts').filter((e) => e.type === 'DESTROY');
    assert.ok(evs.length > 0);
    const out = collector();
    const t = new FlowTable(3, out);
    for (const ev of evs) t.handle(ev);
    assert.equal(out.closed_.length, evs.length);
    for (const r of out.closed_) {
      assert.equal(r.flags, FLAG_NO_NEW | FLAG_START_UNKNOWN);
      assert.equal(r.start, r.end);
      assert.equal(r.ns, 3);
      assert.equal(r.key, flowKey(3, r.zone, r.ctId));
    }
    assert.equal(t.stats().partial, evs.length);
  });

  it('a table dump settles flows it no longer has (their DESTROY was lost) and adopts ones it did not know', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const news = evs.filter((e) => e.type === 'NEW');
    const out = collector();
    const t = new FlowTable(0, out);
    for (const ev of news) t.handle(ev);
    assert.equal(t.size, news.length);
    // the dump has only the first flow, and one unknown flow
    const keep: FlowEvent = { ...news[0], type: 'DUMP' };
    const unknown: FlowEvent = { ...news[1], id: 4242, type: 'DUMP', start: undefined };
    t.beginSync();
    t.handle(keep);
    t.handle(unknown);
    const n = t.endSync(1234);
    assert.equal(n, news.length - 1);
    assert.equal(out.settled_.length, news.length - 1);
    for (const s of out.settled_) {
      assert.equal(s.end, 1234);
      assert.ok(s.flags & FLAG_END_ESTIMATED);
    }
    assert.equal(t.size, 2);
    const adopted = out.opened_.find((r) => r.ctId === 4242)!;
    assert.equal(adopted.flags, FLAG_NO_NEW | FLAG_START_UNKNOWN);
  });

  it('adopts the open flows an earlier run left in the store: their DESTROY completes them (ICMP too); other sources\' rows are not its own', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const out = collector();
    const t = new FlowTable(2, out);
    const destroys = evs.filter((e) => e.type === 'DESTROY' && (e.proto === 1 || e.proto === 6));
    assert.ok(destroys.some((e) => e.proto === 1) && destroys.some((e) => e.proto === 6));
    for (const d of destroys) {
      const icmp = d.proto === 1;
      t.adopt({ key: flowKey(2, d.zone ?? 0, d.id!), start: 1000, flags: 0, proto: d.proto,
        sport: icmp ? d.orig.icmpId! : d.orig.sport!, dport: icmp ? d.orig.icmpType! * 256 + d.orig.icmpCode! : d.orig.dport! });
    }
    t.adopt({ key: flowKey(1, 0, 77), start: 1000, flags: 0, proto: 6, sport: 1, dport: 2 });
    assert.equal(t.size, destroys.length);
    for (const d of destroys) t.handle({ ...d, start: undefined });
    assert.equal(out.settled_.length, 0, 'no fingerprint mismatch');
    assert.equal(out.closed_.length, destroys.length);
    for (const r of out.closed_) {
      assert.equal(r.flags, 0);
      assert.equal(r.start, 1000);
    }
    assert.equal(t.size, 0);
  });

  it('an id reused by another connection ends the old flow first', () => {
    const news = decodeFixture('ipv4-masq-acct-ts').filter((e) => e.type === 'NEW' && e.proto === 6);
    const out = collector();
    const t = new FlowTable(0, out);
    t.handle(news[0]);
    t.handle({ ...news[0], orig: { ...news[0].orig, sport: (news[0].orig.sport! + 1) % 65536 } });
    assert.equal(out.settled_.length, 1);
    assert.equal(t.size, 1);
  });

  it('holds a million open flows in well under 500 MiB', () => {
    const ev = decodeFixture('ipv4-masq-acct-ts').find((e) => e.type === 'NEW')!;
    let opened = 0;
    const t = new FlowTable(0, { opened: () => { opened++; }, closed: () => undefined, settled: () => undefined });
    (globalThis as { gc?: () => void }).gc?.();
    const before = process.memoryUsage();
    const e: FlowEvent = { ...ev };
    for (let i = 1; i <= 1_000_000; i++) { e.id = i; t.handle(e); }
    const after = process.memoryUsage();
    assert.equal(t.size, 1_000_000);
    assert.equal(opened, 1_000_000);
    const grown = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / 1048576;
    assert.ok(grown < 200, `${grown.toFixed(0)} MiB for 1M open flows`);
    console.log(`# 1M open flows: ${grown.toFixed(0)} MiB`);
  });
});
