// The flow store, measured: ingest rate into SQLite (batched transactions of
// the daemon's batch size), size per flow including indexes, and query
// latency of `who` and of a one-host-one-day `flows` search over a store of
// N flows. The data generator is a carrier-grade NAT: inside hosts in
// 100.64.0.0/16, 4 public addresses, ports 1024-65535, remote hosts from a
// pool of 200k, TCP 75 % / UDP 22 % / ICMP 3 %, durations mostly under a
// minute with a long tail (0.3 % over an hour), spread over `days`.
// usage: node dist/bench/store.js [flows=10000000] [days=2] [db=/tmp/conntrail-bench.db]
//        node dist/bench/store.js --table [flows=1000000]   (flow table + writer memory)
import { rmSync, statSync } from 'node:fs';
import { SqliteStore } from '../src/store/sqlite.js';
import { rowToFlow } from '../src/store/rows.js';
import { ALL_SIDES, type FlowSearch } from '../src/store/sql.js';
import type { FlowRecord } from '../src/records/flow.js';
import { emptyBatch } from '../src/store/store.js';
import { parseCidr } from '../src/util/ip.js';
import { judge } from '../src/cli/who.js';

// mulberry32: a small generator without the correlations of a plain LCG
// (which repeated public ports and durations in long runs)
let seed = 12345;
const rnd = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const int = (n: number) => Math.floor(rnd() * n);
const PUBLIC = ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4'];
const insideText: string[] = [];
for (let i = 0; i < 65536; i++) insideText.push(`100.64.${i >> 8}.${i & 255}`);
const remoteText: string[] = [];
for (let i = 0; i < 200000; i++) remoteText.push(`${1 + int(223)}.${int(256)}.${int(256)}.${1 + int(254)}`);
const HOSTS = 20000; // active inside hosts

/** µs */
function duration(): number {
  const r = rnd();
  if (r < 0.003) return (3600_000 + int(6 * 3600_000)) * 1000;
  if (r < 0.2) return (60_000 + int(600_000)) * 1000;
  return (50 + int(30_000)) * 1000 + int(1000);
}

function makeFlow(i: number, start: number): FlowRecord {
  const p = rnd();
  const proto = p < 0.75 ? 6 : p < 0.97 ? 17 : 1;
  const end = start + duration();
  const h = int(HOSTS);
  return {
    key: i, start, startErr: 0, end, endErr: 0, activeEnd: proto === 6 ? end - 120_000_000 > start ? end - 120_000_000 : end : end,
    family: 4, proto, src: insideText[h], sport: proto === 1 ? int(65536) : 32768 + int(28000),
    dst: remoteText[int(remoteText.length)], dport: proto === 1 ? 8 * 256 : proto === 6 ? [443, 80, 22, 25, 993][int(5)] : [53, 443, 123][int(3)],
    natSrc: PUBLIC[h % 4], natSport: 1024 + int(64512), natDst: null, natDport: null,
    origPackets: 1 + int(200), origBytes: 60 + int(100000), replyPackets: int(300), replyBytes: int(1000000),
    state: proto === 6 ? 7 : null, mark: 0, zone: 0, status: 0x19e, ctId: i >>> 0, flags: 0, ns: 0,
  };
}

function pct(a: number[], p: number): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function storeBench(total: number, days: number, path: string): Promise<void> {
  for (const f of [path, path + '-wal', path + '-shm']) rmSync(f, { force: true });
  const store = new SqliteStore({ path });
  const t0 = Date.UTC(2026, 10, 1) * 1000;
  const span = days * 86400_000_000;
  const batchSize = Number(process.env.BATCH ?? 10000);
  const samples: FlowRecord[] = [];
  let writeMs = 0;
  const w0 = performance.now();
  for (let i = 0; i < total; i += batchSize) {
    const closed: FlowRecord[] = [];
    for (let j = 0; j < batchSize && i + j < total; j++) {
      // flows arrive in about the order they end
      const f = makeFlow(i + j, t0 + Math.floor(((i + j) / total) * span) - int(30_000_000));
      closed.push(f);
      if (int(total / 2000) === 0) samples.push(f);
    }
    const b0 = performance.now();
    store.writeSync({ ...emptyBatch(), closed });
    writeMs += performance.now() - b0;
    if ((i / batchSize) % 100 === 0) process.stderr.write(`\r${i} flows, ${Math.round((i / writeMs) * 1000)} flows/s`);
  }
  process.stderr.write('\n');
  const wall = performance.now() - w0;
  store.db.pragma('wal_checkpoint(TRUNCATE)');
  const pages = Number(store.db.pragma('page_count', { simple: true })) * Number(store.db.pragma('page_size', { simple: true }));
  const size = statSync(path).size;
  console.log(`flows: ${total} over ${days} day(s); batches of ${batchSize}`);
  console.log(`ingest: ${Math.round((total / writeMs) * 1000)} flows/s in the store's transactions (${(writeMs / 1000).toFixed(1)} s), ${Math.round((total / wall) * 1000)} flows/s with generation`);
  console.log(`size: ${size} bytes file, ${(pages / total).toFixed(1)} bytes/flow including indexes`);
  await store.close();
  await queryBench(path, samples, t0, days);
}

