// Flow records to the sinks that take them (records = "flows"): every flow
// a table ends reaches them once, whole (a settled flow from the record kept
// while it was open), with its namespace; the store gets exactly what it
// got before; nothing is kept without such a sink.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFixture } from '../helpers/fixtures.js';
import { FlowTable, type FlowOutput } from '../../src/pipeline/flow-table.js';
import { FlowFanout } from '../../src/pipeline/flow-fanout.js';
import { FLAG_END_ESTIMATED, type EndedFlow } from '../../src/records/flow.js';
import { flowJournalFields, flowJsonLine, flowJsonLineReference, makeFlowFormatter } from '../../src/formats/flow.js';
import { UNBOUNDED } from '../../src/records/flow.js';
import { emptyEvent, type FlowEvent } from '../../src/records/event.js';

function recorder() {
  const calls: string[] = [];
  let k = 100;
  const out: FlowOutput = {
    newKey: () => k++,
    opened: (r) => { calls.push(`opened ${r.key}`); },
    activity: (key) => { calls.push(`activity ${key}`); },
    closed: (r) => { calls.push(`closed ${r.key}`); },
    settled: (key) => { calls.push(`settled ${key}`); },
    corrected: (ref) => { calls.push(`corrected ${ref.key}`); },
  };
  return { out, calls };
}

