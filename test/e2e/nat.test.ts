// NAT attribution against ground truth: three inside hosts behind a router
// that masquerades into 20 public ports (so public ports are reused every
// second or two, and shared at once by flows to different remotes), plus a
// DNAT port forward. The servers log what they saw, to the microsecond (the
// public address and port, and which inside host the client said it was);
// then `conntrail who` is asked about sampled (public address, port, time)
// questions at 1 s, 1 ms and 1 µs precision, with and without --remote:
// wherever the ground truth has one inside host active in the interval the
// answer must be `exact` with that host, and no answer may ever be `exact`
// with another.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { reapExpired } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';
import type { PlanItem, SeenLine } from '../helpers/natpeer.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

const PEER = join(process.cwd(), 'dist', 'test', 'helpers', 'natpeer.js');
const HOSTS = ['10.99.1.2', '10.99.1.3', '10.99.1.4'];
const PUB = ADDR.rtrOut;
const DNAT_INSIDE = '10.99.1.4';
const TCP_PORTS = [5001, 5002, 5003, 5004];
const UDP_PORTS = [5005, 5006];
/** the processes' clocks (the same system clock, read a little apart) */
const MARGIN_US = 2_000;

function rules(t: Topology): string {
  const out = `${t.prefix}r1`;
  return `table inet ctt {
  chain prerouting { type nat hook prerouting priority -100; iifname "${out}" ip daddr ${PUB} tcp dport 8022 dnat ip to ${DNAT_INSIDE}:2222; }
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "${out}" meta l4proto { tcp, udp } masquerade to :40000-40019
    oifname "${out}" masquerade
  }
}`;
}

/** A random but repeatable plan (seeded): about ten flows a second for 24 s. */
function makePlan(seed: number): { plan: PlanItem[]; dnat: PlanItem[] } {
  let x = seed;
  const rnd = () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648; };
  const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)];
  const plan: PlanItem[] = [];
  for (let i = 0; i < 240; i++) {
    const tcp = rnd() < 0.7;
    plan.push({
      id: `c${i}`, host: pick(HOSTS), proto: tcp ? 'tcp' : 'udp', dst: ADDR.srv, dport: pick(tcp ? TCP_PORTS : UDP_PORTS),
      at: i * 100 + Math.floor(rnd() * 80), hold: 300 + Math.floor(rnd() * 1200),
    });
  }
  // DNAT: the outside host connects to the forwarded port
  const dnat: PlanItem[] = [];
  for (let i = 0; i < 3; i++) dnat.push({ id: `d${i}`, host: ADDR.srv, proto: 'tcp', dst: PUB, dport: 8022, at: 5000 + i * 1500, hold: 800 });
  return { plan, dnat };
}

/**
 * A connection as the servers saw it: [t0, t1] is when it was certainly
 * active (the first data to the client's FIN, or the first to the last
 * datagram); with the clients' lines, [w0, w1] is when it may have been
 * (from before the client sent anything to after nothing more could pass).
 */
interface Conn { id: string; host: string; proto: 'tcp' | 'udp'; lport: number; peer: string; pport: number; t0: number; t1: number | null; w0: number; w1: number | null }

function conns(lines: string, clients = ''): Conn[] {
  const m = new Map<string, Conn>();
  for (const l of lines.split('\n').filter(Boolean)) {
    const e = JSON.parse(l) as SeenLine | { ev: string };
    if (e.ev === 'open') { const s = e as SeenLine; m.set(s.id, { id: s.id, host: s.host, proto: s.proto, lport: s.lport, peer: s.peer, pport: s.pport, t0: s.t, t1: null, w0: s.t, w1: null }); }
    if (e.ev === 'close') { const s = e as SeenLine; const c = m.get(s.id); if (c) { c.t1 = s.t; c.w1 ??= s.t; } }
  }
  for (const l of clients.split('\n').filter((x) => x.startsWith('{'))) {
    const e = JSON.parse(l) as { ev: string; id: string; t: number };
    const c = m.get(e.id);
    if (c && e.ev === 'start') c.w0 = Math.min(c.w0, e.t);
    if (c && e.ev === 'closed') c.w1 = Math.max(c.w1 ?? e.t, e.t);
  }
  return [...m.values()];
}

