// Aggregated flow records in both stores (SQLite and a real PostgreSQL),
// the same queries on each: read back as written (networks with their
// prefix, null keys, 64-bit sums), searched by stage, interval overlap,
// address or CIDR on any address key, port, protocol, newest first with a
// limit; retention by interval start; a spool written before aggregates
// existed still applies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { emptyBatch, normalizeBatch, type FlowStore } from '../../src/store/store.js';
import type { AggregateSearch } from '../../src/store/aggregates.js';
import type { AggregateRecord } from '../../src/records/aggregate.js';
import { parseCidr } from '../../src/util/ip.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

const S = 1_000_000;
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0) * 1000;
const MIN = 60 * S;

const agg = (o: Partial<AggregateRecord>): AggregateRecord => ({
  aggregate: 'per-minute', intervalStart: T0, intervalUs: MIN, first: T0 - 3 * S, last: T0 + 59 * S, family: 4, proto: 17,
  src: '10.0.1.0', srcPrefix: 24, dst: null, dstPrefix: null, sport: null, dport: 53, natSrc: '203.0.113.0', natSport: null, natDst: null, natDport: null,
  flows: 41, origPackets: 82, origBytes: 3280, replyPackets: 82, replyBytes: 9840, ...o,
});
const RECORDS: AggregateRecord[] = [
  agg({}),
  agg({ dport: 443, proto: 6, flows: 2, origBytes: 6_000_000_000, replyBytes: 2 ** 40 }),
  agg({ intervalStart: T0 + MIN, first: T0 + MIN, last: T0 + MIN + S }),
  // another stage: per host and public port, five minutes, no protocol key
  agg({ aggregate: 'per-port', intervalStart: T0, intervalUs: 5 * MIN, src: '10.0.1.7', srcPrefix: 32, dport: null, proto: null, natSrc: '203.0.113.1', natSport: 40001 }),
  // IPv6, by destination only
  agg({ aggregate: 'v6', family: 6, src: null, srcPrefix: null, natSrc: null, dst: '2001:db8:5::', dstPrefix: 48, dport: null, proto: null }),
  // no address key at all: both families
  agg({ aggregate: 'ports', family: 0, src: null, srcPrefix: null, natSrc: null, proto: 17, dport: 123 }),
];
const search = (o: Partial<AggregateSearch>): AggregateSearch => ({ since: 0, until: T0 * 2, names: [], hosts: [], ports: [], protos: [], ...o });
const keyOf = (r: AggregateRecord) => `${r.aggregate} ${r.intervalStart} ${r.dport} ${r.proto}`;

function suite(name: string, open: () => Promise<FlowStore>): void {
  describe(`aggregated records in ${name}`, () => {
    let s: FlowStore;
    before(async () => {
      s = await open();
      await s.namespaceId('');
      const w = await s.write({ ...emptyBatch(), id: `${name}-1`, aggregates: RECORDS });
      assert.equal(w.aggregates, RECORDS.length);
      // a batch spooled by a version before aggregates (no `aggregates` list) still applies
      const old = JSON.parse(JSON.stringify({ ...emptyBatch(), id: `${name}-2` })) as Record<string, unknown>;
      delete old.aggregates;
      assert.equal((await s.write(normalizeBatch(old))).aggregates, undefined);
    });
    after(async () => { await s.close(); });

    it('reads back what was written, newest first: networks with their prefix, keys that are none, sums above 2^32', async () => {
      const all = await s.aggregates(search({}));
      assert.deepEqual(all.map(keyOf).sort(), RECORDS.map(keyOf).sort());
      for (const r of RECORDS) assert.deepEqual(all.find((x) => keyOf(x) === keyOf(r) && x.src === r.src && x.dst === r.dst), r, keyOf(r));
      assert.equal(all[0].intervalStart, T0 + MIN, 'the newest interval first');
      assert.deepEqual((await s.aggregates(search({ limit: 1 }))).map(keyOf), [keyOf(RECORDS[2])]);
    });

    it('searches by stage, interval overlap, address key (CIDR, after NAT too), port key and protocol', async () => {
      const keys = async (o: Partial<AggregateSearch>) => (await s.aggregates(search(o))).map(keyOf).sort();
      assert.deepEqual(await keys({ names: ['per-port', 'v6'] }), [keyOf(RECORDS[3]), keyOf(RECORDS[4])].sort());
      // an interval overlaps [since, until]: the five-minute one still covers T0 + 2 min, the minutes before do not
      assert.deepEqual(await keys({ since: T0 + 2 * MIN, until: T0 + 2 * MIN }), [keyOf(RECORDS[3])]);
      assert.deepEqual(await keys({ since: T0 + MIN, until: T0 + MIN }), [keyOf(RECORDS[2]), keyOf(RECORDS[3])].sort());
      assert.deepEqual(await keys({ until: T0 - 1 }), []);
      // a network key matches by its address; the public address too; IPv6
      assert.equal((await s.aggregates(search({ hosts: [parseCidr('10.0.1.0/24')] }))).length, 4);
      assert.deepEqual(await keys({ hosts: [parseCidr('10.0.1.7')] }), [keyOf(RECORDS[3])]);
      assert.deepEqual(await keys({ hosts: [parseCidr('203.0.113.1')] }), [keyOf(RECORDS[3])]);
      assert.deepEqual(await keys({ hosts: [parseCidr('2001:db8::/32')] }), [keyOf(RECORDS[4])]);
      assert.deepEqual(await keys({ ports: [40001] }), [keyOf(RECORDS[3])], 'a public port key');
      assert.deepEqual(await keys({ ports: [443] }), [keyOf(RECORDS[1])]);
      assert.deepEqual(await keys({ protos: [6] }), [keyOf(RECORDS[1])]);
    });

    it('retention deletes the records whose interval began before the cutoff, in steps', async () => {
      assert.equal(await s.expireAggregates(T0 + 1, 2), 2);
      assert.equal(await s.expireAggregates(T0 + 1, 2), 2);
      assert.equal(await s.expireAggregates(T0 + 1, 2), 1);
      assert.equal(await s.expireAggregates(T0 + 1, 2), 0);
      assert.deepEqual((await s.aggregates(search({}))).map(keyOf), [keyOf(RECORDS[2])]);
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'conntrail-astore-'));
after(() => rmSync(dir, { recursive: true, force: true }));
suite('SQLite', async () => new SqliteStore({ path: join(dir, 'a.db') }));

let pg: Postgres | undefined;
after(async () => { await pg?.stop(); });
suite('PostgreSQL', async () => {
  pg = await startPostgres();
  return new PostgresStore({ url: pg.url });
});
