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
      status: 14, ctId: 77, flags: 0, ns: 0, netns: 'qrouter-a', netnsInode: 4026532100, corrects: false,
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
        netns: pick(['', 'qrouter-a', 'ns "quoted" \\ é', 'net:[4026532100]']), netnsInode: pick([0, 4026532100]), corrects: pick([false, true]),
      };
      // the same JSON; the same text too but for a non-ASCII namespace name (escaped to ASCII here)
      assert.deepEqual(JSON.parse(flowJsonLine(f)), JSON.parse(flowJsonLineReference(f)), JSON.stringify(f));
      if (/^[\x20-\x7e]*$/.test(f.netns)) assert.equal(flowJsonLine(f), flowJsonLineReference(f), JSON.stringify(f));
      else assert.match(flowJsonLine(f), /"netns":"ns \\"quoted\\" \\\\ \\u00e9"/);
    }
  });
});