interface WhoJson { verdict: string; inside: string[]; flows: Array<{ open: boolean; inside: string; public: string | null; remote: string }> }

function who(store: string[], args: string[]): WhoJson {
  const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'who', ...args, ...store, '--json'], { encoding: 'utf8' });
  assert.ok(r.status === 0 || r.status === 1, `who ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as WhoJson;
}

/** The µs as ISO 8601 with `digits` decimals (0: the second, 3: the ms, 6: the µs): what an abuse report would say. */
function isoAt(us: number, digits: 0 | 3 | 6): string {
  const sec = Math.floor(us / 1e6);
  const head = new Date(sec * 1000).toISOString().slice(0, 19);
  if (!digits) return head + 'Z';
  const frac = String(us - sec * 1e6).padStart(6, '0').slice(0, digits);
  return `${head}.${frac}Z`;
}

async function scenario(t: Topology, dir: string, storeToml: string, storeArgs: string[], seed: number): Promise<void> {
  const conf = join(dir, `nat-${seed}.toml`);
  // the daemon runs in the test's own namespace and reads the router's
  writeFileSync(conf, `[[source]]\nname = "rtr"\nnetns = "${t.rtr}"\nenable_timestamps = true\nenable_accounting = true\n\n[store]\nflush_interval_ms = 100\n${storeToml}\n`);
  const d = t.spawn('', [...CONNTRAIL, 'run', '--config', conf]);
  const dOut = collect(d);
  assert.ok(await waitSubscribed(d.pid!, 10000, t.rtr), dOut.err());
  const srv = t.spawn(t.srv, [process.execPath, PEER, 'server', JSON.stringify(TCP_PORTS), JSON.stringify(UDP_PORTS)]);
  const inside = t.spawn(t.cli, [process.execPath, PEER, 'server', '[2222]', '[]']);
  const [srvOut, insideOut] = [srv, inside].map(collect);
  try {
    assert.ok(await waitFor(() => srvOut.out().includes('ready') && insideOut.out().includes('ready')));
    assert.ok(await waitFor(() => /start-up sync done/.test(dOut.err())), dOut.err());
    // the run began before this moment: the first connection must fall in a
    // later second, so that a question to the second about it is wholly
    // inside the trail (a second the daemon started in is, rightly, incomplete)
    const ready = Math.floor(Date.now() / 1000);
    assert.ok(await waitFor(() => Math.floor(Date.now() / 1000) > ready, 3000));
    const { plan, dnat } = makePlan(seed);
    const cl = t.spawn(t.cli, [process.execPath, PEER, 'client', JSON.stringify(plan)]);
    const out = t.spawn(t.srv, [process.execPath, PEER, 'client', JSON.stringify(dnat)]);
    const [clOut, outOut] = [cl, out].map(collect);
    await Promise.all([clOut.done, outOut.done]);
    assert.doesNotMatch(clOut.out() + outOut.out(), /"ev":"error"/, 'every planned connection was made');
    // connections still open while `who` is asked (the current table)
    const open: PlanItem[] = [0, 1].map((i) => ({ id: `o${i}`, host: HOSTS[1], proto: 'tcp', dst: ADDR.srv, dport: 5002, at: i * 100, hold: 600_000 }));
    const holder = t.spawn(t.cli, [process.execPath, PEER, 'client', JSON.stringify(open)]);
    collect(holder);
    await reapExpired(t);
    const seen = [...conns(srvOut.out(), clOut.out() + outOut.out()), ...conns(insideOut.out(), outOut.out())];
    const closed = seen.filter((c) => c.t1 !== null);
    assert.equal(closed.length, plan.length + dnat.length, 'the servers saw every connection end');
    assert.ok(await waitFor(() => conns(srvOut.out()).filter((c) => c.t1 === null).length === 2), 'the held connections are open');
    // every ended flow is in the store (NEW and DESTROY both seen), and the open ones too
    const stored = await waitFor(() => {
      t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true }); // reap what has expired: its DESTROY comes sooner
      const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', ...storeArgs, '--json', '--limit', '0', '--proto', 'tcp,udp'], { encoding: 'utf8' });
      if (r.status !== 0) return false;
      const f = JSON.parse(r.stdout) as Array<{ open: boolean }>;
      return f.filter((x) => !x.open).length >= closed.length && f.filter((x) => x.open).length >= 2;
    }, 30000);
    assert.ok(stored, `the store has every flow: ${dOut.err()}`);

    // the questions: a sampled instant inside each sampled connection, at three precisions, with and without --remote
    const snat = closed.filter((c) => c.id.startsWith('c'));
    let x = seed;
    const rnd = () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648; };
    const samples = snat.filter((_, i) => i % 6 === 0);
    const tally: Record<string, number> = {};
    const failures: string[] = [];
    for (const c of samples) {
      const u = Math.floor(c.t0 + rnd() * (c.t1! - c.t0));
      for (const digits of [0, 3, 6] as const) {
        const p = 10 ** (6 - digits);
        const q = { lo: Math.floor(u / p) * p, hi: Math.floor(u / p) * p + p };
        for (const withRemote of [false, true]) {
          const same = (o: Conn) => o.peer === c.peer && o.pport === c.pport && o.proto === c.proto && (!withRemote || o.lport === c.lport);
          // certainly active in the interval, and maybe active (the held-open connections: from their start on)
          const strict = new Set(seen.filter((o) => same(o) && o.t0 < q.hi && (o.t1 === null || o.t1 >= q.lo)).map((o) => o.host));
          const loose = new Set(seen.filter((o) => same(o) && o.w0 - MARGIN_US < q.hi && (o.w1 === null || o.w1 + MARGIN_US >= q.lo)).map((o) => o.host));
          const args = [`${c.peer}:${c.pport}`, '--at', isoAt(u, digits), '--proto', c.proto, ...(withRemote ? ['--remote', `${ADDR.srv}:${c.lport}`] : [])];
          const w = who(storeArgs, args);
          const key = `${digits}:${withRemote ? 'remote' : 'any'}:${w.verdict}`;
          tally[key] = (tally[key] ?? 0) + 1;
          const what = `${c.id} (${c.host} ${c.proto} ${c.peer}:${c.pport} -> :${c.lport}) ${args.slice(1).join(' ')}: truth ${[...strict]} (maybe ${[...loose]}), answer ${w.verdict} ${w.inside}` +
            ` [${w.flows.map((f) => JSON.stringify({ ...f, snat: undefined, dnat: undefined, packets: undefined, bytes: undefined, orig: undefined }))}]` +
            ` truth: ${JSON.stringify(seen.filter((o) => same(o) && o.w0 - 5e6 < q.hi && (o.w1 === null || o.w1 + 5e6 >= q.lo)))}`;
          // never exact with a host that was not active, nor exact where two were
          if (w.verdict === 'exact' && (!loose.has(w.inside[0]) || w.inside.length !== 1 || [...strict].some((h) => h !== w.inside[0]))) failures.push(`WRONG ${what}`);
          // one host active (with a margin for the two clocks): exact with that host
          if (loose.size === 1 && !(w.verdict === 'exact' && w.inside[0] === c.host)) failures.push(`NOT EXACT ${what}`);
          if (w.verdict === 'ambiguous' && [...strict].some((h) => !w.inside.includes(h))) failures.push(`INCOMPLETE LIST ${what}`);
        }
      }
    }
    console.log(`# who over ${samples.length} sampled connections (precision:remote:verdict): ${JSON.stringify(tally)}`);
    assert.deepEqual(failures, []);
    // (every sample with one host active is exact, above; these say the test had such samples)
    for (const digits of [0, 3, 6]) assert.ok((tally[`${digits}:remote:exact`] ?? 0) >= samples.length * 0.9, `with --remote almost every answer is exact at ${digits} decimals`);
    assert.ok((tally['6:any:exact'] ?? 0) >= samples.length * 0.7, 'at 1 µs most answers are exact without --remote too');
    // DNAT: the inside server that answered on the forwarded port
    for (const c of closed.filter((y) => y.id.startsWith('d'))) {
      const at = Math.round((c.t0 + c.t1!) / 2);
      const w = who(storeArgs, [`${PUB}:8022`, '--at', isoAt(at, 6)]);
      assert.equal(w.verdict, 'exact', JSON.stringify(w));
      assert.deepEqual(w.inside, [DNAT_INSIDE]);
      assert.equal(w.flows[0].remote.split(':')[0], ADDR.srv);
    }
    // flows still open: found in the current table
    for (const c of conns(srvOut.out()).filter((y) => y.t1 === null)) {
      const w = who(storeArgs, [`${c.peer}:${c.pport}`, '--at', 'now', '--proto', 'tcp', '--remote', `${ADDR.srv}:5002`]);
      assert.equal(w.verdict, 'exact', JSON.stringify(w));
      assert.deepEqual(w.inside, [HOSTS[1]]);
      assert.ok(w.flows[0].open);
    }
    // a time before the trail began: nothing, and it says why
    const none = who(storeArgs, [`${PUB}:40001`, '--at', '2000-01-01T00:00:00Z']);
    assert.equal(none.verdict, 'none');
    await t.stop(holder);
  } finally {
    await t.stop(d);
    await Promise.all([srv, inside].map((p) => t.stop(p)));
  }
  // (partial flows are possible: the start-up dump reaps expired entries of
  // earlier traffic, and the kernel reports their DESTROY)
  assert.match(dOut.err(), /stopped: .*flows: open=\d+ opened=\d+ closed=\d+ partial=\d+ settled=0 corrected=0/);
}

