// The SQLite flow store, the query module it shares with PostgreSQL, the
// `who` verdicts over active intervals, the writer (spool, bounded memory,
// the current table through the spool, runs), time parsing, and the
// migration from schema 1.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore, SQLITE_MIGRATIONS, addrValue } from '../../src/store/sqlite.js';
import { addrText } from '../../src/store/rows.js';
import { StoreWriter } from '../../src/store/writer.js';
import { LONG_FLOW_US, ALL_SIDES, SCHEMA_VERSION, type FlowSearch } from '../../src/store/sql.js';
import { UNBOUNDED, type FlowRecord } from '../../src/records/flow.js';
import { emptyBatch, type StoreBatch, type StoredFlow } from '../../src/store/store.js';
import { coverageGaps, judge } from '../../src/cli/who.js';
import { flowHolders } from '../../src/cli/flows.js';
import { topJson, topTable } from '../../src/cli/flowfmt.js';
import { holdersText } from '../../src/cli/tcpstatefmt.js';
import { tcpStateRow, type TcpStateRow } from '../../src/store/tcpstates.js';
import type { TcpStateChange } from '../../src/records/tcpstate.js';
import { parseCidr } from '../../src/util/ip.js';
import { parseDuration, parseDurationMicros, parseTime, parseTimeInterval } from '../../src/util/time.js';

const S = 1_000_000; // µs
const T0 = Date.UTC(2026, 10, 23, 12, 0, 0) * 1000;
let nextKey = 1;
function rec(o: Partial<FlowRecord>): FlowRecord {
  const r: FlowRecord = {
    key: nextKey++, start: T0, startErr: 0, end: T0 + S, endErr: 0, activeEnd: null, family: 4, proto: 6, src: '10.0.0.2', sport: 50000,
    dst: '198.51.100.9', dport: 443, natSrc: '203.0.113.1', natSport: 40001, natDst: null, natDport: null, origPackets: 5, origBytes: 500,
    replyPackets: 4, replyBytes: 4000, state: 7, mark: 0, zone: 0, status: 0x18e, ctId: 1, flags: 0, ns: 0, ...o,
  };
  if (!('activeEnd' in o)) r.activeEnd = r.end;
  return r;
}
const flow = (o: Partial<FlowRecord>): StoredFlow => { const { key: _k, family: _f, ...rest } = rec(o); return rest; };
const batch = (o: Partial<StoreBatch>): StoreBatch => ({ ...emptyBatch(), ...o });
const search = (o: Partial<FlowSearch>): FlowSearch => ({ window: { since: 0, until: T0 * 2 }, hosts: [], sides: ALL_SIDES, ports: [], protos: [], nat: [], ...o });
const sec = (t: number) => ({ lo: t, hi: t + S });

