// The SQLite flow store, the query module it shares with PostgreSQL, the
// `who` verdicts, and the writer's spool (with a store that refuses writes).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore, addrValue } from '../../src/store/sqlite.js';
import { addrText } from '../../src/store/rows.js';
import { StoreWriter } from '../../src/store/writer.js';
import { LONG_FLOW_MS, ALL_SIDES, type FlowSearch } from '../../src/store/sql.js';
import type { FlowRecord } from '../../src/flow/record.js';
import type { StoreBatch } from '../../src/store/store.js';
import { judge } from '../../src/cli/who.js';
import { parseCidr } from '../../src/util/ip.js';
import { parseDuration, parseTime } from '../../src/util/time.js';

const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);
let nextKey = 1;
function rec(o: Partial<FlowRecord>): FlowRecord {
  return {
    key: nextKey++, start: T0, end: T0 + 1000, family: 4, proto: 6, src: '10.0.0.2', sport: 50000, dst: '198.51.100.9', dport: 443,
    natSrc: '203.0.113.1', natSport: 40001, natDst: null, natDport: null, origPackets: 5, origBytes: 500, replyPackets: 4,
    replyBytes: 4000, state: 7, mark: 0, zone: 0, status: 0x18e, ctId: 1, flags: 0, ns: 0, ...o,
  };
}
const batch = (o: Partial<StoreBatch>): StoreBatch => ({ opened: [], closed: [], unopen: [], settled: [], ...o });
const search = (o: Partial<FlowSearch>): FlowSearch => ({ window: { since: 0, until: T0 * 2 }, hosts: [], sides: ALL_SIDES, ports: [], protos: [], nat: [], ...o });