describe('NAT attribution (conntrail who) against ground truth', { timeout: 1_200_000 }, () => {
  const t = new Topology('nat');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-nat-'));
  let pg: Postgres | undefined;
  before(() => {
    t.up({ nft: rules(t) });
    for (const h of HOSTS.slice(1)) t.exec(t.cli, ['ip', 'addr', 'add', `${h}/24`, 'dev', `${t.prefix}c0`]);
    t.sysctl(t.rtr, {
      'net.netfilter.nf_conntrack_udp_timeout': '1',
      'net.netfilter.nf_conntrack_udp_timeout_stream': '1',
      // long enough that flows linger after their last packet while others use the port
      'net.netfilter.nf_conntrack_tcp_timeout_time_wait': '3',
      'net.netfilter.nf_conntrack_tcp_timeout_close': '1',
      'net.netfilter.nf_conntrack_tcp_timeout_fin_wait': '1',
      'net.netfilter.nf_conntrack_tcp_timeout_close_wait': '1',
      'net.netfilter.nf_conntrack_tcp_timeout_last_ack': '1',
    });
  });
  after(async () => {
    t.down();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('SQLite store: every sampled public address, port and time names the right inside host', async () => {
    const db = join(dir, 'flows.db');
    await scenario(t, dir, `path = "${db}"`, ['--db', db], 7);
    assert.equal(statSync(db).mode & 0o777, 0o640);
  });

  it('PostgreSQL store: the same', async () => {
    pg = await startPostgres(dir);
    await scenario(t, dir, `type = "postgres"\nurl = "${pg.url}"\nspool_dir = "${join(dir, 'spool')}"`, ['--postgres', pg.url], 11);
  });

  it('PostgreSQL down mid-run: batches are spooled on disk, replayed in order when it is back, nothing lost', async () => {
    pg ??= await startPostgres();
    const spool = join(dir, 'spool2');
    const conf = join(dir, 'spool.toml');
    writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\n\n[store]\ntype = "postgres"\nurl = "${pg.url}"\nspool_dir = "${spool}"\nflush_interval_ms = 100\n`);
    const d = t.spawn('', [...CONNTRAIL, 'run', '--config', conf]);
    const dOut = collect(d);
    const srv = t.spawn(t.srv, [process.execPath, PEER, 'server', '[5001]', '[5003]']);
    const srvOut = collect(srv);
    try {
      assert.ok(await waitSubscribed(d.pid!, 10000, t.rtr), dOut.err());
      assert.ok(await waitFor(() => srvOut.out().includes('ready')));
      const round = async (tag: string) => {
        const plan: PlanItem[] = [];
        for (let i = 0; i < 20; i++) plan.push({ id: `${tag}${i}`, host: HOSTS[i % 3], proto: i % 5 ? 'tcp' : 'udp', dst: ADDR.srv, dport: i % 5 ? 5001 : 5003, at: i * 120, hold: 300 });
        const c = t.spawn(t.cli, [process.execPath, PEER, 'client', JSON.stringify(plan)]);
        await collect(c).done;
        await reapExpired(t);
      };
      const count = (flt: (f: { open: boolean }) => boolean) => {
        t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true }); // reap what has expired: its DESTROY comes sooner
        const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--postgres', pg!.url, '--json', '--limit', '0', '--since', new Date(started).toISOString()], { encoding: 'utf8' });
        return r.status === 0 ? (JSON.parse(r.stdout) as Array<{ open: boolean }>).filter(flt).length : -1;
      };
      const started = Date.now();
      await new Promise((r) => setTimeout(r, 5)); // (the flows below began after this)
      await round('a');
      assert.ok(await waitFor(() => count((f) => !f.open) >= 20, 30000), `${count((f) => !f.open)} flows: ${spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--postgres', pg!.url, '--since', new Date(started).toISOString()], { encoding: 'utf8' }).stdout} ${t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true })} ${dOut.err()}`);
      await pg.stop();
      await round('b');
      assert.ok(await waitFor(() => /spooling to/.test(dOut.err()), 15000), dOut.err());
      // the daemon says how much waits in the spool
      await waitFor(() => { process.kill(d.pid!, 'SIGUSR1'); return /spooled=[1-9]\d* spool_pending=[1-9]/.test(dOut.err()); }, 10000);
      assert.match(dOut.err(), /spooled=[1-9]\d* spool_pending=[1-9]/);
      await round('c');
      await pg.start();
      assert.ok(await waitFor(() => /spool replayed/.test(dOut.err()), 30000), dOut.err());
      assert.ok(await waitFor(() => count((f) => !f.open) >= 60, 15000), `flows after replay: ${count(() => true)}\n${dOut.err()}`);
      const seen = conns(srvOut.out()).filter((c) => c.t0 >= started * 1000);
      assert.equal(seen.length, 60);
      // every connection of every round is there, with the right inside host
      for (const c of seen) {
        const at = Math.round((c.t0 + c.t1!) / 2);
        const w = who(['--postgres', pg.url], [`${c.peer}:${c.pport}`, '--at', isoAt(at, 6), '--proto', c.proto, '--remote', `${ADDR.srv}:${c.lport}`]);
        assert.equal(w.verdict, 'exact', `${c.id}: ${JSON.stringify(w)}`);
        assert.deepEqual(w.inside, [c.host]);
      }
      // in order: no flow that ended is left in the current table
      assert.equal(count((f) => f.open), 0);
      assert.equal(readdirSync(spool).filter((f) => f.endsWith('.batch')).length, 0);
    } finally {
      assert.equal(await t.stop(d), 0, dOut.err());
      await t.stop(srv);
    }
    assert.match(dOut.err(), /replayed=[1-9]\d* expired=0/);
  });
});