describe('SQLite flow store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-store-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

  it('addresses: IPv4 as integers, IPv6 as 16-byte blobs, both ways', () => {
    assert.equal(addrValue('10.0.0.2'), 0x0a000002);
    assert.equal(addrText(addrValue('255.255.255.255')), '255.255.255.255');
    assert.equal(addrText(addrValue('2001:db8::1')), '2001:db8::1');
    assert.throws(() => addrValue('10.0.0'), /not an IP address/);
  });

  it('creates the file 0640 in WAL mode with the current schema; reopening migrates nothing; a directory that cannot exist is named', async () => {
    const path = join(dir, 'a', 'flows.db');
    const s = new SqliteStore({ path });
    assert.equal(statSync(path).mode & 0o777, 0o640);
    assert.equal(s.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(s.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    await s.close();
    const again = new SqliteStore({ path });
    assert.equal(again.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    await again.close();
    const plain = new Database(join(dir, 'other.db'));
    plain.exec('CREATE TABLE x (a)');
    plain.close();
    assert.throws(() => new SqliteStore({ path: join(dir, 'other.db'), readonly: true }), /not a conntrail flow store/);
    assert.throws(() => new SqliteStore({ path: join(path, 'x', 'flows.db') }), /flows\.db is not a directory/);
  });

  it('a namespace is its name and inode: one made again under the same name is another; a name stored before schema 6 is claimed by the first inode', async () => {
    const path = join(dir, 'v5.db');
    const db = new Database(path);
    for (let i = 0; i < 5; i++) db.exec(SQLITE_MIGRATIONS[i]);
    db.pragma('user_version = 5');
    db.prepare('INSERT INTO namespaces (id, name) VALUES (0, ?), (1, ?)').run('', 'qrouter-a');
    db.close();
    const s = new SqliteStore({ path });
    assert.equal(await s.namespaceId('qrouter-a', 4026532001), 1, 'the name stored before: claimed');
    assert.equal(await s.namespaceId('qrouter-a', 4026532001), 1);
    assert.equal(await s.namespaceId('qrouter-a', 4026532777), 2, 'deleted and made again: another namespace');
    assert.equal(await s.namespaceId('', 4026531840), 0);
    assert.equal(await s.namespaceId('qrouter-b', 4026532001), 3, 'an inode used again under another name: another namespace');
    assert.deepEqual([...await s.namespaces()].sort(), [[0, ''], [1, 'qrouter-a'], [2, 'qrouter-a'], [3, 'qrouter-b']]);
    assert.deepEqual([...await s.namespaceInodes()].sort(), [[0, 4026531840], [1, 4026532001], [2, 4026532777], [3, 4026532001]]);
    // ids chosen while the store could not be asked come with a batch, inode too
    await s.write({ ...emptyBatch(), namespaces: [{ id: 5000, name: 'snat-x', inode: 4026532999 }] });
    assert.equal((await s.namespaceInodes()).get(5000), 4026532999);
    assert.equal(await s.namespaceId('snat-x', 4026532999), 5000);
    await s.close();
  });

  it('migrates a schema 1 store (ms) to schema 2 (µs, activity, uncertainty, runs)', async () => {
    const path = join(dir, 'v1.db');
    const db = new Database(path);
    db.exec(SQLITE_MIGRATIONS[0]);
    db.pragma('user_version = 1');
    const cols = 'start, dur, proto, src, sport, dst, dport, nat_src, nat_sport, nat_dst, nat_dport, opkts, obytes, rpkts, rbytes, state, mark, zone, status, ct_id, flags, ns';
    const ins = db.prepare(`INSERT INTO flows (${cols}) VALUES (?, ?, 6, ?, 5000, ?, 443, ?, 40001, NULL, NULL, 1, 2, 3, 4, 7, 0, 0, 0, 9, ?, 0)`);
    const t0 = T0 / 1000;
    ins.run(t0, 1500, addrValue('10.0.0.2'), addrValue('198.51.100.9'), addrValue('203.0.113.1'), 0);
    ins.run(t0 + 5000, 800, addrValue('10.0.0.3'), addrValue('198.51.100.9'), addrValue('203.0.113.1'), 2 | 4);
    db.prepare(`INSERT INTO open_flows (k, ${cols}) VALUES (123, ?, NULL, 17, ?, 1, ?, 2, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL, 0, 0, 0, 5, 0, 0)`)
      .run(t0 + 9000, addrValue('10.0.0.4'), addrValue('198.51.100.9'));
    db.prepare('INSERT INTO marks (t, first_id) VALUES (?, 1)').run(t0);
    db.close();
    const s = new SqliteStore({ path });
    const all = (await s.search(search({}))).sort((a, b) => a.start - b.start);
    assert.equal(all.length, 3);
    assert.deepEqual([all[0].start, all[0].end, all[0].activeEnd, all[0].startErr, all[0].endErr], [T0, T0 + 1_500_000, T0 + 1_500_000, 0, 0]);
    assert.deepEqual([all[1].startErr, all[1].endErr], [UNBOUNDED, 800_000], 'start-unknown and end-estimated: widened honestly');
    assert.deepEqual([all[2].start, all[2].end, all[2].activeEnd], [T0 + 9_000_000, null, null]);
    assert.equal((await s.openFlows())[0].key, 123);
    const runs = await s.runs();
    assert.equal(runs.length, 1, 'the history before the migration counts as covered');
    assert.equal(runs[0].started, T0);
    assert.equal(Number((s.db.prepare('SELECT t FROM marks').get() as { t: number }).t), T0);
    await s.close();
  });

  it('who: SNAT and DNAT, open flows, long flows, --remote and --proto', async () => {
    const s = new SqliteStore({ path: join(dir, 'who.db') });
    const a = rec({ src: '10.0.0.2', start: T0, end: T0 + 5 * S });
    const b = rec({ src: '10.0.0.3', start: T0 + 6 * S, end: T0 + 9 * S }); // the same public port, later
    const c = rec({ src: '10.0.0.4', start: T0 + 2 * S, end: T0 + 3 * S, dst: '198.51.100.10' }); // same port, other remote, meanwhile
    const long = rec({ src: '10.0.0.5', natSport: 40002, start: T0 - 3 * LONG_FLOW_US, end: T0 + S });
    const dnat = rec({ src: '192.0.2.7', sport: 61000, dst: '203.0.113.1', dport: 8022, natSrc: null, natSport: null, natDst: '10.0.0.9', natDport: 22 });
    const open = rec({ src: '10.0.0.6', natSport: 40003, start: T0 + 100, end: null, activeEnd: null });
    // began at an unknown time up to an hour before it was seen, for a few seconds
    const vague = rec({ src: '10.0.0.7', natSport: 40004, start: T0 + 3600 * S, startErr: 3600 * S, end: T0 + 3605 * S });
    const r = await s.write(batch({ closed: [a, b, c, long, dnat, vague], opened: [open] }));
    assert.deepEqual(r, { flows: 6, open: 1, corrected: 0 });
    const pub = { addr: '203.0.113.1', port: 40001 };
    const win = (t: number, w = 0) => ({ since: t - w, until: t + w });
    const who = async (p: typeof pub, w: { since: number; until: number }, proto?: number, remote?: typeof pub) =>
      (await s.who(p, w, proto, remote)).map((f) => f.src).sort();
    assert.deepEqual(await who(pub, win(T0 + S)), ['10.0.0.2']);
    assert.deepEqual(await who(pub, win(T0 + 2.5 * S)), ['10.0.0.2', '10.0.0.4']);
    assert.deepEqual(await who(pub, win(T0 + 2.5 * S), 6, { addr: '198.51.100.10', port: 443 }), ['10.0.0.4']);
    assert.deepEqual(await who(pub, win(T0 + 2.5 * S), 17), []);
    assert.deepEqual(await who(pub, win(T0 + 5.5 * S)), []);
    assert.deepEqual(await who(pub, win(T0 + 5.5 * S, S)), ['10.0.0.2', '10.0.0.3']);
    // a flow that began three hours before the question
    assert.deepEqual(await who({ addr: '203.0.113.1', port: 40002 }, win(T0)), ['10.0.0.5']);
    // an open flow
    const o = await s.who({ addr: '203.0.113.1', port: 40003 }, win(T0 + 50 * S), undefined, undefined);
    assert.equal(o.length, 1);
    assert.equal(o[0].end, null);
    // a flow whose start is uncertain is found where it may have been
    assert.deepEqual(await who({ addr: '203.0.113.1', port: 40004 }, win(T0 + 10 * S)), ['10.0.0.7']);
    assert.deepEqual(await who({ addr: '203.0.113.1', port: 40004 }, win(T0 - 10 * S)), []);
    // the port forward
    const d = await s.who({ addr: '203.0.113.1', port: 8022 }, win(T0 + 10), undefined, undefined);
    assert.equal(d[0].natDst, '10.0.0.9');
    assert.equal(d[0].natDport, 22);
    // without a port: every flow of the public address
    assert.equal((await s.who({ addr: '203.0.113.1' }, win(T0 + 500), undefined, undefined)).length, 5, 'a, long, dnat, open and the vague one');
    // a window far wider than the store: visits only the minutes it holds
    const t = performance.now();
    await s.who(pub, { since: 0, until: T0 * 1.2 }, undefined, undefined);
    assert.ok(performance.now() - t < 5000);
    await s.close();
  });

  it('long flows (by possible extent) are copied to long_flows under their own id, in 256-row INSERTs and one by one', async () => {
    const s = new SqliteStore({ path: join(dir, 'long.db') });
    // 300 rows: one 256-row statement and 44 single ones; every 7th is long, every 11th has a long uncertain start
    const flows = Array.from({ length: 300 }, (_, i) => rec({
      start: T0 + i, end: T0 + i + (i % 7 === 0 ? LONG_FLOW_US : S), startErr: i % 11 === 0 ? LONG_FLOW_US : 0, sport: i,
    }));
    await s.write(batch({ closed: flows }));
    const long = s.db.prepare('SELECT l.id, l.sport FROM long_flows l JOIN flows f ON f.id = l.id AND f.sport = l.sport AND f.start = l.start ORDER BY l.id').all() as Array<{ sport: number }>;
    assert.deepEqual(long.map((r) => r.sport), flows.filter((_, i) => i % 7 === 0 || i % 11 === 0).map((f) => f.sport));
    await s.close();
  });

  it('open flows: written, stopped being active, ended, settled (long ones too), and a settled row corrected', async () => {
    const s = new SqliteStore({ path: join(dir, 'open.db') });
    const a = rec({ end: null, activeEnd: null });
    const b = rec({ end: null, activeEnd: null, src: '10.0.0.3', ctId: 33 });
    const c = rec({ end: null, activeEnd: null, src: '10.0.0.4', start: T0 - LONG_FLOW_US });
    assert.deepEqual(await s.write(batch({ opened: [a, b, c] })), { flows: 0, open: 3, corrected: 0 });
    await s.write(batch({ activity: [{ key: a.key, at: T0 + 300_000 }] }));
    assert.equal((await s.openFlows()).find((r) => r.key === a.key)!.activeEnd, T0 + 300_000);
    const r = await s.write(batch({
      closed: [{ ...a, end: T0 + 500_000, activeEnd: T0 + 300_000 }], unopen: [a.key],
      settled: [{ key: b.key, end: T0 + 900_000, endErr: 400_000, activeEnd: T0 + 900_000, flags: 4 }, { key: c.key, end: T0 + S, endErr: S, activeEnd: T0 + S, flags: 4 },
        { key: 999999, end: T0, endErr: 0, activeEnd: T0, flags: 4 }],
    }));
    assert.deepEqual(r, { flows: 3, open: 0, corrected: 0 }, 'a settle of a row not there adds nothing');
    assert.equal((await s.openFlows()).length, 0);
    const all = await s.search(search({}));
    assert.equal(all.length, 3);
    const settled = all.find((f) => f.src === '10.0.0.3')!;
    assert.deepEqual([settled.end, settled.endErr, settled.flags], [T0 + 900_000, 400_000, 4]);
    assert.equal((s.db.prepare('SELECT count(*) AS n FROM long_flows').get() as { n: number }).n, 1, 'the long settled flow is in long_flows');
    // its DESTROY comes late: the settled row is replaced by the real record
    const real = rec({ ...b, end: T0 + 700_000, activeEnd: T0 + 650_000, flags: 0 });
    assert.deepEqual(await s.write(batch({ corrections: [{ ref: { key: b.key, ns: 0, start: b.start, flags: 4 }, rec: real }] })), { flows: 0, open: 0, corrected: 1 });
    const after = (await s.search(search({}))).filter((f) => f.src === '10.0.0.3');
    assert.equal(after.length, 1);
    assert.deepEqual([after[0].end, after[0].endErr, after[0].flags], [T0 + 700_000, 0, 0]);
    await s.close();
  });

  it('runs and gaps: stamped with batches, read back', async () => {
    const s = new SqliteStore({ path: join(dir, 'runs.db') });
    await s.write(batch({ run: { id: 7, started: T0, alive: T0 + S, stopped: null } }));
    await s.write(batch({ run: { id: 7, started: T0, alive: T0 + 5 * S, stopped: null }, gaps: [{ ns: 2, since: T0 + 2 * S, until: T0 + 3 * S, reason: 'events lost' }] }));
    await s.write(batch({ run: { id: 7, started: T0, alive: T0 + 4 * S, stopped: T0 + 6 * S } }));
    assert.deepEqual(await s.runs(), [{ id: 7, started: T0, alive: T0 + 5 * S, stopped: T0 + 6 * S }]);
    assert.deepEqual(await s.gaps(T0, T0 + 2.5 * S), [{ ns: 2, since: T0 + 2 * S, until: T0 + 3 * S, reason: 'events lost' }]);
    assert.deepEqual(await s.gaps(T0 + 4 * S, T0 + 5 * S), []);
    assert.equal(await s.namespaceId('rtr'), 0);
    assert.equal(await s.namespaceId(''), 1);
    assert.equal(await s.namespaceId('rtr'), 0);
    await s.close();
  });

  it('a batch is applied once: written again (a replay after a crash, a commit whose answer was lost) it changes nothing', async () => {
    const s = new SqliteStore({ path: join(dir, 'once.db') });
    const b = batch({ id: '7-0', closed: [rec({ src: '10.1.0.1' }), rec({ src: '10.1.0.2' })], run: { id: 7, started: T0, alive: T0 + S, stopped: null } });
    assert.equal((await s.write(b)).flows, 2);
    assert.deepEqual(await s.write(b), { flows: 0, open: 0, corrected: 0 });
    assert.equal((await s.write({ ...b, id: '7-1' })).flows, 2, 'another batch with the same rows is another batch');
    const n = await s.search(search({}));
    assert.equal(n.filter((f) => f.src === '10.1.0.1').length, 2);
    await s.close();
  });

  it('search: host or CIDR on any side, IPv6, ports, NAT kind, bytes, time; top hosts, ports, pairs', async () => {
    const s = new SqliteStore({ path: join(dir, 'search.db') });
    const flows = [
      rec({ src: '10.0.0.2', dport: 443, start: T0, end: T0 + 10, origBytes: 100, replyBytes: 900 }),
      rec({ src: '10.0.0.2', dport: 53, proto: 17, start: T0 + 20, end: T0 + 30, origBytes: 50, replyBytes: 50 }),
      rec({ src: '10.0.1.7', dport: 443, start: T0 + 40, end: T0 + 50, origBytes: 10, replyBytes: 10 }),
      rec({ family: 6, src: '2001:db8::2', dst: '2001:db8:ffff::1', natSrc: null, natSport: null, start: T0 + 60, end: T0 + 70 }),
      rec({ src: '192.0.2.7', dst: '203.0.113.1', dport: 8022, natSrc: null, natSport: null, natDst: '10.0.0.9', natDport: 22, start: T0 + 80, end: T0 + 90 }),
      rec({ src: '10.0.0.2', start: T0 - 86400 * S, end: T0 - 86400 * S + 5 }),
    ];
    await s.write(batch({ closed: flows }));
    const srcs = async (o: Partial<FlowSearch>) => (await s.search(search(o))).map((f) => f.src).reverse();
    assert.deepEqual(await srcs({ hosts: [parseCidr('10.0.0.2')] }), ['10.0.0.2', '10.0.0.2', '10.0.0.2']);
    assert.deepEqual(await srcs({ hosts: [parseCidr('10.0.0.0/16')], window: { since: T0, until: T0 + S } }), ['10.0.0.2', '10.0.0.2', '10.0.1.7', '192.0.2.7']);
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
    assert.equal((await s.search(search({ minBytes: 1000, window: { since: T0, until: T0 + S } }))).length, 3);
    assert.equal((await s.search(search({ limit: 2 }))).length, 2);
    const top = await s.top(search({ window: { since: T0, until: T0 + S } }), 'hosts', 'bytes', 3);
    assert.deepEqual(top.slice(0, 2).map((r) => r.key).sort(), ['192.0.2.7', '2001:db8::2']);
    assert.deepEqual(top.map((r) => [r.flows, r.bytes]), [[1, 4500], [1, 4500], [2, 1100]]);
    assert.deepEqual(top[2].key, '10.0.0.2');
    const pairs = await s.top(search({ hosts: [parseCidr('10.0.0.2')], sides: ['src'] }), 'pairs', 'flows', 5);
    assert.deepEqual(pairs.map((r) => [r.key, r.flows]), [['10.0.0.2 198.51.100.9', 3]]);
    const ports = await s.top(search({}), 'ports', 'flows', 1);
    assert.deepEqual(ports.map((r) => [r.key, r.flows]), [['443/tcp', 4]]);
    // a host is an address in a namespace: 10.0.0.5 behind two routers is two rows
    await s.write(batch({ closed: [rec({ src: '10.0.0.5', ns: 3 }), rec({ src: '10.0.0.5', ns: 3 }), rec({ src: '10.0.0.5', ns: 4 })] }));
    const five = await s.top(search({ hosts: [parseCidr('10.0.0.5')], sides: ['src'] }), 'hosts', 'flows', 5);
    assert.deepEqual(five.map((r) => [r.key, r.ns, r.flows]), [['10.0.0.5', 3, 2], ['10.0.0.5', 4, 1]]);
    const names = new Map([[0, ''], [3, 'qrouter-a'], [4, 'qrouter-b']]);
    assert.deepEqual(topJson(five, names).map((r) => r.netns), ['qrouter-a', 'qrouter-b']);
    assert.match(topTable(five, 'hosts', names), /^HOSTS\s+NETNS\s+FLOWS/);
    assert.doesNotMatch(topTable(ports, 'ports', names), /NETNS/);
    await s.close();
  });

  it('the WAL stays small next to the database: checkpointed once past a quarter of it (at least 16 MiB)', async () => {
    const path = join(dir, 'wal.db');
    const s = new SqliteStore({ path });
    let maxWal = 0;
    for (let b = 0; b < 40; b++) {
      await s.write(batch({ closed: Array.from({ length: 5000 }, (_, i) => rec({ start: T0 + b * 5000 + i, sport: i, ctId: b * 5000 + i })) }));
      maxWal = Math.max(maxWal, statSync(path + '-wal').size);
    }
    const main = statSync(path).size;
    // one batch may land on top of the limit before the checkpoint after it
    assert.ok(maxWal <= Math.max(16 * 1048576, main / 4) + 8 * 1048576, `WAL up to ${maxWal} bytes, database ${main}`);
    assert.ok(statSync(path + '-wal').size <= 24 * 1048576, 'cut back after a checkpoint');
    await s.close();
  });

  it('retention deletes flows that ended before the cutoff, in steps', async () => {
    const s = new SqliteStore({ path: join(dir, 'ret.db') });
    const now = Date.now() * 1000;
    const old = Array.from({ length: 50 }, (_, i) => rec({ start: now - 10 * S - i, end: now - 9 * S }));
    await s.write(batch({ closed: old }));
    s.db.prepare('UPDATE marks SET t = t - 5000000').run(); // written five seconds "ago"
    const fresh = [rec({ start: now, end: now + 1 })];
    await s.write(batch({ closed: fresh }));
    const cutoff = now - 2 * S;
    assert.equal(await s.expire(cutoff, 20), 20);
    assert.equal(await s.expire(cutoff, 20), 20);
    assert.equal(await s.expire(cutoff, 20), 10);
    assert.equal(await s.expire(cutoff, 20), 0);
    assert.equal((await s.search(search({ window: { since: 0, until: now + 10 * S } }))).length, 1);
    await s.close();
  });
  it('TCP state changes: stored, searched, retained; each TCP flow joined to the process that held its socket (connect, or the close of one it accepted), its own socket only (not an earlier, a later or another boot\'s), none from softirq changes', async () => {
    const s = new SqliteStore({ path: join(dir, 'tcp.db') });
    let cookie = 100;
    // one socket's changes, as the probe gives them
    const sock = (o: { ns?: number; t: number; local: [string, number]; remote: [string, number]; changes: Array<[number, number, number, string, number?]>; boot?: number; cookie?: number; family?: number }): TcpStateRow[] => {
      const c = o.cookie ?? cookie++;
      return o.changes.map(([old, neu, pid, comm, dt]) => tcpStateRow({
        time: o.t + (dt ?? 0), skaddr: 'ffff', cookie: c, netnsInode: 4026531840, netns: '', pid, tid: pid, comm, family: o.family ?? 2,
        // at connect() the local port is not chosen yet
        saddr: o.local[0], sport: old === 7 && neu === 2 ? 0 : o.local[1], daddr: o.remote[0], dport: o.remote[1],
        oldState: old, newState: neu, deltaNs: undefined, kthread: false, kernelSocket: false,
      } satisfies TcpStateChange, o.ns ?? 0, o.boot ?? 0xb007));
    };
    // this host opens a connection through SNAT: curl's connect(), then softirq changes in other tasks
    const out = rec({ start: T0 + 10, end: T0 + 5 * S, src: '10.0.0.2', sport: 50000, dst: '198.51.100.9', dport: 443, natSrc: '203.0.113.1', natSport: 40001 });
    const outRows = sock({ t: T0, local: ['10.0.0.2', 50000], remote: ['198.51.100.9', 443], changes: [[7, 2, 4242, 'curl'], [2, 1, 0, 'swapper/1', 50], [1, 4, 4242, 'curl', 2 * S], [4, 5, 77, 'ksoftirqd/0', 2 * S + 10]] });
    // a connection to 203.0.113.1:8080 DNATed to this host's 10.0.0.1:80, accepted and closed by nginx (its only holder change is the close)
    const inn = rec({ start: T0, end: T0 + 9 * S, src: '192.0.2.7', sport: 61000, dst: '203.0.113.1', dport: 8080, natSrc: null, natSport: null, natDst: '10.0.0.1', natDport: 80 });
    const innRows = sock({ t: T0 + 20, local: ['10.0.0.1', 80], remote: ['192.0.2.7', 61000], changes: [[12, 3, 0, 'swapper/0'], [3, 1, 0, 'swapper/0', 5], [1, 4, 999, 'nginx', 3 * S]] });
    // a socket the peer reset: only softirq changes, no holder
    const reset = rec({ start: T0, end: T0 + S, src: '10.0.0.2', sport: 50001, dst: '198.51.100.9', dport: 443, natSrc: null, natSport: null });
    const resetRows = sock({ t: T0, local: ['10.0.0.2', 50001], remote: ['198.51.100.9', 443], changes: [[2, 7, 0, 'swapper/0', 10]] });
    // the same tuple twice within one (long, vague) flow: two sockets, two processes
    const reused = rec({ start: T0, startErr: 30 * S, end: T0 + 60 * S, src: '10.0.0.3', sport: 40000, dst: '198.51.100.9', dport: 22, natSrc: null, natSport: null });
    const reusedRows = [
      ...sock({ t: T0, local: ['10.0.0.3', 40000], remote: ['198.51.100.9', 22], changes: [[7, 2, 10, 'ssh'], [2, 1, 0, 'swapper/0', 5]] }),
      ...sock({ t: T0 + 30 * S, local: ['10.0.0.3', 40000], remote: ['198.51.100.9', 22], changes: [[7, 2, 11, 'scp'], [2, 1, 0, 'swapper/0', 5]] }),
    ];
    // the same tuple in another namespace is another connection
    const otherNs = sock({ ns: 3, t: T0, local: ['10.0.0.2', 50000], remote: ['198.51.100.9', 443], changes: [[7, 2, 5555, 'wget'], [2, 1, 0, 'swapper/0', 5]] });
    // and a later socket on the same tuple, after the flow ended
    const later = sock({ t: T0 + 100 * S, local: ['10.0.0.2', 50000], remote: ['198.51.100.9', 443], changes: [[7, 2, 6666, 'later'], [2, 1, 0, 'swapper/0', 5]] });
    const udp = rec({ proto: 17, src: '10.0.0.2', sport: 50000, dst: '198.51.100.9', dport: 443 });
    // a flow open since before the daemon started (its start unbounded), accepted and not yet closed by its server:
    // an earlier boot's socket with the same cookie and tuple, and this boot's earlier socket on the tuple, closed long before, are not its own
    const openOld = rec({ start: T0 + 200 * S, startErr: UNBOUNDED, end: null, activeEnd: null, src: '192.0.2.50', sport: 33000, dst: '10.0.0.1', dport: 22, natSrc: null, natSport: null });
    const oldBoot = sock({ boot: 0x01d, cookie: 9000, t: T0 - 86400 * S, local: ['10.0.0.1', 22], remote: ['192.0.2.50', 33000], changes: [[12, 3, 0, 'swapper/0'], [3, 1, 0, 'swapper/0', 5], [1, 4, 1111, 'oldsshd', 2 * S]] });
    const sameBoot = sock({ t: T0 + 100 * S, local: ['10.0.0.1', 22], remote: ['192.0.2.50', 33000], changes: [[12, 3, 0, 'swapper/0'], [3, 1, 0, 'swapper/0', 5], [1, 4, 2222, 'oldworker', S], [5, 7, 0, 'swapper/0', 2 * S]] });
    const openOwn = sock({ cookie: 9000, t: T0 + 150 * S, local: ['10.0.0.1', 22], remote: ['192.0.2.50', 33000], changes: [[12, 3, 0, 'swapper/0'], [3, 1, 0, 'swapper/0', 5]] });
    // a server on a dual-stack socket ([::]:80): the client's IPv4 address as ::ffff:a.b.c.d; conntrack's flow is IPv4
    const dual = rec({ start: T0 + 300 * S, end: T0 + 301 * S, src: '192.0.2.60', sport: 34000, dst: '10.0.0.1', dport: 80, natSrc: null, natSport: null });
    const dualRows = sock({ family: 10, t: T0 + 300 * S + 20, local: ['::ffff:10.0.0.1', 80], remote: ['::ffff:192.0.2.60', 34000], changes: [[12, 3, 0, 'swapper/0'], [3, 1, 0, 'swapper/0', 5], [1, 4, 3333, 'node', S / 2]] });
    // a flow whose start is known to 20 s only: a socket on its tuple closed 10 s before its start, and its own: both may be it
    const vague = rec({ start: T0 + 500 * S, startErr: 20 * S, end: T0 + 510 * S, src: '10.0.0.5', sport: 41000, dst: '198.51.100.9', dport: 25, natSrc: null, natSport: null });
    const vagueRows = [
      ...sock({ t: T0 + 485 * S, local: ['10.0.0.5', 41000], remote: ['198.51.100.9', 25], changes: [[7, 2, 71, 'prior'], [2, 1, 0, 'swapper/0', 5], [1, 4, 71, 'prior', 4 * S], [5, 7, 0, 'swapper/0', 5 * S]] }),
      ...sock({ t: T0 + 499 * S, local: ['10.0.0.5', 41000], remote: ['198.51.100.9', 25], changes: [[7, 2, 72, 'own'], [2, 1, 0, 'swapper/0', 5]] }),
    ];
    // a long flow whose socket was made before the trail began (no connect seen): its holder's close still names it
    const long = rec({ start: T0 + 600 * S, end: T0 + 700 * S, src: '10.0.0.6', sport: 42000, dst: '198.51.100.9', dport: 993, natSrc: null, natSport: null });
    const longRows = sock({ t: T0 + 650 * S, local: ['10.0.0.6', 42000], remote: ['198.51.100.9', 993], changes: [[1, 8, 0, 'swapper/0'], [8, 9, 81, 'keeper', S], [9, 7, 0, 'swapper/0', 2 * S]] });
    const rows = [...outRows, ...innRows, ...resetRows, ...reusedRows, ...otherNs, ...later, ...oldBoot, ...sameBoot, ...openOwn, ...dualRows, ...vagueRows, ...longRows];
    // the daemon's run, in this boot (0xb007)
    const r = await s.write(batch({ closed: [out, inn, reset, reused, udp, dual, vague, long], opened: [openOld], tcpStates: rows, run: { id: 1, started: T0 - 10 * S, alive: T0 + 800 * S, stopped: null, boot: 0xb007 } }));
    assert.equal(r.tcpStates, rows.length);
    const fl = (x: FlowRecord) => { const { key: _k, family: _f, ...rest } = x; return rest; };
    const who = async (x: FlowRecord) => (await s.flowHolders(fl(x))).holders.map((h) => `${h.pid}/${h.comm} ${h.at}`);
    assert.deepEqual(await who(out), ['4242/curl connect'], 'the original direction: the socket before SNAT; the first holder change of its cookie (sport 0 then)');
    assert.deepEqual(await who(inn), ['999/nginx close'], 'the reply direction: the socket after DNAT; softirq changes name no one');
    assert.deepEqual(await who(reset), [], 'only softirq changes: left empty, not swapper');
    assert.deepEqual(await who(reused), ['10/ssh connect'], 'a tuple reused within the (vague) extent: the socket made after the flow began is another flow\'s');
    assert.deepEqual(await who(udp), [], 'not TCP');
    assert.deepEqual(await who(rec({ ...out, ns: 3 })), ['5555/wget connect'], 'by namespace');
    assert.deepEqual(await who(openOld), [], 'its own socket has no holder change yet: neither another boot\'s socket of the same cookie nor an earlier closed one is taken for it');
    assert.deepEqual(await who(dual), ['3333/node close'], 'a dual-stack socket\'s IPv4-mapped addresses are IPv4');
    const v = await s.flowHolders(fl(vague));
    assert.deepEqual([v.sockets, v.holders.map((h) => h.comm)], [2, ['prior', 'own']], 'two sockets may have been it: both, never one chosen');
    assert.equal(holdersText({ holders: v.holders, sockets: v.sockets, unnamed: v.unnamed, incomplete: false }), 'ambiguous, 2 sockets on this tuple then: 71/prior (connect), 72/own (connect)');
    assert.deepEqual(await who(long), ['81/keeper close']);
    assert.equal((await s.flowHolders(fl(out))).sockets, 1);
    assert.equal((await s.tcpStates({ since: 0, until: T0 * 2, hosts: [parseCidr('192.0.2.60')], ports: [], pids: [], comms: [], states: [] })).length, 3, 'and searched as IPv4');

    // search: by time, host, port, pid, comm, state; newest first
    const q = { since: 0, until: T0 * 2, hosts: [], ports: [], pids: [], comms: [], states: [] };
    assert.equal((await s.tcpStates(q)).length, rows.length);
    assert.deepEqual((await s.tcpStates({ ...q, comms: ['curl'] })).map((x) => x.newState), [4, 2]);
    assert.deepEqual((await s.tcpStates({ ...q, pids: [999] })).map((x) => [x.src, x.sport, x.dst, x.dport, x.holder]), [['10.0.0.1', 80, '192.0.2.7', 61000, true]]);
    assert.equal((await s.tcpStates({ ...q, ports: [22] })).length, 4 + oldBoot.length + sameBoot.length + openOwn.length);
    assert.equal((await s.tcpStates({ ...q, hosts: [parseCidr('192.0.2.0/25')] })).length, 3 + oldBoot.length + sameBoot.length + openOwn.length + dualRows.length);
    assert.equal((await s.tcpStates({ ...q, states: [1], since: T0 + 20 * S })).length, rows.filter((x) => x.newState === 1 && x.t >= T0 + 20 * S).length);
    const newest = rows.reduce((a, b) => (b.t > a.t ? b : a));
    assert.equal((await s.tcpStates({ ...q, limit: 1 }))[0].comm, newest.comm, 'the newest');
    const first = (await s.tcpStates({ ...q, pids: [4242], states: [2] }))[0];
    assert.deepEqual([first.kthread, first.holder, first.spanUs, first.cookie, first.netns], [false, true, null, outRows[0].cookie, 4026531840]);
    // a gap in the trail of changes (the ring buffer was full) within a flow's extent: its answer may be incomplete, and says so
    await s.write(batch({ gaps: [{ ns: 0, since: T0 + 3 * S, until: T0 + 4 * S, reason: '5 TCP state changes lost', kind: 'tcpstates' },
      { ns: -1, since: T0 + 50 * S, until: T0 + 51 * S, reason: '1 TCP state change lost', kind: 'tcpstates' }] }));
    const h = await flowHolders(s, [fl(out), fl(reset), fl(rec({ ...out, ns: 3 })), fl(reused), fl(udp)]);
    assert.deepEqual(h.map((x) => x.incomplete), [true, false, false, true, false], 'its namespace or every one (-1), within the extent; TCP only');
    assert.deepEqual(h[0].holders.map((x) => x.pid), [4242]);
    // retention
    const cut = T0 + 50 * S;
    assert.equal(await s.expireTcpStates(cut, 1000), rows.filter((x) => x.t < cut).length);
    assert.equal((await s.tcpStates(q)).length, rows.filter((x) => x.t >= cut).length);
    await s.close();
  });

});

describe('who: verdicts over active intervals', () => {
  const q = sec(T0 + 10 * S);
  it('exact: one inside host active in the interval; one merely lingering there does not count', () => {
    const a = flow({ src: '10.0.0.2', start: T0, end: T0 + 12 * S, activeEnd: T0 + 10.5 * S });
    const tw = flow({ src: '10.0.0.3', start: T0, end: T0 + 130 * S, activeEnd: T0 + 9.9 * S }); // in TIME_WAIT from 9.9 s
    const ans = judge([a, tw], q);
    assert.equal(ans.verdict, 'exact');
    assert.deepEqual(ans.inside, ['10.0.0.2']);
    assert.deepEqual(ans.lingering, [tw]);
  });
  it('a host is an address in a namespace: the same inside address of two routers is two hosts, ambiguous', () => {
    const a = flow({ src: '10.0.0.5', start: T0, end: T0 + 12 * S, ns: 3 });
    const b = flow({ src: '10.0.0.5', start: T0 + 5 * S, end: T0 + 15 * S, ns: 4 });
    const names = new Map([[0, ''], [3, 'qrouter-a'], [4, 'qrouter-b']]);
    const ans = judge([a, b], q, [], undefined, (id) => names.get(id) ?? '');
    assert.equal(ans.verdict, 'ambiguous');
    assert.deepEqual(ans.inside, ['10.0.0.5', '10.0.0.5']);
    assert.deepEqual(ans.hosts, [{ addr: '10.0.0.5', netns: 'qrouter-a', ns: 3 }, { addr: '10.0.0.5', netns: 'qrouter-b', ns: 4 }]);
    // one namespace's flows only (--netns): exact, and it says which
    const one = judge([a], q, [], undefined, (id) => names.get(id) ?? '');
    assert.equal(one.verdict, 'exact');
    assert.deepEqual(one.hosts, [{ addr: '10.0.0.5', netns: 'qrouter-a', ns: 3 }]);
    // without their names too: two namespaces are two hosts
    assert.equal(judge([a, b], q).verdict, 'ambiguous', 'two flows of one address are one host only within one namespace');
    // one name, two namespaces (deleted and made again): two hosts
    const again = new Map([[3, 'qrouter-a'], [4, 'qrouter-a']]);
    assert.equal(judge([a, b], q, [], undefined, (id) => again.get(id) ?? '').verdict, 'ambiguous');
  });
  it('the precision asked matters: the whole second is ambiguous, the millisecond is not', () => {
    const a = flow({ src: '10.0.0.2', start: T0, end: T0 + 10.3 * S, activeEnd: T0 + 10.2 * S });
    const b = flow({ src: '10.0.0.3', start: T0 + 10.25 * S, end: T0 + 20 * S, activeEnd: T0 + 19 * S });
    assert.equal(judge([a, b], q).verdict, 'ambiguous');
    assert.deepEqual(judge([a, b], q).inside.sort(), ['10.0.0.2', '10.0.0.3']);
    assert.deepEqual(judge([a, b], { lo: T0 + 10.1 * S, hi: T0 + 10.1 * S + 1000 }).inside, ['10.0.0.2']);
    assert.deepEqual(judge([a, b], { lo: T0 + 10.3 * S, hi: T0 + 10.3 * S + 1000 }).inside, ['10.0.0.3']);
    assert.deepEqual(judge([a, b], { lo: T0 + 10.2 * S + 1, hi: T0 + 10.2 * S + 2 }).verdict, 'nearest', 'the µs between them');
  });
  it('an estimated start or end widens the interval: ambiguous, never a wrong exact', () => {
    const known = flow({ src: '10.0.0.2', start: T0 + 9 * S, end: T0 + 11 * S });
    const settled = flow({ src: '10.0.0.3', start: T0, end: T0 + 10.5 * S, endErr: 8 * S, flags: 4 }); // ended between 2.5 s and 10.5 s
    const vague = flow({ src: '10.0.0.4', start: T0 + 12 * S, startErr: 5 * S, end: T0 + 13 * S, flags: 3 });
    assert.equal(judge([known, settled], q).verdict, 'ambiguous');
    assert.equal(judge([known, vague], q).verdict, 'ambiguous');
    // later, only the vague one may have been: that is the answer (not a wrong one)
    assert.deepEqual(judge([known, vague], sec(T0 + 12.5 * S)).inside, ['10.0.0.4']);
  });
  it('incomplete: one host, but the trail has a gap then; nearest; none; DNAT names the inside server', () => {
    const a = flow({ src: '10.0.0.2', start: T0, end: T0 + 12 * S });
    assert.equal(judge([a], q, [{ ns: 0, since: T0 + 10.5 * S, until: T0 + 11 * S, reason: 'events lost' }]).verdict, 'incomplete');
    const c = flow({ src: '10.0.0.2', start: T0 + 20 * S, end: T0 + 21 * S });
    const ans = judge([c], q);
    assert.equal(ans.verdict, 'nearest');
    assert.equal(ans.flows[0], c);
    assert.equal(judge([], q).verdict, 'none');
    const dn = flow({ natSrc: null, natSport: null, natDst: '10.0.0.9', natDport: 22, start: T0, end: T0 + 20 * S });
    assert.deepEqual(judge([dn], q).inside, ['10.0.0.9']);
    const open = flow({ src: '10.0.0.5', start: T0, end: null, activeEnd: null });
    assert.equal(judge([open], sec(T0 + 1000 * S)).verdict, 'exact');
  });

  it('a port forward that is also masqueraded (both translations): asked by its public address, it names the inside server, not the client', () => {
    // 203.0.113.5 -> 198.51.100.7:443, forwarded to 10.0.0.10:8443 and masqueraded to the router's 10.0.0.1
    const both = flow({ src: '203.0.113.5', sport: 51000, dst: '198.51.100.7', dport: 443, natDst: '10.0.0.10', natDport: 8443, natSrc: '10.0.0.1', natSport: 51000, start: T0, end: T0 + 20 * S });
    assert.deepEqual(judge([both], q, [], '198.51.100.7').inside, ['10.0.0.10']);
    // asked by the masquerading address, it is the client that was translated to it
    assert.deepEqual(judge([both], q, [], '10.0.0.1').inside, ['203.0.113.5']);
  });
  it('coverage: before the first run, between runs and after the last one are gaps; a running daemon covers up to now', () => {
    const runs = [{ id: 1, started: T0, alive: T0 + 90 * S, stopped: T0 + 100 * S }, { id: 2, started: T0 + 200 * S, alive: T0 + 290 * S, stopped: null }];
    assert.match(coverageGaps(runs, [], sec(T0 - 5 * S), T0 + 300 * S)[0].reason, /before the trail begins/);
    assert.deepEqual(coverageGaps(runs, [], sec(T0 + 50 * S), T0 + 300 * S), []);
    assert.match(coverageGaps(runs, [], sec(T0 + 150 * S), T0 + 300 * S)[0].reason, /not running/);
    assert.deepEqual(coverageGaps(runs, [], sec(T0 + 295 * S), T0 + 300 * S), [], 'alive 10 s ago: running');
    assert.equal(coverageGaps(runs, [], sec(T0 + 295 * S), T0 + 600 * S).length, 1, 'not heard of since: not running');
    assert.equal(coverageGaps([], [], q, T0).length, 1);
    assert.equal(coverageGaps(runs, [{ ns: 1, since: T0 + 50.5 * S, until: T0 + 51 * S, reason: 'events lost' }], sec(T0 + 50 * S), T0 + 300 * S).length, 1);
  });
});

describe('store writer', () => {
  // the directories the tests make, removed at the end whatever happened
  const made: string[] = [];
  const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'conntrail-spool-')); made.push(d); return d; };
  after(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });
  const wopts = (dir: string, msgs: string[], o: object = {}) => ({
    flushMs: 60000, maxBatch: 1000, retentionMs: 0, spoolDir: join(dir, 'spool'), warn: (m: string) => msgs.push(m), info: (m: string) => msgs.push(m), ...o,
  });

  it('a store that refuses writes: batches go to the spool, are replayed in order, nothing lost, counted as rows', async () => {
    const dir = tmp();
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
    const w = new StoreWriter(store, wopts(dir, msgs));
    await w.start();
    let t = T0;
    const flows: FlowRecord[] = [];
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 10; j++) {
        const r = rec({ key: w.newKey(), start: t++, end: null });
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
    assert.equal(st.written, 50, 'rows, not requests');
    assert.equal(readdirSync(join(dir, 'spool')).length, 0);
    const back = new SqliteStore({ path: join(dir, 'flows.db'), readonly: true });
    assert.equal((await back.search(search({}))).length, 50);
    assert.equal((await back.openFlows()).length, 0);
    assert.equal((await back.runs()).length, 1);
    assert.ok((await back.runs())[0].stopped !== null);
    await back.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('at start, the current table is the store\'s as the spool changes it; new keys are above every key there', async () => {
    const dir = tmp();
    const path = join(dir, 'flows.db');
    const msgs: string[] = [];
    const store = new SqliteStore({ path });
    await store.write(batch({ opened: [rec({ key: 10, end: null }), rec({ key: 11, end: null })], run: { id: 1, started: T0, alive: T0 + S, stopped: null } }));
    store.write = async () => { throw new Error('disk full'); };
    const w = new StoreWriter(store, wopts(dir, msgs, { now: () => T0 + 5 }));
    await w.start();
    w.closed(rec({ key: 10 }));
    w.opened(rec({ key: 5_000_000_000, end: null }));
    w.flush();
    await new Promise((r) => setTimeout(r, 20));
    await w.close(100);
    assert.ok(readdirSync(join(dir, 'spool')).length > 0);
    const w2 = new StoreWriter(new SqliteStore({ path }), wopts(dir, msgs, { now: () => T0 + 7 }));
    const { open, previous } = await w2.start();
    assert.deepEqual(open.map((r) => r.key).sort((a, b) => a - b), [11, 5_000_000_000]);
    assert.equal(w2.newKey(), Math.max(5_000_000_001, T0 + 7));
    assert.equal(previous?.id, T0 + 5, 'the spooled run is the previous one');
    await w2.close();
    const back = new SqliteStore({ path, readonly: true });
    assert.deepEqual((await back.openFlows()).map((r) => r.key).sort((a, b) => a - b), [11, 5_000_000_000]);
    assert.equal((await back.search(search({}))).filter((f) => f.end !== null).length, 1);
    await back.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('neither store nor spool takes batches: memory is bounded (the writer is full), and it drains when they do', async () => {
    const dir = tmp();
    const store = new SqliteStore({ path: join(dir, 'flows.db') });
    let refuse = true;
    const real = store.write.bind(store);
    const order: number[] = [];
    store.write = async (b) => {
      if (refuse) throw new Error('disk full');
      for (const r of b.closed) order.push(r.start);
      return real(b);
    };
    const msgs: string[] = [];
    const spool = join(dir, 'spool');
    const w = new StoreWriter(store, wopts(dir, msgs, { maxQueued: 1000 }));
    await w.start();
    let drained = 0;
    w.onDrain(() => { drained++; });
    rmSync(spool, { recursive: true }); // the disk refuses every spool file from now on
    const starts: number[] = [];
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 300; j++) { const r = rec({ start: T0 + i * 1000 + j }); starts.push(r.start); w.closed(r); }
      w.flush();
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(msgs.some((m) => /cannot spool \(.*ENOENT/.test(m)), msgs.join('\n'));
    assert.equal(w.stats().queued, 1200);
    assert.equal(w.full(), true);
    assert.equal(w.stats().full, 1);
    refuse = false;
    await w.close(20000);
    assert.deepEqual(order, starts);
    assert.equal(w.stats().queued, 0);
    assert.equal(drained, 1);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('times and durations', () => {
  it('parses what the command line accepts at the precision written, and names what it does not', () => {
    assert.equal(parseDuration('90d'), 90 * 86400000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDurationMicros('250us'), 250);
    assert.throws(() => parseDuration('90 days'), /"90 days" is not a duration/);
    assert.throws(() => parseDurationMicros('1000000d'), /longer than 100 years/);
    assert.deepEqual(parseTimeInterval('2026-11-23T12:00:00Z'), { lo: T0, hi: T0 + S });
    assert.deepEqual(parseTimeInterval('2026-11-23T12:00:00.250Z'), { lo: T0 + 250_000, hi: T0 + 251_000 });
    assert.deepEqual(parseTimeInterval('2026-11-23T12:00:00.250001Z'), { lo: T0 + 250_001, hi: T0 + 250_002 });
    assert.deepEqual(parseTimeInterval('2026-11-23T12:00:00.2500011Z'), { lo: T0 + 250_001, hi: T0 + 250_002 });
    assert.deepEqual(parseTimeInterval('2026-11-23T12:00Z'), { lo: T0, hi: T0 + 60 * S });
    assert.deepEqual(parseTimeInterval('@1795435200.5'), { lo: 1795435200_500_000, hi: 1795435200_600_000 });
    assert.deepEqual(parseTimeInterval('@1795435200'), { lo: 1795435200_000_000, hi: 1795435201_000_000 });
    assert.deepEqual(parseTimeInterval('now', 5000), { lo: 5000, hi: 5001 });
    assert.equal(parseTime('-10m', 3600 * S), 3000 * S);
    assert.equal(parseTime('2026-11-23T14:00:00+02:00'), T0);
    const day = parseTimeInterval('2026-11-23');
    assert.ok(day.hi - day.lo >= 23 * 3600 * S && day.hi - day.lo <= 25 * 3600 * S);
    assert.throws(() => parseTime('yesterday'), /"yesterday" is not a time/);
    assert.throws(() => parseTime('2026-02-31T00:00:00Z'), /not a time/);
    assert.throws(() => parseTime('@99999999999999999999'), /not a time|outside/);
    assert.throws(() => parseTime('2300-01-01T00:00:00Z'), /outside 1970-01-01 to 2200-01-01/);
  });
});
