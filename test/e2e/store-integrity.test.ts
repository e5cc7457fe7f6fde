// One row per flow, always, and nothing lost that the kernel let us keep:
// counted UDP flows (each its own conntrack entry) through a daemon that is
// stopped with SIGTERM or killed with SIGKILL mid-ingest and started again,
// that overruns its receive buffer in a burst, that reloads its
// configuration, and that replays a spool left by a run whose PostgreSQL
// was down. Ground truth is the generator's count and tuples; the store
// must hold each of them exactly once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, sh, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { CONNTRAIL } from '../helpers/cli.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

const GEN = join(process.cwd(), 'test', 'helpers', 'udpflows.py');

interface Row { orig: { src: string; sport: number; dst: string; dport: number }; open: boolean; start_us: number; end_us: number | null; end_err_us: number; flags: string[] }

function rows(store: string[]): Row[] {
  const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', ...store, '--json', '--limit', '0', '--proto', 'udp', '--src', ADDR.cli], {
    encoding: 'utf8', maxBuffer: 512 * 1024 * 1024,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Row[];
}

/** The generator's flows, by destination port and source port: how many rows each has. */
function tally(list: Row[]): { closed: number; open: number; dup: string[] } {
  const seen = new Map<string, number>();
  for (const x of list) {
    const k = `${x.orig.sport}>${x.orig.dport}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  return {
    closed: list.filter((x) => !x.open).length, open: list.filter((x) => x.open).length,
    dup: [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} x${n}`),
  };
}

