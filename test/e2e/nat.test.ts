// NAT attribution against ground truth: several inside hosts behind a router
// that masquerades into a 10-port range (so public ports are reused many
// times within seconds, and shared at once by flows to different remotes),
// plus a DNAT port forward. The servers log what they saw (the public
// address and port, and which inside host the client said it was); then
// `conntrail who` is asked about sampled (public address, port, time)
// triples and must name the right inside host every time, or say
// `ambiguous` where the ground truth is.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { reapExpired } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';
import type { PlanItem, SeenLine } from '../helpers/natpeer.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

const PEER = join(process.cwd(), 'dist', 'test', 'helpers', 'natpeer.js');
const HOSTS = ['10.99.1.2', '10.99.1.3', '10.99.1.4', '10.99.1.5'];
const PUB = ADDR.rtrOut;
const DNAT_INSIDE = '10.99.1.4';

function rules(t: Topology): string {
  const out = `${t.prefix}r1`;
  return `table inet ctt {
  chain prerouting { type nat hook prerouting priority -100; iifname "${out}" ip daddr ${PUB} tcp dport 8022 dnat ip to ${DNAT_INSIDE}:2222; }
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "${out}" meta l4proto { tcp, udp } masquerade to :40000-40009
    oifname "${out}" masquerade
  }
}`;
}

/** A random but repeatable plan (seeded). */
function makePlan(seed: number): { plan: PlanItem[]; dnat: PlanItem[] } {
  let x = seed;
  const rnd = () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648; };
  const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)];
  const plan: PlanItem[] = [];
  let n = 0;
  const add = (host: string, proto: 'tcp' | 'udp', dport: number, at: number, hold: number) =>
    plan.push({ id: `c${n++}`, host, proto, dst: ADDR.srv, dport, at, hold });
  // A: ten connections to :5001 occupy all ten public ports for 4 s (hosts .2 and .3)
  for (let i = 0; i < 10; i++) add(HOSTS[i % 2], 'tcp', 5001, i * 30, 4000);
  // B: meanwhile hosts .4 and .5 go to :5002 and must share those ports: ambiguous without --remote
  for (let i = 0; i < 6; i++) add(HOSTS[2 + (i % 2)], 'tcp', 5002, 600 + i * 450, 900);
  // C: churn: short connections from any host to either port, three at a time
  for (let i = 0; i < 30; i++) add(pick(HOSTS), 'tcp', pick([5001, 5002]), 4800 + i * 260, 700 + Math.floor(rnd() * 300));
  // D: UDP exchanges in the same port range
  for (let i = 0; i < 10; i++) add(pick(HOSTS), 'udp', 5003, 4900 + i * 700, 700);
  // DNAT: the outside host connects to the forwarded port
  const dnat: PlanItem[] = [];
  for (let i = 0; i < 3; i++) dnat.push({ id: `d${i}`, host: ADDR.srv, proto: 'tcp', dst: PUB, dport: 8022, at: 5000 + i * 1500, hold: 800 });
  return { plan, dnat };
}

interface Conn { id: string; host: string; proto: 'tcp' | 'udp'; lport: number; peer: string; pport: number; t0: number; t1: number | null }

function conns(lines: string): Conn[] {
  const m = new Map<string, Conn>();
  for (const l of lines.split('\n').filter(Boolean)) {
    const e = JSON.parse(l) as SeenLine | { ev: string };
    if (e.ev === 'open') { const s = e as SeenLine; m.set(s.id, { id: s.id, host: s.host, proto: s.proto, lport: s.lport, peer: s.peer, pport: s.pport, t0: s.t, t1: null }); }
    if (e.ev === 'close') { const s = e as SeenLine; const c = m.get(s.id); if (c) c.t1 = s.t; }
  }
  return [...m.values()];
}

interface WhoJson { verdict: string; inside: string[]; flows: Array<{ open: boolean; inside: string; public: string | null; remote: string }> }

