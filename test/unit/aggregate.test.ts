// The aggregation stage: flows that ended in one interval with the same keys
// fold into one record (counts, sums, the earliest start, the latest end);
// an interval is sent once its delay has passed; late flows make records of
// their own; max_keys sends the oldest interval early. Its IPFIX records
// carry only the keys.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Aggregator, maskAddress } from '../../src/pipeline/aggregate.js';
import type { AggregateKey, AggregateRecord } from '../../src/records/aggregate.js';
import type { EndedFlow } from '../../src/records/flow.js';
import { aggregateJournalFields, aggregateJson, aggregateJsonLine } from '../../src/formats/aggregate.js';
import { AggregateEncoding, IE, IpfixPacker, TEMPLATE_AGG, TEMPLATE_AGG_V4, TEMPLATE_AGG_V6 } from '../../src/formats/ipfix.js';

const S = 1_000_000;
const T0 = 1_800_000_000 * S; // a whole minute
const flow = (o: Partial<EndedFlow>): EndedFlow => ({
  key: 1, start: T0, startErr: 0, end: T0 + S, endErr: 0, activeEnd: null, family: 4, proto: 17,
  src: '10.0.0.2', sport: 40000, dst: '192.0.2.80', dport: 53, natSrc: '198.51.100.1', natSport: 61000, natDst: null, natDport: null,
  origPackets: 1, origBytes: 60, replyPackets: 1, replyBytes: 90, state: null, mark: 0, zone: 0, status: 0, ctId: 1, flags: 0, ns: 0,
  netns: '', netnsInode: 0, corrects: false, report: 0, reported: 0, ...o,
});