describe('flow fanout', () => {
  it('sends each closed flow once, with its namespace, and passes everything on to the store unchanged', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const store = recorder();
    const plain = recorder();
    const fan = new FlowFanout({ store: store.out, netns: 'qrouter-1', netnsInode: 4026532999, nextKey: () => { throw new Error('the store gives the keys'); } });
    const got: EndedFlow[] = [];
    fan.routes = [(f) => got.push(f)];
    const t = new FlowTable({ ns: 3, out: fan });
    const ref = new FlowTable({ ns: 3, out: plain.out });
    for (const ev of evs) { t.handle(ev); ref.handle(ev); }
    // the store saw what a table without the fanout tells it, key for key
    assert.deepEqual(store.calls, plain.calls);
    const destroyed = new Set(evs.filter((e) => e.type === 'DESTROY').map((e) => e.id));
    assert.equal(got.length, destroyed.size);
    assert.ok(got.length > 0);
    for (const f of got) {
      assert.equal(f.netns, 'qrouter-1');
      assert.equal(f.netnsInode, 4026532999);
      assert.equal(f.corrects, false);
      assert.notEqual(f.end, null);
      assert.ok(destroyed.has(f.ctId));
    }
    assert.equal(fan.sent, got.length);
    // the flows still open are kept (for a settle), the closed ones not
    assert.equal(fan.kept, t.size);
  });

  it('a flow a dump no longer has is sent whole when it is settled; its late DESTROY is sent as a correction', () => {
    const evs = decodeFixture('ipv4-masq-acct-ts');
    const news = evs.filter((e) => e.type === 'NEW');
    let now = 1_800_000_000_000_000;
    let key = 1;
    const fan = new FlowFanout({ store: undefined, netns: '', netnsInode: 0, nextKey: () => key++ });
    const got: EndedFlow[] = [];
    fan.routes = [(f) => got.push(f)];
    const t = new FlowTable({ ns: 0, out: fan, now: () => now, graceUs: 1000 });
    for (const ev of news) t.handle(ev);
    t.beginSync();
    t.endSync(now);
    now += 2000;
    t.sweep();
    assert.equal(got.length, news.length);
    for (const f of got) {
      const n = news.find((e) => e.id === f.ctId)!;
      assert.equal(f.src, n.orig.src);
      assert.equal(f.sport ?? undefined, n.proto === 1 ? n.orig.icmpId : n.orig.sport);
      assert.ok(f.flags & FLAG_END_ESTIMATED);
      assert.ok(f.end !== null && f.end - f.endErr <= f.end);
    }
    assert.equal(fan.kept, 0);
    const d = evs.find((e) => e.type === 'DESTROY' && news.some((n) => n.id === e.id))!;
    t.handle(d);
    assert.equal(got.length, news.length + 1);
    const c = got[got.length - 1];
    assert.equal(c.corrects, true);
    assert.equal(c.ctId, d.id);
    assert.equal(c.flags & FLAG_END_ESTIMATED, 0);
    // keys come from the fanout's own counter without a store, one per flow
    assert.equal(new Set(got.slice(0, news.length).map((f) => f.key)).size, news.length);
  });

  it('keeps nothing without routes; a settle it cannot send whole is counted, not made up', () => {
    const news = decodeFixture('ipv4-masq-acct-ts').filter((e) => e.type === 'NEW');
    let now = 1_800_000_000_000_000;
    let key = 1;
    const fan = new FlowFanout({ store: undefined, netns: '', netnsInode: 0, nextKey: () => key++ });
    const t = new FlowTable({ ns: 0, out: fan, now: () => now, graceUs: 1000 });
    for (const ev of news) t.handle(ev);
    assert.equal(fan.kept, 0);
    // a flow sink configured now (SIGHUP): the flows open before it cannot be settled whole
    const got: EndedFlow[] = [];
    fan.routes = [(f) => got.push(f)];
    t.beginSync();
    t.endSync(now);
    now += 2000;
    t.sweep();
    assert.equal(got.length, 0);
    assert.equal(fan.unsent, news.length);
    fan.routes = [];
    assert.equal(fan.kept, 0);
  });

  it('formats a flow record as the JSON of `conntrail flows --json`, and as FLOW_* journal fields', () => {
    const f: EndedFlow = {
      key: 1, start: 1_800_000_000_123_456, startErr: 0, end: 1_800_000_002_623_456, endErr: 0, activeEnd: 1_800_000_002_000_000,
      family: 4, proto: 6, src: '10.0.0.2', sport: 40000, dst: '192.0.2.80', dport: 80, natSrc: '198.51.100.1', natSport: 61000,
      natDst: null, natDport: null, origPackets: 6, origBytes: 400, replyPackets: 5, replyBytes: 900, state: 7, mark: 0, zone: 0,
      status: 14, ctId: 77, flags: 0, ns: 0, netns: 'qrouter-a', netnsInode: 4026532100, corrects: false, report: 0, reported: 0,
    };
    const o = JSON.parse(makeFlowFormatter('json')(f));
    assert.equal(o.start, '2027-01-15T08:00:00.123456Z');
    assert.equal(o.duration_us, 2_500_000);
    assert.equal(o.nat, 'snat');
    assert.deepEqual(o.snat, { inside: { addr: '10.0.0.2', port: 40000 }, public: { addr: '198.51.100.1', port: 61000 } });
    assert.deepEqual(o.bytes, { orig: 400, reply: 900 });
    assert.equal(o.state, 'TIME_WAIT');
    assert.equal(o.netns, 'qrouter-a');
    assert.equal(o.netns_inode, 4026532100);
    assert.equal(o.corrects, false);
    const j = new Map(flowJournalFields(f));
    assert.equal(j.get('FLOW_SRC'), '10.0.0.2');
    assert.equal(j.get('FLOW_SNAT_ADDR'), '198.51.100.1');
    assert.equal(j.get('FLOW_SNAT_PORT'), '61000');
    assert.equal(j.get('FLOW_DURATION_US'), '2500000');
    assert.equal(j.get('FLOW_NETNS'), 'qrouter-a');
    assert.equal(j.has('FLOW_DNAT_ADDR'), false);
    assert.equal(j.has('FLOW_CORRECTS'), false);
  });

  it('the direct JSON writer writes what the object through JSON.stringify does (byte for byte but a non-ASCII name, escaped), over varied records', () => {
    let x = 99;
    const rnd = (n: number) => { x = (x * 1103515245 + 12345) % 2147483648; return x % n; };
    const pick = <T>(a: T[]) => a[rnd(a.length)];
    for (let i = 0; i < 5000; i++) {
      const start = 1_700_000_000_000_000 + rnd(2_000_000_000) * 1000 + pick([0, 0, 123, 456_789, 1000, 999_000]);
      const end = pick([null, start, start + rnd(10_000_000), start + 1_000_000]);
      const proto = pick([6, 17, 1, 58, 132, 47, 253]);
      const f: EndedFlow = {
        key: i, start, startErr: pick([0, 5, 1_000_000, UNBOUNDED]), end, endErr: pick([0, 17, 250_000]),
        activeEnd: end === null ? pick([null, start]) : pick([null, end, start]), family: pick([4, 6]), proto,
        src: pick(['10.0.0.2', 'fd00::2', '2001:db8::1:0:0:1']), sport: pick([null, 0, 40000, 65535]),
        dst: pick(['192.0.2.80', 'fd00:1::5']), dport: pick([null, 80, 2048]),
        natSrc: pick([null, '198.51.100.1', '2001:db8::99']), natSport: pick([null, 61000]),
        natDst: pick([null, null, '10.0.0.9']), natDport: pick([null, 8080]),
        origPackets: pick([null, 0, 6]), origBytes: pick([null, 400, 2 ** 40]), replyPackets: pick([null, 5]), replyBytes: pick([null, 900]),
        state: pick([null, 0, 3, 7, 9, 200]), mark: pick([0, 16, 4294967295]), zone: pick([0, 5]), status: pick([0, 14, 1998]),
        ctId: pick([0, 77, 4294967295]), flags: rnd(16), ns: pick([0, 3]),
        netns: pick(['', 'qrouter-a', 'ns "quoted" \\ é', 'net:[4026532100]']), netnsInode: pick([0, 4026532100]), corrects: pick([false, true]), report: 0, reported: 0,
      };
      // the same JSON; the same text too but for a non-ASCII namespace name (escaped to ASCII here)
      assert.deepEqual(JSON.parse(flowJsonLine(f)), JSON.parse(flowJsonLineReference(f)), JSON.stringify(f));
      if (/^[\x20-\x7e]*$/.test(f.netns)) assert.equal(flowJsonLine(f), flowJsonLineReference(f), JSON.stringify(f));
      else assert.match(flowJsonLine(f), /"netns":"ns \\"quoted\\" \\\\ \\u00e9"/);
    }
  });
});