describe('SQLite flow store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-store-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

  it('addresses: IPv4 as integers, IPv6 as 16-byte blobs, both ways', () => {
    assert.equal(addrValue('10.0.0.2'), 0x0a000002);
    assert.equal(addrText(addrValue('255.255.255.255')), '255.255.255.255');
    assert.equal(addrText(addrValue('2001:db8::1')), '2001:db8::1');
    assert.throws(() => addrValue('10.0.0'), /not an IP address/);
  });

  it('creates the file 0640 in WAL mode with the current schema; reopening migrates nothing', async () => {
    const path = join(dir, 'a', 'flows.db');
    const s = new SqliteStore({ path });
    assert.equal(statSync(path).mode & 0o777, 0o640);
    assert.equal(s.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(s.db.pragma('user_version', { simple: true }), 1);
    await s.close();
    const again = new SqliteStore({ path });
    assert.equal(again.db.pragma('user_version', { simple: true }), 1);
    await again.close();
    const plain = new Database(join(dir, 'other.db'));
    plain.exec('CREATE TABLE x (a)');
    plain.close();
    assert.throws(() => new SqliteStore({ path: join(dir, 'other.db'), readonly: true }), /not a conntrail flow store/);
  });

  it('who: SNAT and DNAT, exact, open flows, long flows, --remote and --proto', async () => {
    const s = new SqliteStore({ path: join(dir, 'who.db') });
    const a = rec({ src: '10.0.0.2', start: T0, end: T0 + 5000 });
    const b = rec({ src: '10.0.0.3', start: T0 + 6000, end: T0 + 9000 }); // the same public port, later
    const c = rec({ src: '10.0.0.4', start: T0 + 2000, end: T0 + 3000, dst: '198.51.100.10' }); // same port, other remote, meanwhile
    const long = rec({ src: '10.0.0.5', natSport: 40002, start: T0 - 3 * LONG_FLOW_MS, end: T0 + 1000 });
    const dnat = rec({ src: '192.0.2.7', sport: 61000, dst: '203.0.113.1', dport: 8022, natSrc: null, natSport: null, natDst: '10.0.0.9', natDport: 22 });
    const open = rec({ src: '10.0.0.6', natSport: 40003, start: T0 + 100, end: null });
    await s.write(batch({ closed: [a, b, c, long, dnat], opened: [open] }));
    const pub = { addr: '203.0.113.1', port: 40001 };
    const win = (t: number, w = 0) => ({ since: t - w, until: t + w });
    assert.deepEqual((await s.who(pub, win(T0 + 1000), undefined, undefined)).map((f) => f.src), ['10.0.0.2']);
    assert.deepEqual((await s.who(pub, win(T0 + 2500), undefined, undefined)).map((f) => f.src).sort(), ['10.0.0.2', '10.0.0.4']);
    assert.deepEqual((await s.who(pub, win(T0 + 2500), 6, { addr: '198.51.100.10', port: 443 })).map((f) => f.src), ['10.0.0.4']);
    assert.deepEqual((await s.who(pub, win(T0 + 2500), 17, undefined)), []);
    assert.deepEqual((await s.who(pub, win(T0 + 5500), undefined, undefined)), []);
    assert.deepEqual((await s.who(pub, win(T0 + 5500, 1000), undefined, undefined)).map((f) => f.src).sort(), ['10.0.0.2', '10.0.0.3']);
    // a flow that began three hours before the question
    assert.deepEqual((await s.who({ addr: '203.0.113.1', port: 40002 }, win(T0), undefined, undefined)).map((f) => f.src), ['10.0.0.5']);
    // an open flow
    const o = await s.who({ addr: '203.0.113.1', port: 40003 }, win(T0 + 50000), undefined, undefined);
    assert.equal(o.length, 1);
    assert.equal(o[0].end, null);
    // the port forward
    const d = await s.who({ addr: '203.0.113.1', port: 8022 }, win(T0 + 10), undefined, undefined);
    assert.equal(d[0].natDst, '10.0.0.9');
    assert.equal(d[0].natDport, 22);
    // without a port: every flow of the public address
    assert.equal((await s.who({ addr: '203.0.113.1' }, win(T0 + 500), undefined, undefined)).length, 4);
    await s.close();
  });

  it('long flows are copied to long_flows under their own id, in 256-row INSERTs and one by one', async () => {
    const s = new SqliteStore({ path: join(dir, 'long.db') });
    // 300 rows: one 256-row statement and 44 single ones; every 7th is long
    const flows = Array.from({ length: 300 }, (_, i) => rec({ start: T0 + i, end: T0 + i + (i % 7 === 0 ? LONG_FLOW_MS : 1000), sport: i }));
    await s.write(batch({ closed: flows }));
    const long = s.db.prepare('SELECT l.id, l.sport FROM long_flows l JOIN flows f ON f.id = l.id AND f.sport = l.sport AND f.start = l.start ORDER BY l.id').all() as Array<{ sport: number }>;
    assert.deepEqual(long.map((r) => r.sport), flows.filter((_, i) => i % 7 === 0).map((f) => f.sport));
    await s.close();
  });

  it('verdicts: exact, nearest, ambiguous (listing every inside host), none', async () => {
    const a = { ...rec({ src: '10.0.0.2', start: 1000, end: 2000 }) };
    const b = { ...rec({ src: '10.0.0.3', start: 1500, end: 2500 }) };
    const c = { ...rec({ src: '10.0.0.2', start: 3000, end: 3500 }) };
    assert.deepEqual(judge([a], 1500), { verdict: 'exact', inside: ['10.0.0.2'], flows: [a], instant: true });
    assert.equal(judge([a, b], 1700).verdict, 'ambiguous');
    assert.deepEqual(judge([a, b], 1700).inside.sort(), ['10.0.0.2', '10.0.0.3']);
    assert.equal(judge([a, c], 2900).verdict, 'nearest');
    assert.equal(judge([a, c], 2900).flows[0], c);
    assert.equal(judge([a, b], 2800).verdict, 'ambiguous');
    assert.equal(judge([], 1).verdict, 'none');
    const dn = rec({ natSrc: null, natSport: null, natDst: '10.0.0.9', natDport: 22, start: 0, end: 10 });
    assert.deepEqual(judge([dn], 5).inside, ['10.0.0.9']);
  });

  it('search: host or CIDR on any side, IPv6, ports, NAT kind, bytes, time; top hosts, ports, pairs', async () => {
    const s = new SqliteStore({ path: join(dir, 'search.db') });
    const flows = [
      rec({ src: '10.0.0.2', dport: 443, start: T0, end: T0 + 10, origBytes: 100, replyBytes: 900 }),
      rec({ src: '10.0.0.2', dport: 53, proto: 17, start: T0 + 20, end: T0 + 30, origBytes: 50, replyBytes: 50 }),
      rec({ src: '10.0.1.7', dport: 443, start: T0 + 40, end: T0 + 50, origBytes: 10, replyBytes: 10 }),
      rec({ family: 6, src: '2001:db8::2', dst: '2001:db8:ffff::1', natSrc: null, natSport: null, start: T0 + 60, end: T0 + 70 }),
      rec({ src: '192.0.2.7', dst: '203.0.113.1', dport: 8022, natSrc: null, natSport: null, natDst: '10.0.0.9', natDport: 22, start: T0 + 80, end: T0 + 90 }),
      rec({ src: '10.0.0.2', start: T0 - 86400000, end: T0 - 86400000 + 5 }),
    ];
    await s.write(batch({ closed: flows }));
    const srcs = async (o: Partial<FlowSearch>) => (await s.search(search(o))).map((f) => f.src).reverse();
    assert.deepEqual(await srcs({ hosts: [parseCidr('10.0.0.2')] }), ['10.0.0.2', '10.0.0.2', '10.0.0.2']);
    assert.deepEqual(await srcs({ hosts: [parseCidr('10.0.0.0/16')], window: { since: T0, until: T0 + 1000 } }), ['10.0.0.2', '10.0.0.2', '10.0.1.7', '192.0.2.7']);
    assert.deepEqual(await srcs({ hosts: [parseCidr('203.0.113.1')], sides: ['nat_src'] }), ['10.0.0.2', '10.0.0.2', '10.0.0.2', '10.0.1.7']);
    assert.deepEqual(await srcs({ hosts: [parseCidr('2001:db8::/32')] }), ['2001:db8::2']);
    assert.deepEqual(await srcs({ hosts: [parseCidr('10.0.0.9')] }), ['192.0.2.7']);
    // --src and --dst together: both must hold
    assert.deepEqual(await srcs({ hosts: [parseCidr('10.0.0.0/16')], sides: ['src'], also: [{ hosts: [parseCidr('203.0.113.1')], sides: ['dst'] }] }), []);
    assert.deepEqual(await srcs({ hosts: [parseCidr('192.0.2.0/24')], sides: ['src'], also: [{ hosts: [parseCidr('203.0.113.1')], sides: ['dst'] }] }), ['192.0.2.7']);
    assert.deepEqual(await srcs({ hosts: [parseCidr('10.0.0.2')], sides: ['src'], also: [{ hosts: [parseCidr('198.51.100.0/24')], sides: ['dst'] }] }), ['10.0.0.2', '10.0.0.2', '10.0.0.2']);
    assert.equal((await s.top(search({ hosts: [parseCidr('10.0.0.0/8')], sides: ['src'], also: [{ hosts: [parseCidr('198.51.100.9')], sides: ['dst'] }] }), 'pairs', 'flows', 5))
      .map((r) => r.key).join(), '10.0.0.2 198.51.100.9,10.0.1.7 198.51.100.9');
    assert.deepEqual(await srcs({ protos: [17] }), ['10.0.0.2']);
    assert.deepEqual(await srcs({ ports: [22] }), ['192.0.2.7']);
    assert.deepEqual(await srcs({ nat: ['none'] }), ['2001:db8::2']);
    assert.deepEqual(await srcs({ nat: ['dnat'] }), ['192.0.2.7']);
    assert.deepEqual(await srcs({ minBytes: 1000 }), ['10.0.0.2', '10.0.0.2', '2001:db8::2', '192.0.2.7']);
    assert.equal((await s.search(search({ minBytes: 1000, window: { since: T0, until: T0 + 1000 } }))).length, 3);
    assert.equal((await s.search(search({ limit: 2 }))).length, 2);
    const top = await s.top(search({ window: { since: T0, until: T0 + 1000 } }), 'hosts', 'bytes', 3);
    assert.deepEqual(top.slice(0, 2).map((r) => r.key).sort(), ['192.0.2.7', '2001:db8::2']);
    assert.deepEqual(top.map((r) => [r.flows, r.bytes]), [[1, 4500], [1, 4500], [2, 1100]]);
    assert.deepEqual(top[2].key, '10.0.0.2');
    const pairs = await s.top(search({ hosts: [parseCidr('10.0.0.2')], sides: ['src'] }), 'pairs', 'flows', 5);
    assert.deepEqual(pairs.map((r) => [r.key, r.flows]), [['10.0.0.2 198.51.100.9', 3]]);
    const ports = await s.top(search({}), 'ports', 'flows', 1);
    assert.deepEqual(ports.map((r) => [r.key, r.flows]), [['443/tcp', 4]]);
    await s.close();
  });

  it('open flows: written, ended, settled with the end estimated', async () => {
    const s = new SqliteStore({ path: join(dir, 'open.db') });
    const a = rec({ end: null });
    const b = rec({ end: null, src: '10.0.0.3' });
    await s.write(batch({ opened: [a, b] }));
    assert.equal((await s.openFlows()).length, 2);
    await s.write(batch({ closed: [{ ...a, end: T0 + 500 }], unopen: [a.key], settled: [{ key: b.key, end: T0 + 900, flags: 4 }] }));
    assert.equal((await s.openFlows()).length, 0);
    const all = await s.search(search({}));
    assert.equal(all.length, 2);
    const settled = all.find((f) => f.src === '10.0.0.3')!;
    assert.equal(settled.end, T0 + 900);
    assert.equal(settled.flags, 4);
    await s.close();
  });

  it('retention deletes flows that ended before the cutoff, in steps', async () => {
    const s = new SqliteStore({ path: join(dir, 'ret.db') });
    const old = Array.from({ length: 50 }, (_, i) => rec({ start: Date.now() - 10000 - i, end: Date.now() - 9000 }));
    await s.write(batch({ closed: old }));
    s.db.prepare('UPDATE marks SET t = t - 5000').run(); // written five seconds "ago"
    const fresh = [rec({ start: Date.now(), end: Date.now() + 1 })];
    await s.write(batch({ closed: fresh }));
    const cutoff = Date.now() - 2000;
    assert.equal(await s.expire(cutoff, 20), 20);
    assert.equal(await s.expire(cutoff, 20), 20);
    assert.equal(await s.expire(cutoff, 20), 10);
    assert.equal(await s.expire(cutoff, 20), 0);
    assert.equal((await s.search(search({ window: { since: 0, until: Date.now() + 10000 } }))).length, 1);
    await s.close();
  });
});