describe('aggregation', () => {
  const make = (keys: AggregateKey[], more: Partial<ConstructorParameters<typeof Aggregator>[0]> = {}) => {
    const out: AggregateRecord[] = [];
    const a = new Aggregator({ name: 'a', keys, srcPrefix4: 32, srcPrefix6: 128, dstPrefix4: 32, dstPrefix6: 128, interval: 60, delay: 10, maxKeys: 1000, emit: (r) => out.push(r), ...more });
    return { a, out };
  };

  it('folds the flows of an interval by their keys: counts, sums, the earliest start and the latest end; sent once the delay has passed', () => {
    const { a, out } = make(['src', 'proto', 'dport', 'nat_src']);
    a.push(flow({ start: T0 - 5 * S, end: T0 + 2 * S }));
    a.push(flow({ sport: 40001, start: T0 + 1 * S, end: T0 + 59 * S, origBytes: 100, origPackets: 2 }));
    a.push(flow({ dport: 443, end: T0 + 3 * S }));
    a.push(flow({ end: T0 + 61 * S })); // the next minute
    a.push(flow({ end: null })); // open: not taken
    a.push(flow({ report: 2 })); // an interim report: not taken
    a.push(flow({ corrects: true })); // a correction: not taken
    assert.equal(a.tick(T0 + 69 * S), 0, 'not before the delay');
    assert.equal(a.tick(T0 + 70 * S), 2);
    const r53 = out.find((r) => r.dport === 53)!;
    assert.deepEqual([r53.intervalStart, r53.flows, r53.first, r53.last, r53.origPackets, r53.origBytes, r53.replyPackets, r53.replyBytes],
      [T0, 2, T0 - 5 * S, T0 + 59 * S, 3, 160, 2, 180]);
    assert.deepEqual([r53.src, r53.proto, r53.natSrc, r53.sport, r53.dst, r53.natSport, r53.family], ['10.0.0.2', 17, '198.51.100.1', null, null, null, 4]);
    assert.equal(out.find((r) => r.dport === 443)!.flows, 1);
    assert.equal(a.stats().held, 1);
    a.tick(T0 + 130 * S);
    assert.deepEqual([out.length, out[2].intervalStart], [3, T0 + 60 * S]);
    assert.deepEqual(a.stats(), { name: 'a', flows: 4, records: 3, late: 0, early: 0, held: 0 });
  });

  it('a flow for an interval already sent is a record of its own for it, counted late; max_keys sends the oldest interval early', () => {
    const { a, out } = make(['proto'], { maxKeys: 2 });
    a.push(flow({}));
    a.tick(T0 + 70 * S);
    a.push(flow({ origBytes: 7 }));
    assert.equal(a.stats().late, 1);
    a.tick(T0 + 71 * S);
    assert.deepEqual(out.map((r) => [r.intervalStart, r.flows, r.origBytes]), [[T0, 1, 60], [T0, 1, 7]]);
    // two keys held; a third: the oldest interval goes early
    a.push(flow({ end: T0 + 61 * S }));
    a.push(flow({ end: T0 + 121 * S }));
    a.push(flow({ end: T0 + 181 * S }));
    assert.deepEqual([a.stats().early, out.at(-1)!.intervalStart, a.stats().held], [1, T0 + 60 * S, 2]);
    // stopping: everything now
    assert.equal(a.tick(T0 + 100 * S, true), 2);
  });

  it('prefixes cut addresses to their networks, IPv4 and IPv6; without SNAT the source after it is the flow\'s own; ICMP has no ports', () => {
    assert.equal(maskAddress('10.1.2.3', 24), '10.1.2.0');
    assert.equal(maskAddress('10.1.2.3', 20), '10.1.0.0');
    assert.equal(maskAddress('10.1.2.3', 0), '0.0.0.0');
    assert.equal(maskAddress('2001:db8:1:2::5', 48), '2001:db8:1::');
    assert.equal(maskAddress('fd00::1', 128), 'fd00::1');
    const { a, out } = make(['src', 'nat_src', 'nat_sport', 'dport'], { srcPrefix4: 24, srcPrefix6: 64 });
    a.push(flow({ src: '10.0.0.7' }));
    a.push(flow({ src: '10.0.0.9', natSrc: null, natSport: null, sport: 5000 }));
    a.push(flow({ family: 6, src: 'fd00:1:2:3::9', dst: 'fd00::80', natSrc: null, natSport: null }));
    a.push(flow({ proto: 1, sport: 77, dport: 8 * 256 }));
    a.tick(0, true);
    const key = (r: AggregateRecord) => `${r.family} ${r.src}/${r.srcPrefix} ${r.natSrc}:${r.natSport} ${r.dport}`;
    assert.deepEqual(out.map(key).sort(), [
      '4 10.0.0.0/24 10.0.0.0:5000 53', '4 10.0.0.0/24 198.51.100.0:0 0', '4 10.0.0.0/24 198.51.100.0:61000 53', '6 fd00:1:2:3::/64 fd00:1:2:3:::40000 53',
    ]);
  });

  it('IPFIX: a template per family with the keys only, deltaFlowCount and both directions\' counters; without an address one for both', () => {
    const enc = new AggregateEncoding(['src', 'proto', 'dport', 'nat_src'], { src4: 24, src6: 128, dst4: 32, dst6: 128 });
    // the template set: ids and their fields
    const t = enc.templates;
    assert.equal(t.readUInt16BE(0), 2);
    const ids: number[] = [];
    const fieldsOf = new Map<number, number[]>();
    for (let o = 4; o < t.length;) {
      const id = t.readUInt16BE(o); const n = t.readUInt16BE(o + 2); o += 4;
      const fl: number[] = [];
      for (let i = 0; i < n; i++) { const e = t.readUInt16BE(o); fl.push(e & 0x7fff); o += e & 0x8000 ? 8 : 4; }
      ids.push(id); fieldsOf.set(id, fl);
    }
    assert.deepEqual(ids, [TEMPLATE_AGG_V4, TEMPLATE_AGG_V6]);
    assert.deepEqual(fieldsOf.get(TEMPLATE_AGG_V4), [IE.flowStartMilliseconds, IE.flowEndMilliseconds, 1, 2, 1, 2, IE.deltaFlowCount, IE.protocolIdentifier,
      IE.destinationTransportPort, IE.sourceIPv4Address, IE.postNATSourceIPv4Address, IE.sourceIPv4PrefixLength]);
    // (IPv6 at its full length: no prefix length)
    assert.deepEqual(fieldsOf.get(TEMPLATE_AGG_V6), [152, 153, 1, 2, 1, 2, 3, 4, 11, 27, 281]);
    const r: AggregateRecord = {
      aggregate: 'a', intervalStart: T0, intervalUs: 60 * S, first: T0 - 1500, last: T0 + 2 * S + 1, family: 4, proto: 17, src: '10.0.0.0', srcPrefix: 24,
      dst: null, dstPrefix: null, sport: null, dport: 53, natSrc: '198.51.100.0', natSport: null, natDst: null, natDport: null,
      flows: 3, origPackets: 5, origBytes: 2 ** 33 + 5, replyPackets: 4, replyBytes: 400,
    };
    const b = Buffer.alloc(enc.recordLen(TEMPLATE_AGG_V4));
    assert.equal(enc.write(b, 0, r), b.length);
    assert.deepEqual([Number(b.readBigUInt64BE(0)), Number(b.readBigUInt64BE(8)), Number(b.readBigUInt64BE(16)), Number(b.readBigUInt64BE(48)), b[56], b.readUInt16BE(57),
      [...b.subarray(59, 63)].join('.'), [...b.subarray(63, 67)].join('.'), b[67]], [Math.floor((T0 - 1500) / 1000), Math.ceil((T0 + 2 * S + 1) / 1000), 2 ** 33 + 5, 3, 17, 53, '10.0.0.0', '198.51.100.0', 24]);
    const p = new IpfixPacker(1400, 'rfc8158');
    p.addRecord(TEMPLATE_AGG_V4, (buf, o) => enc.write(buf, o, r));
    assert.equal(p.records, 1);
    const none = new AggregateEncoding(['proto'], { src4: 32, src6: 128, dst4: 32, dst6: 128 });
    assert.equal(none.templateOf({ ...r, family: 0 }), TEMPLATE_AGG);
    assert.equal(none.recordLen(TEMPLATE_AGG), 7 * 8 + 1);
  });
});

