// The flow table over events captured from the real kernel: one record per
// flow, the NAT translation, partial flows, settling after a lost DESTROY
// (after a grace, corrected if the DESTROY comes later), ids shared by
// flows open at once, and when each flow stopped being active.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFixture } from '../helpers/fixtures.js';
import { FlowTable, type FlowOutput, type SettledRef, type SettleTimes } from '../../src/pipeline/flow-table.js';
import {
  FLAG_ACTIVE_ESTIMATED, FLAG_END_ESTIMATED, FLAG_NO_NEW, FLAG_START_UNKNOWN, UNBOUNDED, natKind, type FlowRecord,
} from '../../src/records/flow.js';
import { Timeouts, TIMEOUT_SYSCTLS } from '../../src/pipeline/timeouts.js';
import type { FlowEvent } from '../../src/records/event.js';
import { IPS_ASSURED } from '../../src/records/values.js';

interface Collector extends FlowOutput {
  opened_: FlowRecord[]; closed_: FlowRecord[]; settled_: Array<{ key: number; t: SettleTimes; flags: number }>;
  activity_: Array<{ key: number; at: number }>; corrected_: Array<{ ref: SettledRef; rec: FlowRecord }>;
}

function collector(): Collector {
  let k = 1;
  const o: Collector = {
    opened_: [], closed_: [], settled_: [], activity_: [], corrected_: [],
    newKey: () => k++,
    opened(r) { o.opened_.push(r); },
    activity(key, at) { o.activity_.push({ key, at }); },
    closed(r) { o.closed_.push(r); },
    settled(key, t, flags) { o.settled_.push({ key, t, flags }); },
    corrected(ref, rec) { o.corrected_.push({ ref, rec }); },
  };
  return o;
}

/** A clock the test moves (µs). */
function clock(t = 1_800_000_000_000_000) {
  const c = { t, now: () => c.t };
  return c;
}

const us = (ns: bigint | undefined) => Number(ns! / 1000n);
const S_ = 1_000_000;
const sysctls = (over: Record<string, string>) => TIMEOUT_SYSCTLS.map((n) => over[n.slice('net.netfilter.nf_conntrack_'.length)] ?? '60');