describe('store writer', () => {
  it('a store that refuses writes: batches go to the spool, are replayed in order, nothing lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conntrail-spool-'));
    const store = new SqliteStore({ path: join(dir, 'flows.db') });
    let refuse = true;
    const real = store.write.bind(store);
    const order: number[] = [];
    store.write = async (b) => {
      if (refuse) throw new Error('server down');
      for (const r of b.closed) order.push(r.start);
      return real(b);
    };
    const msgs: string[] = [];
    const w = new StoreWriter(store, { flushMs: 60000, maxBatch: 1000, retentionMs: 0, spoolDir: join(dir, 'spool'), warn: (m) => msgs.push(m), info: (m) => msgs.push(m) });
    let t = T0;
    const flows: FlowRecord[] = [];
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 10; j++) {
        const r = rec({ start: t++, end: null });
        w.opened(r);
        if (j % 2) { w.flush(); w.closed({ ...r, end: t + 100 }); flows.push(r); } else { w.closed({ ...r, end: t + 100 }); flows.push(r); }
      }
      w.flush();
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(msgs.some((m) => /write failed \(server down\); spooling/.test(m)), msgs.join('\n'));
    assert.ok(w.stats().spooled > 0);
    assert.ok(readdirSync(join(dir, 'spool')).length > 0);
    refuse = false;
    await w.close(20000);
    assert.deepEqual(order, flows.map((f) => f.start));
    const st = w.stats();
    assert.equal(st.spoolPending, 0);
    assert.equal(st.replayed, st.spooled);
    assert.equal(readdirSync(join(dir, 'spool')).length, 0);
    const back = new SqliteStore({ path: join(dir, 'flows.db'), readonly: true });
    assert.equal((await back.search(search({}))).length, 50);
    assert.equal((await back.openFlows()).length, 0);
    await back.close();
    rmSync(dir, { recursive: true, force: true });
  });
  it('a spool that cannot be written: the batches stay in memory, in order, and none is lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conntrail-spool-'));
    const store = new SqliteStore({ path: join(dir, 'flows.db') });
    let refuse = true;
    const real = store.write.bind(store);
    const order: number[] = [];
    store.write = async (b) => {
      if (refuse) throw new Error('server down');
      for (const r of b.closed) order.push(r.start);
      return real(b);
    };
    const msgs: string[] = [];
    const spool = join(dir, 'spool');
    const w = new StoreWriter(store, { flushMs: 60000, maxBatch: 1000, retentionMs: 0, spoolDir: spool, warn: (m) => msgs.push(m), info: (m) => msgs.push(m) });
    rmSync(spool, { recursive: true }); // the disk refuses every spool file from now on
    const starts: number[] = [];
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 5; j++) { const r = rec({ start: T0 + i * 10 + j }); starts.push(r.start); w.closed(r); }
      w.flush();
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(msgs.some((m) => /cannot spool \(ENOENT/.test(m)), msgs.join('\n'));
    assert.equal(w.stats().queued, 20);
    refuse = false;
    await w.close(20000);
    assert.deepEqual(order, starts);
    assert.equal(w.stats().queued, 0);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('times and durations', () => {
  it('parses what the command line accepts, and names what it does not', () => {
    assert.equal(parseDuration('90d'), 90 * 86400000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.throws(() => parseDuration('90 days'), /"90 days" is not a duration/);
    assert.equal(parseTime('2026-11-23T12:00:00Z'), T0);
    assert.equal(parseTime('2026-11-23T12:00:00.250Z'), T0 + 250);
    assert.equal(parseTime('@1795435200.5'), 1795435200500);
    assert.equal(parseTime('now', 5000), 5000);
    assert.equal(parseTime('-10m', 3600000), 3000000);
    assert.equal(parseTime('2026-11-23T14:00:00+02:00'), T0);
    assert.throws(() => parseTime('yesterday'), /"yesterday" is not a time/);
  });
});