describe('aggregated records as lines', () => {
  const rec = (o: Partial<AggregateRecord> = {}): AggregateRecord => ({
    aggregate: 'per-minute', intervalStart: T0, intervalUs: 60 * S, first: T0 - 5 * S, last: T0 + 59 * S + 1, family: 4, proto: 6,
    src: '10.0.0.0', srcPrefix: 24, dst: null, dstPrefix: null, sport: null, dport: 443, natSrc: '198.51.100.0', natSport: null, natDst: null, natDport: null,
    flows: 3, origPackets: 12, origBytes: 5_000_000_000, replyPackets: 9, replyBytes: 700, ...o,
  });
  it('json: one shape for every stage (keys it does not fold by are null), a prefix as its network; the line is that object, in ASCII', () => {
    const line = aggregateJsonLine(rec());
    assert.deepEqual(JSON.parse(line), aggregateJson(rec()));
    assert.deepEqual(JSON.parse(line), {
      aggregate: 'per-minute', interval_start: '2027-01-15T08:00:00Z', interval_start_us: T0, interval_s: 60,
      first: '2027-01-15T07:59:55Z', first_us: T0 - 5 * S, last: '2027-01-15T08:00:59.000001Z', last_us: T0 + 59 * S + 1,
      family: 4, proto: 'tcp', src: '10.0.0.0/24', sport: null, dst: null, dport: 443,
      // (src_prefix applies after NAT too: at 24 bits the public address is its network)
      nat_src: '198.51.100.0/24', nat_sport: null, nat_dst: null, nat_dport: null,
      flows: 3, packets: { orig: 12, reply: 9 }, bytes: { orig: 5_000_000_000, reply: 700 },
    });
    // full-length prefixes are plain addresses; no address key: no family; a name with quotes stays JSON
    assert.equal(JSON.parse(aggregateJsonLine(rec({ srcPrefix: 32, natSrc: null }))).src, '10.0.0.0');
    assert.equal(JSON.parse(aggregateJsonLine(rec({ family: 6, src: 'fd00::', srcPrefix: 32, natSrc: null }))).src, 'fd00::/32', 'an IPv6 address at 32 bits is a network');
    assert.equal(JSON.parse(aggregateJsonLine(rec({ family: 6, src: 'fd00::1', srcPrefix: 128, natSrc: null }))).src, 'fd00::1');
    const none = JSON.parse(aggregateJsonLine(rec({ aggregate: 'a "b"', family: 0, src: null, srcPrefix: null, natSrc: null, proto: null })));
    assert.deepEqual([none.aggregate, none.family, none.src, none.nat_src, none.proto], ['a "b"', null, null, null, null]);
  });
  it('journal: an AGG_* field per key it folds by, the sums and the times in µs', () => {
    const f = new Map(aggregateJournalFields(rec()));
    assert.deepEqual(Object.fromEntries(f), {
      AGG_NAME: 'per-minute', AGG_INTERVAL_START_US: String(T0), AGG_INTERVAL_S: '60', AGG_FIRST_US: String(T0 - 5 * S), AGG_LAST_US: String(T0 + 59 * S + 1),
      AGG_FAMILY: '4', AGG_PROTO: 'tcp', AGG_PROTO_NUM: '6', AGG_SRC: '10.0.0.0/24', AGG_DPORT: '443', AGG_NAT_SRC: '198.51.100.0/24', AGG_FLOWS: '3',
      AGG_ORIG_PACKETS: '12', AGG_ORIG_BYTES: '5000000000', AGG_REPLY_PACKETS: '9', AGG_REPLY_BYTES: '700',
    });
  });
});