describe('the flow store holds each flow once', { timeout: 600_000 }, () => {
  const t = new Topology('si');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-si-'));
  let pg: Postgres | undefined;
  before(() => {
    t.up({ nft: `table inet ctt {
  chain postrouting { type nat hook postrouting priority 100; oifname "${t.prefix}r1" masquerade; }
}` });
    // flows live 5 s after their one packet: none ends while a daemon restarts
    t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '5' });
  });
  after(async () => {
    t.down();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const daemon = (conf: string) => {
    const d = t.spawn('', [...CONNTRAIL, 'run', '--config', conf]);
    return { d, o: collect(d) };
  };
  const started = async (x: { d: ChildProcess; o: ReturnType<typeof collect> }) => {
    assert.ok(await waitSubscribed(x.d.pid!, 10000, t.rtr), x.o.err());
    assert.ok(await waitFor(() => /start-up sync done/.test(x.o.err()), 15000), x.o.err());
  };
  /** every flow the generator made has ended (its DESTROY read) and is stored */
  const allStored = async (store: string[], n: number, maxMs = 60000) => waitFor(() => {
    t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true }); // reap what has expired
    const c = tally(rows(store));
    return c.closed >= n && c.open === 0;
  }, maxMs);

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`a daemon stopped with ${signal} mid-ingest and started again: every flow once`, async () => {
      const db = join(dir, `${signal}.db`);
      const conf = join(dir, `${signal}.toml`);
      writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\n\n[store]\npath = "${db}"\nspool_dir = "${join(dir, `${signal}-spool`)}"\nflush_interval_ms = 200\n`);
      const N = 12000;
      let a = daemon(conf);
      await started(a);
      const gen = t.spawn(t.cli, ['python3', GEN, ADDR.srv, String(N), '5000']);
      const g = collect(gen);
      try {
        assert.ok(await waitFor(() => /sent 4000/.test(g.out()), 30000), g.out());
        if (signal === 'SIGKILL') {
          a.d.kill('SIGKILL');
          await a.o.done;
        } else assert.equal(await t.stop(a.d), 0, a.o.err());
        a = daemon(conf);
        await started(a);
        await g.done;
        assert.match(g.out(), new RegExp(`done ${N}`));
        assert.ok(await allStored(['--db', db], N), `stored: ${JSON.stringify(tally(rows(['--db', db])).closed)}\n${a.o.err()}`);
        const c = tally(rows(['--db', db]));
        assert.deepEqual(c.dup.slice(0, 10), [], `${c.dup.length} flows stored more than once`);
        assert.equal(c.closed, N);
        assert.equal(await t.stop(a.d), 0, a.o.err());
        // the counters say what was written
        const m = /flows_written=(\d+)/.exec(a.o.err());
        assert.ok(m, a.o.err());
      } finally {
        await t.stop(gen);
        await t.stop(a.d);
      }
    });
  }

  it('an overrun in a burst: the buffer grows at once, the resync recovers the open flows, every flow once', async () => {
    const db = join(dir, 'burst.db');
    const conf = join(dir, 'burst.toml');
    writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\nbuffer_size = 4096\nbuffer_max = 67108864\nbatch_delay_ms = 50\n\n[store]\npath = "${db}"\nflush_interval_ms = 200\n`);
    const N = 20000;
    const a = daemon(conf);
    await started(a);
    try {
      t.exec(t.cli, ['python3', GEN, ADDR.srv, String(N), '0', String(N)]);
      assert.ok(await waitFor(() => /resync done/.test(a.o.err()), 30000), a.o.err());
      assert.ok(await allStored(['--db', db], N), a.o.err());
      const list = rows(['--db', db]);
      const c = tally(list);
      assert.deepEqual(c.dup.slice(0, 10), [], `${c.dup.length} flows stored more than once`);
      assert.equal(c.closed, N, 'every flow of the burst is in the store');
      assert.match(a.o.err(), /netlink overrun \(ENOBUFS\) x\d+, kernel dropped \d+ events so far; receive buffer grown from \d+ to \d+ bytes; resyncing from a table dump/);
      // grown to what the burst needed at once: no more than a few overruns
      const warnings = a.o.err().match(/netlink overrun/g)!.length;
      assert.ok(warnings <= 4, `${warnings} overrun warnings:\n${a.o.err()}`);
      assert.equal(await t.stop(a.d), 0, a.o.err());
      assert.match(a.o.err(), /stopped: source conntrack: events=\d+ datagrams=\d+ overflows=[1-9]\d* /);
      // flows whose NEW was lost are known from the dump, with the kernel's start
      assert.ok(list.some((x) => x.flags.includes('partial')), 'some NEW events were lost and recovered');
      assert.ok(list.every((x) => !x.flags.includes('start-unknown')), 'kernel timestamps: every start is known');
    } finally {
      await t.stop(a.d);
    }
  });

  it('an overrun that loses DESTROYs (a receive buffer that may not grow): each settled flow\'s end interval holds its real end', async () => {
    t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '1' });
    const db = join(dir, 'lost.db');
    const conf = join(dir, 'lost.toml');
    writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\nbuffer_size = 16384\nbuffer_max = 16384\nbatch_delay_ms = 100\n\n[store]\npath = "${db}"\nflush_interval_ms = 200\n`);
    const N = 12000;
    // the ground truth of each end: the kernel's own time of the deletion
    // (CTA_TIMESTAMP_STOP) in the DESTROY that conntrack -E, with a buffer
    // big enough, reads beside the daemon. (Not the flow's start plus its
    // 1 s timeout: the timeout runs in jiffies, which on a loaded VM lag
    // the wall clock by more than a tick, so an entry may be gone from a
    // dump before its start + 1 s.)
    // (to a file: a pipe the test's synchronous calls leave unread would stall it, and its buffer would overrun)
    const peerOut = join(dir, 'lost-peer.xml');
    const peerErr = join(dir, 'lost-peer.err');
    const peer = t.spawn(t.rtr, ['sh', '-c', `exec conntrack -E -e DESTROY -o xml,ktimestamp -p udp -s ${ADDR.cli} -b 67108864 > ${peerOut} 2> ${peerErr}`]);
    const read = (f: string) => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
    const p = { out: () => read(peerOut), err: () => read(peerErr) };
    const a = daemon(conf);
    try {
      assert.ok(await waitSubscribed(peer.pid!, 10000), p.err());
      await started(a);
      t.exec(t.cli, ['python3', GEN, ADDR.srv, String(N), '4000']);
      assert.ok(await allStored(['--db', db], N, 180000), `stored: ${JSON.stringify(tally(rows(['--db', db])))}\n${a.o.err()}`);
      const peerLost = () => /We have hit ENOBUFS/.test(p.err());
      /** the kernel's deletion time of each flow (µs, rounded up as the daemon rounds), by source and destination port */
      const stops = () => {
        const m = new Map<string, number>();
        for (const x of p.out().matchAll(/<flow type="destroy"><meta direction="original">.*?<sport>(\d+)<\/sport><dport>(\d+)<\/dport>.*?<stop>(\d+)<\/stop>/g)) {
          m.set(`${x[1]}>${x[2]}`, Number((BigInt(x[3]) + 999n) / 1000n));
        }
        return m;
      };
      // every DESTROY printed; where the peer lost some, until it has printed what it has (its output still for 2 s)
      const destroys = () => p.out().split('<flow type="destroy">').length - 1;
      let last = -1;
      let still = 0;
      assert.ok(await waitFor(() => {
        const len = p.out().length;
        still = len === last ? still + 1 : 0;
        last = len;
        return (still >= 2 && destroys() >= N) || (peerLost() && still >= 40);
      }, 90000), `conntrack -E printed ${destroys()} DESTROYs: ${p.err()}`);
      const stop = stops();
      const list = rows(['--db', db]);
      const c = tally(list);
      // (the rows of the first duplicates, to tell how they came about)
      const dupRows = c.dup.slice(0, 3).map((d) => list.filter((x) => `${x.orig.sport}>${x.orig.dport}` === d.split(' ')[0]));
      assert.deepEqual(c.dup.slice(0, 10), [], `${c.dup.length} flows stored more than once: ${JSON.stringify(dupRows)}\n${a.o.err()}`);
      assert.equal(c.closed, N, 'every flow is in the store, its DESTROY seen or not');
      const settled = list.filter((x) => x.flags.includes('end-estimated'));
      assert.ok(settled.length > 0, `some DESTROYs were lost: ${a.o.err()}`);
      // a settled flow's end is an interval: no later than the dump that no
      // longer had it (which came after its deletion), no earlier than it was
      // last seen or than its timeout could have run out (to a jiffy, and the
      // lag of the reply of the dump that saw it last)
      let checked = 0;
      for (const x of settled) {
        const real = stop.get(`${x.orig.sport}>${x.orig.dport}`);
        if (real === undefined) continue; // the peer lost it (told below)
        checked++;
        assert.ok(real <= x.end_us! + 1000 && real >= x.end_us! - x.end_err_us - 10_000, `${JSON.stringify(x)}: the kernel deleted it at ${real}`);
      }
      // a DESTROY read: the kernel's end, exact
      let late = 0;
      for (const x of list.filter((y) => !y.flags.includes('end-estimated'))) {
        const real = stop.get(`${x.orig.sport}>${x.orig.dport}`);
        assert.equal(x.end_err_us, 0, JSON.stringify(x));
        if (real !== undefined) { assert.equal(x.end_us, real, `${JSON.stringify(x)}: the kernel deleted it at ${real}`); checked++; }
        late = Math.max(late, x.end_us! - x.start_us - 1_000_000);
      }
      if (peerLost()) assert.ok(checked >= N / 2 && settled.some((x) => stop.has(`${x.orig.sport}>${x.orig.dport}`)), `conntrack -E lost events, and too many: ${checked} of ${N} flows compared (${stop.size} DESTROYs read): ${p.err()}`);
      else assert.equal(checked, N, 'every flow compared with the kernel\'s deletion');
      console.log(`# ${settled.length} of ${N} flows settled after lost DESTROYs; end uncertainty p50 ${settled.map((x) => x.end_err_us).sort((q, r) => q - r)[settled.length >> 1] / 1000} ms; the kernel deleted the others up to ${late / 1000} ms after their start + timeout; ${checked} compared with conntrack -E${peerLost() ? ' (which lost some)' : ''}`);
      assert.equal(await t.stop(a.d), 0, a.o.err());
    } finally {
      await t.stop(a.d);
      await t.stop(peer);
      t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '5' });
    }
  });

  /** resident memory of a process, bytes */
  const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  const counters = async (x: { d: ChildProcess; o: ReturnType<typeof collect> }) => {
    const before = (x.o.err().match(/counters:/g) ?? []).length;
    x.d.kill('SIGUSR1');
    await waitFor(() => (x.o.err().match(/counters:/g) ?? []).length > before);
    return x.o.err().split('\n').filter((l) => /counters:/.test(l)).pop()!;
  };

  for (const spoolOnSameDisk of [false, true]) {
    it(`a full disk under SQLite${spoolOnSameDisk ? ', the spool on it too' : ''}: memory stays bounded, ${spoolOnSameDisk ? 'the sources pause and the loss is counted' : 'batches are spooled'}, and it recovers when there is room`, async () => {
      t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '1' });
      const small = join(dir, `small-${spoolOnSameDisk}`);
      mkdirSync(small);
      sh(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
      const db = join(small, 'flows.db');
      const spool = spoolOnSameDisk ? join(small, 'spool') : join(dir, `spool-${spoolOnSameDisk}`);
      const conf = join(dir, `full-${spoolOnSameDisk}.toml`);
      writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\nbuffer_size = 1048576\n\n[store]\npath = "${db}"\nspool_dir = "${spool}"\nflush_interval_ms = 200\nqueue_size = 2000\n`);
      const N = 16000;
      const a = daemon(conf);
      let gen: ChildProcess | undefined;
      try {
        await started(a);
        const base = rss(a.d.pid!);
        let peak = base;
        const sampler = setInterval(() => { try { peak = Math.max(peak, rss(a.d.pid!)); } catch { /* gone */ } }, 100);
        gen = t.spawn(t.cli, ['python3', GEN, ADDR.srv, String(N), '2000']);
        const g = collect(gen);
        assert.ok(await waitFor(() => /write failed \((SQLITE_FULL|.*full)/i.test(a.o.err()), 30000), `the disk filled: ${a.o.err()}`);
        await g.done;
        await new Promise((r) => setTimeout(r, 1500)); // the last flows expire: their DESTROYs are read
        const c = await counters(a);
        clearInterval(sampler);
        if (!spoolOnSameDisk) assert.match(c, /spooled=[1-9]\d* spool_pending=[1-9]/, c);
        else assert.match(c, /full=[1-9]/, c);
        const queued = Number(/queued=(\d+) full/.exec(c)?.[1]);
        assert.ok(queued <= 2000 + 10000, `records in memory: ${queued}`);
        assert.ok(peak - base < 80 * 1048576, `RSS grew ${Math.round((peak - base) / 1048576)} MiB`);
        console.log(`# full disk${spoolOnSameDisk ? ' (spool too)' : ''}: RSS ${Math.round(base / 1048576)} -> peak ${Math.round(peak / 1048576)} MiB; ${c.replace(/.*store sqlite: /, '')}`);
        // room again
        sh(['mount', '-o', 'remount,size=256m', small]);
        assert.ok(await waitFor(() => /store sqlite: writing again/.test(a.o.err()), 30000), a.o.err());
        assert.ok(await waitFor(() => /spool replayed/.test(a.o.err()) || spoolOnSameDisk, 60000), a.o.err());
        assert.ok(await waitFor(() => { t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true }); return tally(rows(['--db', db])).open === 0; }, 60000));
        assert.match(await counters(a), /spool_pending=0 /);
        const list = rows(['--db', db]);
        const tl = tally(list);
        assert.deepEqual(tl.dup.slice(0, 10), [], `${tl.dup.length} flows stored more than once`);
        if (!spoolOnSameDisk) assert.equal(tl.closed, N, 'nothing lost: every flow went through the spool');
        else {
          // what could not be kept is counted: overruns while paused, and the gap is in the store
          assert.ok(tl.closed > 0 && tl.closed <= N);
          assert.equal(await t.stop(a.d), 0, a.o.err());
          assert.match(a.o.err(), /overflows=[1-9]/);
          const g2 = new Database(db, { readonly: true });
          const gaps = (g2.prepare('SELECT count(*) AS n FROM gaps').get() as { n: number }).n;
          g2.close();
          assert.ok(gaps > 0, 'the time events were lost is recorded');
        }
      } finally {
        if (gen) await t.stop(gen);
        await t.stop(a.d);
        sh(['umount', small], { allowFail: true });
        t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '5' });
      }
    });
  }

  it('a reload (SIGHUP) while flows are open, with a sink added: every flow once, none missed', async () => {
    const db = join(dir, 'reload.db');
    const conf = join(dir, 'reload.toml');
    const base = `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\n\n[store]\npath = "${db}"\nflush_interval_ms = 200\n`;
    writeFileSync(conf, base);
    const N = 6000;
    const a = daemon(conf);
    await started(a);
    const gen = t.spawn(t.cli, ['python3', GEN, ADDR.srv, String(N), '3000']);
    const g = collect(gen);
    try {
      assert.ok(await waitFor(() => /sent 2000/.test(g.out()), 30000));
      writeFileSync(conf, base + `\n[[sink]]\ntype = "file"\npath = "${join(dir, 'reload.log')}"\nformat = "json"\n`);
      a.d.kill('SIGHUP');
      assert.ok(await waitFor(() => /configuration reloaded/.test(a.o.err())), a.o.err());
      await g.done;
      assert.ok(await allStored(['--db', db], N), a.o.err());
      const c = tally(rows(['--db', db]));
      assert.deepEqual(c.dup.slice(0, 10), []);
      assert.equal(c.closed, N);
      assert.equal(await t.stop(a.d), 0, a.o.err());
      assert.doesNotMatch(a.o.err(), /resync done|overrun/, 'the unchanged source kept its socket');
    } finally {
      await t.stop(gen);
      await t.stop(a.d);
    }
  });

  it('a source with a socket filter: the start-up dump keeps to the filter, entry by entry (the kernel filters dump datagrams whole)', async () => {
    // 300 entries from an address the filter excludes, 300 from one it keeps,
    // all in the table before the daemon starts: the start-up dump brings them
    const N = 300;
    const EXCL = '10.99.1.77';
    const ins = (src: string, i: number) => ['conntrack', '-I', '-s', src, '-d', ADDR.srv, '-p', 'udp', '--sport', String(30000 + i), '--dport', '5353', '-t', '300'];
    for (let i = 0; i < N; i++) {
      t.exec(t.rtr, ins(EXCL, i));
      t.exec(t.rtr, ins(ADDR.cli, i));
    }
    const db = join(dir, 'filtered.db');
    const conf = join(dir, 'filtered.toml');
    writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nnot_src = ["${EXCL}/32"]\n\n[store]\npath = "${db}"\nflush_interval_ms = 200\n`);
    const a = daemon(conf);
    try {
      await started(a);
      assert.match(a.o.err(), /socket filter of \d+ instructions/, a.o.err());
      const open = (src: string) => {
        const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--limit', '0', '--src', src], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
        assert.equal(r.status, 0, r.stderr);
        return (JSON.parse(r.stdout) as Row[]).filter((x) => x.orig.dport === 5353);
      };
      assert.ok(await waitFor(() => open(ADDR.cli).length >= N, 15000), `kept: ${open(ADDR.cli).length} of ${N}\n${a.o.err()}`);
      const kept = open(ADDR.cli);
      assert.equal(kept.length, N);
      assert.ok(kept.every((x) => x.open), 'every kept entry is open (none ended as missing from the dump)');
      assert.equal(open(EXCL).length, 0, 'no entry of the excluded source is stored');
      // after the dump the socket filter is on again: a new excluded entry's event is not read
      t.exec(t.rtr, ins(EXCL, N));
      t.exec(t.rtr, ['conntrack', '-I', '-s', ADDR.cli, '-d', ADDR.srv, '-p', 'udp', '--sport', String(30000 + N), '--dport', '5353', '-t', '300']);
      assert.ok(await waitFor(() => open(ADDR.cli).length === N + 1, 10000), a.o.err());
      assert.equal(open(EXCL).length, 0);
      assert.equal(await t.stop(a.d), 0, a.o.err());
    } finally {
      await t.stop(a.d);
      t.exec(t.rtr, ['conntrack', '-F'], { allowFail: true });
    }
  });

  it('flows an earlier run left open in a namespace no source follows now are ended at the next start, not left active for ever', async () => {
    const db = join(dir, 'dropped.db');
    const conf = join(dir, 'dropped.toml');
    const src = (ns: string) => `[[source]]\nname = "${ns}"\nnetns = "${ns}"\n`;
    const store = `\n[store]\npath = "${db}"\nflush_interval_ms = 200\n`;
    writeFileSync(conf, src(t.rtr) + src(t.cli) + store);
    const a = daemon(conf);
    const openIn = () => {
      const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--limit', '0', '--src', '10.99.1.88'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as Row[];
    };
    try {
      assert.ok(await waitFor(() => (a.o.err().match(/start-up sync done/g) ?? []).length >= 2, 15000), a.o.err());
      for (let i = 0; i < 5; i++) t.exec(t.cli, ['conntrack', '-I', '-s', '10.99.1.88', '-d', ADDR.srv, '-p', 'udp', '--sport', String(41000 + i), '--dport', '53', '-t', '300']);
      assert.ok(await waitFor(() => openIn().filter((x) => x.open).length === 5, 10000), a.o.err());
      assert.equal(await t.stop(a.d), 0, a.o.err());
    } finally {
      await t.stop(a.d);
    }
    // the namespace is still there (its entries too), but no source follows it now
    writeFileSync(conf, src(t.rtr) + store);
    const b = daemon(conf);
    try {
      await started(b);
      assert.ok(await waitFor(() => openIn().every((x) => !x.open), 10000), JSON.stringify(openIn()));
      const ended = openIn();
      assert.equal(ended.length, 5, 'each once');
      assert.ok(ended.every((x) => x.flags.includes('end-estimated') && x.end_err_us > 0), JSON.stringify(ended));
      assert.match(b.o.err(), /5 flows left open by an earlier run in network namespaces no source follows now were ended/);
      assert.equal(await t.stop(b.d), 0, b.o.err());
    } finally {
      await t.stop(b.d);
      t.exec(t.cli, ['conntrack', '-F'], { allowFail: true });
    }
  });

  it('an overrun with resync off is still recorded as a gap in the trail, and who says so for a question about then', async () => {
    const db = join(dir, 'noresync.db');
    const conf = join(dir, 'noresync.toml');
    writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nresync = false\nbuffer_size = 8192\nbuffer_max = 8192\n\n[store]\npath = "${db}"\nflush_interval_ms = 200\n`);
    const a = daemon(conf);
    try {
      await started(a);
      const t0 = Date.now();
      // overflow the receive buffer while the daemon cannot read
      process.kill(a.d.pid!, 'SIGSTOP');
      t.exec(t.cli, ['python3', GEN, ADDR.srv, '3000', '0', '3000']);
      process.kill(a.d.pid!, 'SIGCONT');
      assert.ok(await waitFor(() => /netlink overrun/.test(a.o.err()), 10000), a.o.err());
      const gaps = () => {
        const g = new Database(db, { readonly: true });
        try { return g.prepare('SELECT since, until, reason FROM gaps').all() as Array<{ since: number; until: number; reason: string }>; } finally { g.close(); }
      };
      assert.ok(await waitFor(() => gaps().some((g) => /resync is off/.test(g.reason)), 10000), JSON.stringify(gaps()));
      const g = gaps().find((x) => /resync is off/.test(x.reason))!;
      assert.ok(g.since <= g.until && g.since >= (t0 - 2000) * 1000, JSON.stringify(g));
      const at = new Date(Math.floor(g.until / 1000)).toISOString();
      const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'who', ADDR.rtrOut, '--db', db, '--at', at, '--json'], { encoding: 'utf8' });
      const ans = JSON.parse(r.stdout) as { verdict: string; gaps: Array<{ reason: string }> };
      assert.ok(ans.gaps.some((x) => /resync is off/.test(x.reason)), r.stdout);
      assert.notEqual(ans.verdict, 'exact', 'a question about a time events were lost is never answered exact');
      assert.equal(await t.stop(a.d), 0, a.o.err());
    } finally {
      await t.stop(a.d);
      // the next test starts from an empty table
      t.exec(t.rtr, ['conntrack', '-F'], { allowFail: true });
    }
  });

  it('a spool left by a run whose PostgreSQL was down is replayed at start, and the start-up sync does not end the flows in it', async () => {
    pg = await startPostgres();
    const spool = join(dir, 'pg-spool');
    const conf = join(dir, 'pg.toml');
    writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\n\n[store]\ntype = "postgres"\nurl = "${pg.url}"\nspool_dir = "${spool}"\nflush_interval_ms = 200\n`);
    const N = 3000;
    // the flows outlive the restart with room to spare; none of an earlier test's is left
    t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '15' });
    t.exec(t.rtr, ['conntrack', '-F'], { allowFail: true });
    let a = daemon(conf);
    await started(a);
    try {
      await pg.stop();
      t.exec(t.cli, ['python3', GEN, ADDR.srv, String(N), '3000']);
      assert.ok(await waitFor(() => /spooling to/.test(a.o.err()), 15000), a.o.err());
      assert.equal(await t.stop(a.d), 0, a.o.err());
      assert.ok(readdirSync(spool).some((f) => f.endsWith('.batch')), 'a spool is left');
      await pg.start();
      a = daemon(conf);
      await started(a);
      assert.ok(await waitFor(() => /spool replayed/.test(a.o.err()), 30000), a.o.err());
      assert.ok(await allStored(['--postgres', pg.url], N), a.o.err());
      const c = tally(rows(['--postgres', pg.url]));
      assert.deepEqual(c.dup.slice(0, 10), []);
      assert.equal(c.closed, N);
      assert.doesNotMatch(a.o.err(), /flows no longer in the table will be ended/, 'no flow of the spool was taken for ended');
      assert.equal(await t.stop(a.d), 0, a.o.err());
      const m = /flows_written=(\d+) /.exec(a.o.err().split('\n').filter((l) => /stopped:/.test(l)).pop() ?? '');
      assert.equal(Number(m?.[1]), N, 'the counter is the rows written in this run');
    } finally {
      await t.stop(a.d);
      t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '5' });
    }
  });
});