describe('flow table', () => {
  it('emits one record per flow, NEW to DESTROY, with the masquerade made explicit (kernel fixture)', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const out = collector();
    const t = new FlowTable({ ns: 0, out });
    for (const ev of evs) t.handle(ev);
    const ids = new Set(evs.filter((e) => e.type === 'DESTROY').map((e) => e.id));
    assert.equal(out.closed_.length, ids.size);
    assert.ok(out.closed_.length > 0);
    for (const r of out.closed_) {
      const destroy = evs.find((e) => e.type === 'DESTROY' && e.id === r.ctId)!;
      const isNew = evs.some((e) => e.type === 'NEW' && e.id === r.ctId);
      assert.equal(r.flags & FLAG_NO_NEW, isNew ? 0 : FLAG_NO_NEW);
      // kernel timestamps (µs): start and end from the DESTROY's CTA_TIMESTAMP
      assert.equal(r.start, us(destroy.start));
      assert.equal(r.end, Number((destroy.stop! + 999n) / 1000n));
      assert.equal(r.startErr, 0);
      assert.equal(r.endErr, 0);
      assert.ok(r.activeEnd! >= r.start && r.activeEnd! <= r.end!);
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
    // every open flow got its own key, and a closed flow keeps the key it was opened with
    assert.equal(new Set(out.opened_.map((r) => r.key)).size, out.opened_.length);
    for (const r of out.closed_.filter((x) => !(x.flags & FLAG_NO_NEW))) assert.ok(out.opened_.some((o) => o.key === r.key && o.ctId === r.ctId));
  });

  it('keeps the last TCP state and the status bits from before the DESTROY', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const out = collector();
    const t = new FlowTable({ ns: 0, out });
    for (const ev of evs) t.handle(ev);
    const tcp = out.closed_.filter((r) => r.proto === 6 && !(r.flags & FLAG_NO_NEW));
    assert.ok(tcp.length > 0);
    for (const r of tcp) {
      const d = evs.find((e) => e.id === r.ctId && e.type === 'DESTROY')!;
      const last = evs.filter((e) => e.id === r.ctId && e.type !== 'DESTROY' && e.tcpState !== undefined).pop();
      assert.equal(r.state, d.tcpState ?? last?.tcpState ?? null);
    }
  });

  it('a TCP flow stops being active when both sides have finished (LAST_ACK / TIME_WAIT / CLOSE), told by its UPDATE', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const out = collector();
    const t = new FlowTable({ ns: 0, out });
    for (const ev of evs) t.handle(ev);
    const tcp = out.closed_.filter((r) => r.proto === 6 && !(r.flags & FLAG_NO_NEW));
    for (const r of tcp) {
      const fin = evs.find((e) => e.id === r.ctId && e.type === 'UPDATE' && e.tcpState !== undefined && e.tcpState >= 6 && e.tcpState <= 8);
      if (!fin) continue;
      const at = fin.eventTime !== undefined ? us(fin.eventTime) : fin.recvTime;
      assert.equal(r.activeEnd, at, `flow ${r.ctId}`);
      assert.equal(r.flags & FLAG_ACTIVE_ESTIMATED, 0);
      assert.ok(r.activeEnd! < r.end!, 'it lingered in TIME_WAIT after');
    }
    assert.ok(tcp.some((r) => r.activeEnd! < r.end!));
  });

  it('tells the store when an open flow stops being active, and the opening record has it when it finished before', () => {
    const news = decodeFixture('ipv4-masq-acct-ts').filter((e) => e.type === 'NEW' && e.proto === 6);
    const out = collector();
    const t = new FlowTable({ ns: 0, out });
    t.handle(news[0]);
    t.handle({ ...news[0], type: 'UPDATE', tcpState: 3, recvTime: news[0].recvTime + 10, eventTime: undefined });
    assert.equal(out.activity_.length, 0);
    t.handle({ ...news[0], type: 'UPDATE', tcpState: 6, recvTime: news[0].recvTime + 500, eventTime: undefined });
    t.handle({ ...news[0], type: 'UPDATE', tcpState: 7, recvTime: news[0].recvTime + 600, eventTime: undefined });
    assert.deepEqual(out.activity_, [{ key: out.opened_[0].key, at: news[0].recvTime + 500 }]);
    // first seen already finished (a dump after an overrun): the open record says so
    t.handle({ ...news[0], id: 987654, type: 'DUMP', tcpState: 7, start: undefined, eventTime: undefined, recvTime: 5000 });
    assert.equal(out.opened_[1].activeEnd, 5000);
  });

  it('an expired UDP flow was active until its end less the timeout that ran (plus a tick); a deleted one to its end', () => {
    const c = clock();
    const out = collector();
    const t = new FlowTable({ ns: 0, out, now: c.now, jiffyUs: 4000, timeouts: new Timeouts(sysctls({ udp_timeout: '30', udp_timeout_stream: '120' })) });
    const base = decodeFixture('ipv4-masq-acct-ts').find((e) => e.type === 'NEW' && e.proto === 17)!;
    const s0 = 1_800_000_000_000_000_000n; // ns
    const mk = (id: number, o: Partial<FlowEvent>): FlowEvent => ({ ...base, id, orig: { ...base.orig, sport: 1000 + id }, start: s0, eventTime: undefined, ...o });
    // unreplied: udp_timeout (30 s)
    t.handle(mk(1, { type: 'NEW', recvTime: Number(s0 / 1000n), timeout: 30, status: 8 }));
    t.handle(mk(1, { type: 'DESTROY', stop: s0 + 40_000_000_000n, status: 8, portid: 0 }));
    // assured: udp_timeout_stream (120 s)
    t.handle(mk(2, { type: 'NEW', recvTime: Number(s0 / 1000n), timeout: 30, status: 8 }));
    t.handle(mk(2, { type: 'UPDATE', recvTime: Number(s0 / 1000n) + 3_000_000, timeout: 120, status: 8 | 2 | IPS_ASSURED }));
    t.handle(mk(2, { type: 'DESTROY', stop: s0 + 200_000_000_000n, status: 8 | 2 | IPS_ASSURED, portid: 0 }));
    // deleted by conntrack -D (portid of a program): active to its end
    t.handle(mk(3, { type: 'NEW', recvTime: Number(s0 / 1000n), timeout: 30, status: 8 }));
    t.handle(mk(3, { type: 'DESTROY', stop: s0 + 5_000_000_000n, status: 8, portid: 4242 }));
    // destroyed sooner than its timeout could have run out: evicted early, active to its end
    t.handle(mk(4, { type: 'NEW', recvTime: Number(s0 / 1000n), timeout: 30, status: 8 }));
    t.handle(mk(4, { type: 'DESTROY', stop: s0 + 10_000_000_000n, status: 8, portid: 0 }));
    const by = (id: number) => out.closed_.find((r) => r.ctId === id)!;
    const start = Number(s0 / 1000n);
    assert.equal(by(1).activeEnd, start + 40_000_000 - 30_000_000 + 4000);
    assert.ok(by(1).flags & FLAG_ACTIVE_ESTIMATED);
    assert.equal(by(2).activeEnd, start + 200_000_000 - 120_000_000 + 4000);
    assert.equal(by(3).activeEnd, by(3).end);
    assert.equal(by(3).flags & FLAG_ACTIVE_ESTIMATED, 0);
    assert.equal(by(4).activeEnd, by(4).end);
  });

  it('a shorter timeout in effect (a ct timeout policy) is taken from the events', () => {
    const out = collector();
    const t = new FlowTable({ ns: 0, out, jiffyUs: 4000, timeouts: new Timeouts(sysctls({ udp_timeout: '30' })) });
    const base = decodeFixture('ipv4-masq-acct-ts').find((e) => e.type === 'NEW' && e.proto === 17)!;
    const s0 = 1_800_000_000_000_000_000n;
    t.handle({ ...base, id: 9, start: s0, eventTime: undefined, recvTime: Number(s0 / 1000n), timeout: 5, status: 8 });
    t.handle({ ...base, id: 9, type: 'DESTROY', start: s0, stop: s0 + 7_000_000_000n, status: 8, portid: 0 });
    assert.equal(out.closed_[0].activeEnd, Number(s0 / 1000n) + 7_000_000 - 5_000_000 + 4000);
  });

  it('DNAT and SNAT on one flow: both translations (kernel fixture)', () => {
    const out = collector();
    const t = new FlowTable({ ns: 0, out });
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

  it('a DESTROY without its NEW is a partial record; without a kernel timestamp its start is unknown, bounded by the last gap', () => {
    const evs = decodeFixture('ipv4-no-acct-no-ts').filter((e) => e.type === 'DESTROY');
    assert.ok(evs.length > 0);
    const out = collector();
    const t = new FlowTable({ ns: 3, out });
    for (const ev of evs) t.handle(ev);
    assert.equal(out.closed_.length, evs.length);
    for (const r of out.closed_) {
      assert.equal(r.flags & (FLAG_NO_NEW | FLAG_START_UNKNOWN), FLAG_NO_NEW | FLAG_START_UNKNOWN);
      assert.equal(r.start, r.end);
      assert.equal(r.startErr, UNBOUNDED, 'no earlier knowledge: it may have begun at any time');
      assert.equal(r.ns, 3);
    }
    assert.equal(t.stats().partial, evs.length);
    const out2 = collector();
    const t2 = new FlowTable({ ns: 3, out: out2 });
    t2.gapFrom = evs[0].recvTime - 2_000_000;
    t2.handle(evs[0]);
    assert.equal(out2.closed_[0].startErr, 2_000_000);
    // a source that does not read NEW events knows no such bound
    const out3 = collector();
    const t3 = new FlowTable({ ns: 3, out: out3, seesNew: false });
    t3.gapFrom = evs[0].recvTime - 2_000_000;
    t3.handle(evs[0]);
    assert.equal(out3.closed_[0].startErr, UNBOUNDED);
  });

  it('a dump settles the flows it no longer has only after a grace (a DESTROY on its way completes them), and knows the ones it did not', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const news = evs.filter((e) => e.type === 'NEW');
    const c = clock();
    const out = collector();
    const t = new FlowTable({ ns: 0, out, now: c.now, graceUs: 2_000_000 });
    for (const ev of news) t.handle(ev);
    assert.equal(t.size, news.length);
    // the dump has only the first flow, and one unknown flow
    const keep: FlowEvent = { ...news[0], type: 'DUMP' };
    const unknown: FlowEvent = { ...news[1], id: 4242, type: 'DUMP', start: undefined };
    t.beginSync();
    t.handle(keep);
    t.handle(unknown);
    const lossFrom = c.t - 500_000;
    const missing = t.endSync(c.t, lossFrom);
    assert.equal(missing, news.length - 1);
    assert.equal(t.stats().missing, news.length - 1);
    // the DESTROY of one of them arrives within the grace: a normal record
    const late = evs.find((e) => e.type === 'DESTROY' && e.id === news[1].id)!;
    t.handle(late);
    assert.equal(out.closed_.filter((r) => r.ctId === news[1].id).length, 1);
    assert.equal(t.sweep(), 0, 'not yet');
    c.t += 2_000_001;
    assert.equal(t.sweep(), news.length - 2);
    assert.equal(out.settled_.length, news.length - 2);
    for (const s of out.settled_) {
      assert.ok(s.flags & FLAG_END_ESTIMATED);
      assert.equal(s.t.end, c.t - 2_000_001);
      // no timeouts known: an expired entry reports only when it is reaped, so
      // it may have ended any time after it was last seen
      const seen = news.find((e) => out.opened_.find((r) => r.key === s.key)?.ctId === e.id)!;
      assert.equal(s.t.end - s.t.endErr, seen.eventTime !== undefined ? Number(seen.eventTime / 1000n) : seen.recvTime, JSON.stringify(s));
    }
    assert.equal(t.size, 2);
    const adopted = out.opened_.find((r) => r.ctId === 4242)!;
    assert.equal(adopted.flags, FLAG_NO_NEW | FLAG_START_UNKNOWN);
  });

  it('a flow a dump misses after a loss ended after the loss began, or after its timeout could have run out, whichever is earlier', () => {
    const base = decodeFixture('ipv4-masq-acct-ts').find((e) => e.type === 'NEW' && e.proto === 17)!;
    const c = clock();
    const out = collector();
    const t = new FlowTable({ ns: 0, out, now: c.now, graceUs: 0, jiffyUs: 4000, timeouts: new Timeouts(sysctls({ udp_timeout: '30' })) });
    const at = c.t - 100 * S_;
    t.handle({ ...base, id: 1, eventTime: BigInt(at) * 1000n, recvTime: at + 5000, status: 8 }); // 30 s timeout: could have expired 70 s ago
    t.handle({ ...base, id: 2, orig: { ...base.orig, sport: 2 }, eventTime: BigInt(c.t - 10 * S_) * 1000n, recvTime: c.t, status: 8 }); // could not have
    t.beginSync();
    const lossFrom = c.t - 2 * S_;
    t.endSync(c.t, lossFrom);
    c.t += 1;
    t.sweep();
    const by = (id: number) => out.settled_.find((x) => x.key === out.opened_.find((r) => r.ctId === id)!.key)!;
    assert.equal(by(1).t.end - by(1).t.endErr, at + 30 * S_ - 4000, 'expired (reaped late): from its timeout on');
    assert.equal(by(2).t.end - by(2).t.endErr, lossFrom, 'deleted meanwhile: from the loss on');
  });

  it('a DESTROY that comes after its flow was settled corrects that row instead of adding a second one', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const news = evs.filter((e) => e.type === 'NEW');
    const c = clock();
    const out = collector();
    const t = new FlowTable({ ns: 5, out, now: c.now, graceUs: 1000 });
    for (const ev of news) t.handle(ev);
    t.beginSync();
    t.endSync(c.t);
    c.t += 2000;
    t.sweep();
    assert.equal(out.settled_.length, news.length);
    const d = evs.find((e) => e.type === 'DESTROY' && news.some((n) => n.id === e.id))!;
    t.handle(d);
    assert.equal(out.closed_.length, 0, 'no second record');
    assert.equal(out.corrected_.length, 1);
    const { ref, rec } = out.corrected_[0];
    const opened = out.opened_.find((r) => r.ctId === d.id)!;
    assert.equal(ref.key, opened.key);
    assert.equal(ref.start, opened.start);
    assert.equal(ref.ns, 5);
    assert.equal(rec.flags & FLAG_END_ESTIMATED, 0);
    assert.equal(rec.end, Number((d.stop! + 999n) / 1000n));
    assert.equal(t.stats().corrected, 1);
    // the same DESTROY again: now a partial record (it is no longer remembered)
    t.handle(d);
    assert.equal(out.closed_.length, 1);
  });

  it('two flows open at once under the same conntrack id are two flows (the tuple is part of identity)', () => {
    const news = decodeFixture('ipv4-masq-acct-ts').filter((e) => e.type === 'NEW' && e.proto === 6);
    const out = collector();
    const t = new FlowTable({ ns: 0, out });
    const a = news[0];
    const b: FlowEvent = { ...a, orig: { ...a.orig, src: '10.99.1.77', sport: (a.orig.sport! + 1) % 65536 } };
    t.handle(a);
    t.handle(b);
    assert.equal(t.size, 2);
    assert.equal(out.settled_.length, 0);
    assert.notEqual(out.opened_[0].key, out.opened_[1].key);
    t.handle({ ...b, type: 'DESTROY', start: undefined });
    t.handle({ ...a, type: 'DESTROY', start: undefined });
    assert.deepEqual(out.closed_.map((r) => r.src), ['10.99.1.77', a.orig.src]);
    assert.deepEqual(out.closed_.map((r) => r.key), [out.opened_[1].key, out.opened_[0].key]);
    assert.equal(out.closed_.filter((r) => r.flags & FLAG_NO_NEW).length, 0);
    assert.equal(t.size, 0);
  });

  it('adopts the open flows an earlier run left in the store: their DESTROY completes them (ICMP too); other namespaces\' rows are not its own', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const out = collector();
    const t = new FlowTable({ ns: 2, out });
    const destroys = evs.filter((e) => e.type === 'DESTROY' && (e.proto === 1 || e.proto === 6));
    assert.ok(destroys.some((e) => e.proto === 1) && destroys.some((e) => e.proto === 6));
    let k = 100;
    for (const d of destroys) {
      const icmp = d.proto === 1;
      t.adopt({
        key: k++, start: 1000, startErr: 0, flags: 0, activeEnd: null, status: 0, proto: d.proto, src: d.orig.src, dst: d.orig.dst,
        sport: icmp ? d.orig.icmpId! : d.orig.sport!, dport: icmp ? d.orig.icmpType! * 256 + d.orig.icmpCode! : d.orig.dport!,
        zone: d.zone ?? 0, ctId: d.id!, ns: 2,
      });
    }
    t.adopt({ key: 99, start: 1000, startErr: 0, flags: 0, activeEnd: null, status: 0, proto: 6, src: '1.1.1.1', dst: '2.2.2.2', sport: 1, dport: 2, zone: 0, ctId: 77, ns: 1 });
    assert.equal(t.size, destroys.length);
    for (const d of destroys) t.handle({ ...d, start: undefined });
    assert.equal(out.closed_.length, destroys.length);
    for (const r of out.closed_) {
      assert.equal(r.flags & ~FLAG_ACTIVE_ESTIMATED, 0);
      assert.equal(r.start, 1000);
      assert.ok(r.key >= 100);
    }
    assert.equal(t.size, 0);
  });

  it('holds a million open flows in well under 500 MiB', () => {
    const ev = decodeFixture('ipv4-masq-acct-ts').find((e) => e.type === 'NEW')!;
    let opened = 0;
    let key = 0;
    const t = new FlowTable({
      ns: 0,
      out: { newKey: () => ++key, opened: () => { opened++; }, activity: () => undefined, closed: () => undefined, settled: () => undefined, corrected: () => undefined },
    });
    (globalThis as { gc?: () => void }).gc?.();
    const before = process.memoryUsage();
    const e: FlowEvent = { ...ev };
    for (let i = 1; i <= 1_000_000; i++) { e.id = i; t.handle(e); }
    const after = process.memoryUsage();
    assert.equal(t.size, 1_000_000);
    assert.equal(opened, 1_000_000);
    const grown = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / 1048576;
    assert.ok(grown < 300, `${grown.toFixed(0)} MiB for 1M open flows`);
    console.log(`# 1M open flows: ${grown.toFixed(0)} MiB`);
  });
});

describe('flow table: a namespace no longer followed', () => {
  it('endAll ends every open flow, end-estimated between last seen and the detach', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts').filter((e) => e.type === 'NEW');
    assert.ok(evs.length >= 2);
    const out = collector();
    const t = new FlowTable({ ns: 0, out });
    for (const ev of evs) t.handle(ev);
    const at = Math.max(...out.opened_.map((r) => r.start)) + 5 * S_;
    assert.equal(t.endAll(at), evs.length);
    assert.equal(t.size, 0);
    assert.deepEqual(out.settled_.map((s) => s.key).sort(), out.opened_.map((r) => r.key).sort());
    for (const s of out.settled_) {
      const r = out.opened_.find((o) => o.key === s.key)!;
      assert.equal(s.t.end, at);
      assert.ok(s.flags & FLAG_END_ESTIMATED);
      // from when it was last seen (its NEW) to the detach
      assert.equal(s.t.endErr, at - r.start);
    }
    assert.equal(t.endAll(at + 1), 0, 'nothing left');
  });
});