/** Query latency over an existing store; samples: flows known to be in it. */
async function queryBench(path: string, samples: FlowRecord[], t0: number, days: number): Promise<void> {
  const ro = new SqliteStore({ path, readonly: true });
  if (!samples.length) {
    // --query: sample the store itself
    const n = Number((ro.db.prepare('SELECT max(id) AS n FROM flows').get() as { n: number }).n);
    for (let k = 0; k < 2000; k++) {
      const row = ro.db.prepare('SELECT * FROM flows WHERE id = ?').get(1 + int(n)) as Record<string, unknown> | undefined;
      if (row) samples.push({ ...rowToFlow(row), key: 0, family: 4 });
    }
  }
  // who: a sampled flow's public address and port, the second in the middle of it
  const whoMs: number[] = [];
  const verdicts: Record<string, number> = {};
  let right = 0;
  for (const f of samples.slice(0, 2000)) {
    const mid = f.start + Math.floor(((f.activeEnd ?? f.end!) - f.start) / 2);
    const q = { lo: mid - (mid % 1_000_000), hi: mid - (mid % 1_000_000) + 1_000_000 };
    const q0 = performance.now();
    const rows = await ro.who({ addr: f.natSrc!, port: f.natSport! }, { since: q.lo - 60_000_000, until: q.hi + 60_000_000 }, undefined, undefined);
    whoMs.push(performance.now() - q0);
    const a = judge(rows, q);
    verdicts[a.verdict] = (verdicts[a.verdict] ?? 0) + 1;
    if (a.inside.includes(f.src)) right++;
  }
  if (process.env.CT_SLOW) console.log('slowest who (query #, ms):', whoMs.map((m, i) => [i, +m.toFixed(1)]).sort((a, b) => b[1] - a[1]).slice(0, 12).map((x) => x.join(':')).join(' '));
  console.log(`who: ${whoMs.length} queries, p50 ${pct(whoMs, 50).toFixed(2)} ms, p99 ${pct(whoMs, 99).toFixed(2)} ms, max ${Math.max(...whoMs).toFixed(2)} ms; ` +
    `the sampled host named in ${right}/${whoMs.length}; verdicts ${JSON.stringify(verdicts)} (random data reuses ports: ambiguity is real here)`);
  // flows: one inside host over one day
  const flowMs: number[] = [];
  let rowsTotal = 0;
  for (let k = 0; k < 200; k++) {
    const h = insideText[int(HOSTS)];
    const since = t0 + int(Math.max(1, days - 1)) * 86400_000_000;
    const s: FlowSearch = { window: { since, until: since + 86400_000_000 }, hosts: [parseCidr(h)], sides: ALL_SIDES, ports: [], protos: [], nat: [], limit: 100000 };
    const q0 = performance.now();
    rowsTotal += (await ro.search(s)).length;
    flowMs.push(performance.now() - q0);
  }
  console.log(`flows --host H over one day: 200 queries, ${Math.round(rowsTotal / 200)} flows each on average, p50 ${pct(flowMs, 50).toFixed(2)} ms, p99 ${pct(flowMs, 99).toFixed(2)} ms`);
  await ro.close();
}

async function tableBench(total: number): Promise<void> {
  const { FlowTable } = await import('../src/pipeline/flow-table.js');
  const { StoreWriter } = await import('../src/store/writer.js');
  const { decodeFixture } = await import('../test/helpers/fixtures.js');
  const path = '/tmp/conntrail-bench-table.db';
  for (const f of [path, path + '-wal', path + '-shm']) rmSync(f, { force: true });
  const store = new SqliteStore({ path });
  const writer = new StoreWriter(store, { flushMs: 1000, maxBatch: 10000, maxQueued: 10_000_000, retentionMs: 0, spoolDir: '', warn: console.error, info: () => undefined });
  await writer.start();
  const table = new FlowTable({ ns: 0, out: writer });
  const ev = { ...decodeFixture('ipv4-masq-acct-ts').find((e) => e.type === 'NEW')! };
  const rss0 = process.memoryUsage().rss;
  const w0 = performance.now();
  for (let i = 1; i <= total; i++) {
    ev.id = i;
    ev.orig = { ...ev.orig, sport: 1024 + (i % 60000) };
    table.handle(ev);
    if (i % 10000 === 0) await new Promise((r) => setImmediate(r));
  }
  writer.flush();
  await writer.close();
  const ms = performance.now() - w0;
  const rss = process.memoryUsage().rss;
  console.log(`flow table: ${table.size} open flows (NEW events in, current-table rows written to SQLite) in ${(ms / 1000).toFixed(1)} s; ` +
    `RSS ${Math.round(rss0 / 1048576)} -> ${Math.round(rss / 1048576)} MiB`);
}

const args = process.argv.slice(2);
if (args[0] === '--table') await tableBench(Number(args[1] ?? 1_000_000));
else if (args[0] === '--query') await queryBench(args[1] ?? '/tmp/conntrail-bench.db', [], Date.UTC(2026, 10, 1) * 1000, Number(args[2] ?? 2));
else await storeBench(Number(args[0] ?? 10_000_000), Number(args[1] ?? 2), args[2] ?? '/tmp/conntrail-bench.db');