describe('flow fanout: interim reports (active and inactive timeouts)', () => {
  const T0 = 1_800_000_000_000_000;
  const S = 1_000_000;
  /** one UDP flow 10.0.0.2:40000 -> 192.0.2.80:53, SNAT to 198.51.100.1:61000, as the socket decodes it */
  const ev = (type: FlowEvent['type'], at: number, c?: [number, number, number, number]): FlowEvent => {
    const e = emptyEvent();
    Object.assign(e, { type, family: 2, proto: 17, id: 4242, status: 14, recvTime: at, recvFrom: at });
    Object.assign(e.orig, { src: '10.0.0.2', dst: '192.0.2.80', sport: 40000, dport: 53 });
    Object.assign(e.reply, { src: '192.0.2.80', dst: '198.51.100.1', sport: 53, dport: 61000 });
    if (c) [e.origPackets, e.origBytes, e.replyPackets, e.replyBytes] = c;
    return e;
  };
  const setUp = (activeS: number, inactiveS: number) => {
    const whole: EndedFlow[] = [];
    const parts: EndedFlow[] = [];
    const fan = new FlowFanout({ store: undefined, netns: '', netnsInode: 0, nextKey: (() => { let k = 1; return () => k++; })() });
    fan.setRoutes([(f) => whole.push(f)], [], [(f) => parts.push(f)], { activeUs: activeS * S, inactiveUs: inactiveS * S });
    const t = new FlowTable({ ns: 0, out: fan, now: () => T0 });
    /** a dump at `at` that has the flow with these counters, and the check after it */
    const dump = (at: number, c: [number, number, number, number]) => { t.beginSync(); t.handle(ev('DUMP', at, c)); t.endSync(at); return fan.interimCheck(at); };
    return { whole, parts, fan, t, dump };
  };

  it('active: a flow open past the timeout is reported with what it carried since its last report; its end counts the rest; the whole flow goes to the other routes', () => {
    const { whole, parts, fan, t, dump } = setUp(2, 0);
    t.handle(ev('NEW', T0));
    assert.equal(dump(T0 + 1 * S, [10, 1000, 5, 500]), 0, 'not yet 2 s');
    assert.equal(dump(T0 + 3 * S, [30, 3000, 15, 1500]), 1);
    assert.equal(parts.length, 1);
    const p = parts[0];
    assert.deepEqual([p.report, p.reported, p.start, p.end, p.origPackets, p.origBytes, p.replyPackets, p.replyBytes, p.natSrc, p.natSport],
      [2, 0, T0, T0 + 3 * S, 30, 3000, 15, 1500, '198.51.100.1', 61000]);
    // the counters did not change: nothing to report, however long
    assert.equal(dump(T0 + 6 * S, [30, 3000, 15, 1500]), 0);
    assert.equal(dump(T0 + 7 * S, [40, 4000, 15, 1500]), 1, 'the timeout counts from the last report: 4 s');
    assert.deepEqual([parts[1].start, parts[1].end, parts[1].origPackets, parts[1].origBytes, parts[1].replyPackets, parts[1].reported], [T0 + 3 * S, T0 + 7 * S, 10, 1000, 0, 2 - 1]);
    const destroy = ev('DESTROY', T0 + 8 * S, [45, 4500, 16, 1600]);
    t.handle(destroy);
    assert.equal(parts.length, 3);
    const last = parts[2];
    assert.deepEqual([last.report, last.reported, last.start, last.end, last.origPackets, last.origBytes, last.replyPackets, last.replyBytes], [0, 2, T0 + 7 * S, T0 + 8 * S, 5, 500, 1, 100]);
    // what the three records count is the flow's whole
    assert.equal(parts.reduce((a, f) => a + f.origBytes!, 0), 4500);
    assert.equal(parts.reduce((a, f) => a + f.replyPackets!, 0), 16);
    assert.equal(whole.length, 1);
    assert.deepEqual([whole[0].report, whole[0].reported, whole[0].start, whole[0].origPackets, whole[0].origBytes], [0, 0, T0, 45, 4500]);
    assert.equal(fan.interimSent, 2);
    assert.equal(fan.interim?.activeUs, 2 * S);
  });

  it('inactive: a flow that carried nothing since the dump that last saw its counters change is reported, ending then; its end, with nothing more, is a record of zero', () => {
    const { whole, parts, t, dump } = setUp(0, 5);
    t.handle(ev('NEW', T0));
    assert.equal(dump(T0 + 1 * S, [3, 300, 3, 300]), 0);
    assert.equal(dump(T0 + 4 * S, [4, 400, 3, 300]), 0, 'it changed: active');
    assert.equal(dump(T0 + 8 * S, [4, 400, 3, 300]), 0, 'idle 4 s');
    assert.equal(dump(T0 + 9 * S, [4, 400, 3, 300]), 1, 'idle 5 s');
    assert.deepEqual([parts[0].report, parts[0].start, parts[0].end, parts[0].origPackets, parts[0].replyBytes], [1, T0, T0 + 4 * S, 4, 300]);
    assert.equal(dump(T0 + 20 * S, [4, 400, 3, 300]), 0, 'reported once');
    t.handle(ev('DESTROY', T0 + 30 * S, [4, 400, 3, 300]));
    assert.deepEqual([parts[1].report, parts[1].reported, parts[1].start, parts[1].end, parts[1].origPackets, parts[1].replyPackets], [0, 1, T0 + 4 * S, T0 + 30 * S, 0, 0]);
    assert.equal(whole[0].origPackets, 4);
  });

  it('a flow never reported goes to the interim routes whole; a flow first seen in a dump counts from its start; without interim routes nothing is kept for them', () => {
    const { parts, t, fan } = setUp(10, 0);
    t.handle(ev('NEW', T0));
    t.handle(ev('DESTROY', T0 + 2 * S, [2, 200, 2, 200]));
    assert.deepEqual([parts[0].report, parts[0].reported, parts[0].start, parts[0].origPackets], [0, 0, T0, 2]);
    // first seen in a dump (no kernel start: when seen), with counters: reported 10 s after
    const d = { ...ev('DUMP', T0 + 20 * S, [7, 700, 0, 0]), id: 5151 };
    t.beginSync(); t.handle(d); t.endSync(T0 + 20 * S);
    assert.equal(fan.interimCheck(T0 + 20 * S), 0);
    t.beginSync(); t.handle({ ...ev('DUMP', T0 + 31 * S, [9, 900, 0, 0]), id: 5151 }); t.endSync(T0 + 31 * S);
    assert.equal(fan.interimCheck(T0 + 31 * S), 1);
    assert.deepEqual([parts.at(-1)!.start, parts.at(-1)!.origPackets], [T0 + 20 * S, 9]);
    fan.setRoutes([], [], [], undefined);
    assert.equal(fan.interim, undefined);
    assert.equal(fan.kept, 0);
  });

  it('counters that went down (conntrack -Z) count from zero, in the reports and the end: no negative record, nothing thrown', () => {
    const { parts, t, dump } = setUp(2, 0);
    t.handle(ev('NEW', T0));
    assert.equal(dump(T0 + 3 * S, [30, 3000, 15, 1500]), 1);
    // zeroed after that report: what the counters say now is what came since
    assert.equal(dump(T0 + 6 * S, [4, 400, 2, 200]), 1);
    assert.deepEqual([parts[1].origPackets, parts[1].origBytes, parts[1].replyPackets, parts[1].replyBytes], [4, 400, 2, 200]);
    // zeroed again before the end
    t.handle(ev('DESTROY', T0 + 8 * S, [1, 100, 0, 0]));
    assert.deepEqual([parts[2].report, parts[2].origPackets, parts[2].origBytes, parts[2].replyPackets, parts[2].replyBytes], [0, 1, 100, 0, 0]);
    assert.ok(parts.every((f) => f.origPackets! >= 0 && f.origBytes! >= 0 && f.replyPackets! >= 0 && f.replyBytes! >= 0));
    assert.ok(parts.every((f) => f.end! >= f.start && f.end! - f.endErr >= f.start - 1));
  });

  it('what was reported survives a change of routes (a reload, accounting seen off then on): the end counts only the rest', () => {
    const { parts, fan, t, dump } = setUp(2, 0);
    t.handle(ev('NEW', T0));
    assert.equal(dump(T0 + 3 * S, [30, 3000, 15, 1500]), 1);
    const route = (f: EndedFlow) => parts.push(f);
    fan.setRoutes([route], [], [], undefined);
    fan.setRoutes([], [], [route], { activeUs: 2 * S, inactiveUs: 0 });
    t.handle(ev('DESTROY', T0 + 4 * S, [31, 3100, 15, 1500]));
    assert.deepEqual([parts.at(-1)!.reported, parts.at(-1)!.origPackets, parts.at(-1)!.origBytes], [1, 1, 100]);
  });
});