function who(store: string[], args: string[]): WhoJson {
  const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'who', ...args, ...store, '--json'], { encoding: 'utf8' });
  assert.ok(r.status === 0 || r.status === 1, `who ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as WhoJson;
}

async function scenario(t: Topology, dir: string, storeToml: string, storeArgs: string[], seed: number): Promise<void> {
  const conf = join(dir, `nat-${seed}.toml`);
  // the daemon runs in the test's own namespace and reads the router's
  writeFileSync(conf, `[[source]]\nname = "rtr"\nnetns = "${t.rtr}"\nenable_timestamps = true\nenable_accounting = true\n\n[store]\nflush_interval_ms = 100\n${storeToml}\n`);
  const d = t.spawn('', [...CONNTRAIL, 'run', '--config', conf]);
  const dOut = collect(d);
  assert.ok(await waitSubscribed(d.pid!, 10000, t.rtr), dOut.err());
  const srv = t.spawn(t.srv, [process.execPath, PEER, 'server', '[5001,5002]', '[5003]']);
  const inside = t.spawn(t.cli, [process.execPath, PEER, 'server', '[2222]', '[]']);
  const [srvOut, insideOut] = [srv, inside].map(collect);
  assert.ok(await waitFor(() => srvOut.out().includes('ready') && insideOut.out().includes('ready')));
  // conntrack's garbage collector is lazy: a dump reaps expired entries, so
  // that a flow's end is when its timeout ran out, not seconds later
  const reaper = setInterval(() => { spawn('ip', ['netns', 'exec', t.rtr, 'conntrack', '-L'], { stdio: 'ignore' }); }, 100);
  try {
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
    const seen = [...conns(srvOut.out()), ...conns(insideOut.out())];
    const closed = seen.filter((c) => c.t1 !== null);
    assert.equal(closed.length, plan.length + dnat.length, 'the servers saw every connection end');
    assert.ok(await waitFor(() => conns(srvOut.out()).filter((c) => c.t1 === null).length === 2), 'the held connections are open');
    // every ended flow is in the store (NEW and DESTROY both seen), and the open ones too
    const stored = await waitFor(() => {
      const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', ...storeArgs, '--json', '--limit', '0', '--proto', 'tcp,udp'], { encoding: 'utf8' });
      if (r.status !== 0) return false;
      const f = JSON.parse(r.stdout) as Array<{ open: boolean }>;
      return f.filter((x) => !x.open).length >= closed.length && f.filter((x) => x.open).length >= 2;
    }, 15000);
    assert.ok(stored, `the store has every flow: ${dOut.err()}`);

    const snat = closed.filter((c) => c.id.startsWith('c'));
    const samePort = (a: Conn, b: Conn) => a.pport === b.pport && a.peer === b.peer;
    let exact = 0;
    let ambiguous = 0;
    for (const c of snat) {
      const at = Math.round((c.t0 + c.t1!) / 2);
      // with the remote end and protocol, the 5-tuple is unique at any instant: always exact
      const w1 = who(storeArgs, [`${c.peer}:${c.pport}`, '--at', `@${at / 1000}`, '--proto', c.proto, '--remote', `${ADDR.srv}:${c.lport}`]);
      assert.equal(w1.verdict, 'exact', `${c.id} ${c.proto} ${c.host} behind ${c.peer}:${c.pport} at ${at}: ${JSON.stringify(w1)}`);
      assert.deepEqual(w1.inside, [c.host], `${c.id}: ${JSON.stringify(w1)}`);
      // with the public address and port only: other hosts may have held it too
      const strict = new Set(seen.filter((o) => samePort(o, c) && o.t0 <= at && (o.t1 === null || o.t1 >= at)).map((o) => o.host));
      const loose = new Set(seen.filter((o) => samePort(o, c) && o.t0 - 1000 <= at && (o.t1 === null || o.t1 + 3000 >= at)).map((o) => o.host));
      const w2 = who(storeArgs, [`${c.peer}:${c.pport}`, '--at', new Date(at).toISOString()]);
      assert.ok(w2.inside.includes(c.host), `${c.id}: ${JSON.stringify(w2)}`);
      if (loose.size === 1) {
        assert.equal(w2.verdict, 'exact', `${c.id}: ${JSON.stringify(w2)}`);
        assert.deepEqual(w2.inside, [c.host]);
        exact++;
      } else if (strict.size > 1) {
        assert.equal(w2.verdict, 'ambiguous', `${c.id}: truth ${[...strict]}: ${JSON.stringify(w2)}`);
        for (const h of strict) assert.ok(w2.inside.includes(h), `${c.id}: ${h} missing from ${JSON.stringify(w2)}`);
        ambiguous++;
      }
    }
    assert.ok(exact >= 5, `unambiguous samples: ${exact}`);
    assert.ok(ambiguous >= 5, `ambiguous samples: ${ambiguous}`);
    // DNAT: the inside server that answered on the forwarded port
    for (const c of closed.filter((x) => x.id.startsWith('d'))) {
      const at = Math.round((c.t0 + c.t1!) / 2);
      const w = who(storeArgs, [`${PUB}:8022`, '--at', `@${at / 1000}`]);
      assert.equal(w.verdict, 'exact', JSON.stringify(w));
      assert.deepEqual(w.inside, [DNAT_INSIDE]);
      assert.equal(w.flows[0].remote.split(':')[0], ADDR.srv);
    }
    // flows still open: found in the current table
    for (const c of conns(srvOut.out()).filter((x) => x.t1 === null)) {
      const w = who(storeArgs, [`${c.peer}:${c.pport}`, '--at', 'now', '--proto', 'tcp', '--remote', `${ADDR.srv}:5002`]);
      assert.equal(w.verdict, 'exact', JSON.stringify(w));
      assert.deepEqual(w.inside, [HOSTS[1]]);
      assert.ok(w.flows[0].open);
    }
    // a time long before any traffic: nothing
    const none = who(storeArgs, [`${PUB}:40001`, '--at', '2000-01-01T00:00:00Z']);
    assert.equal(none.verdict, 'none');
    await t.stop(holder);
  } finally {
    clearInterval(reaper);
    await t.stop(d);
    await Promise.all([srv, inside].map((p) => t.stop(p)));
  }
  // (partial flows are possible: the start-up dump reaps expired entries of
  // earlier traffic, and the kernel reports their DESTROY)
  assert.match(dOut.err(), /stopped: .*flows: open=\d+ opened=\d+ closed=\d+ partial=\d+ settled=0/);
}

describe('NAT attribution (conntrail who) against ground truth', { timeout: 300_000 }, () => {
  const t = new Topology('nat');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-nat-'));
  let pg: Postgres | undefined;
  before(() => {
    t.up({ nft: rules(t) });
    for (const h of HOSTS.slice(1)) t.exec(t.cli, ['ip', 'addr', 'add', `${h}/24`, 'dev', `${t.prefix}c0`]);
    t.sysctl(t.rtr, {
      'net.netfilter.nf_conntrack_udp_timeout': '1',
      'net.netfilter.nf_conntrack_udp_timeout_stream': '1',
      'net.netfilter.nf_conntrack_tcp_timeout_time_wait': '1',
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
      const reaper = setInterval(() => { spawn('ip', ['netns', 'exec', t.rtr, 'conntrack', '-L'], { stdio: 'ignore' }); }, 100);
      const round = async (tag: string) => {
        const plan: PlanItem[] = [];
        for (let i = 0; i < 20; i++) plan.push({ id: `${tag}${i}`, host: HOSTS[i % 4], proto: i % 5 ? 'tcp' : 'udp', dst: ADDR.srv, dport: i % 5 ? 5001 : 5003, at: i * 120, hold: 300 });
        const c = t.spawn(t.cli, [process.execPath, PEER, 'client', JSON.stringify(plan)]);
        await collect(c).done;
        await reapExpired(t);
      };
      const count = (flt: (f: { open: boolean }) => boolean) => {
        const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--postgres', pg!.url, '--json', '--limit', '0', '--since', new Date(started).toISOString()], { encoding: 'utf8' });
        return r.status === 0 ? (JSON.parse(r.stdout) as Array<{ open: boolean }>).filter(flt).length : -1;
      };
      const started = Date.now();
      await round('a');
      assert.ok(await waitFor(() => count((f) => !f.open) >= 20, 15000), dOut.err());
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
      clearInterval(reaper);
      const seen = conns(srvOut.out()).filter((c) => c.t0 >= started);
      assert.equal(seen.length, 60);
      // every connection of every round is there, with the right inside host
      for (const c of seen) {
        const at = Math.round((c.t0 + c.t1!) / 2);
        const w = who(['--postgres', pg.url], [`${c.peer}:${c.pport}`, '--at', `@${at / 1000}`, '--proto', c.proto, '--remote', `${ADDR.srv}:${c.lport}`]);
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
