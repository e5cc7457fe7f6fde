// Flow records as a sink's records (`records = "flows"`): one JSON line per
// flow when it ends, with the NAT translation, through a router namespace
// that masquerades three inside hosts. Ground truth from both ends: the
// server logs each connection as it saw it (the public address and port,
// and which inside host the client said it was), and `conntrack -E -e
// DESTROY -o id` in the router sees every flow end. Without a store (the
// sink alone) and with SQLite beside it (the file holds what the store does).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { shortTimeouts } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';
import { ensureJournald, journalEntries } from '../helpers/journald.js';
import type { PlanItem, SeenLine } from '../helpers/natpeer.js';

const PEER = join(process.cwd(), 'dist', 'test', 'helpers', 'natpeer.js');
const HOSTS = ['10.99.1.2', '10.99.1.3', '10.99.1.4'];
/** the processes' clocks (the same system clock, read a little apart) */
const MARGIN_US = 2_000;

interface FlowLine {
  start_us: number; end_us: number; end_err_us: number; duration_us: number; open: boolean; proto: string;
  orig: { src: string; sport: number; dst: string; dport: number }; nat: string;
  snat: { inside: { addr: string; port: number }; public: { addr: string; port: number } } | null;
  packets: { orig: number | null; reply: number | null }; bytes: { orig: number | null; reply: number | null };
  id: number; flags: string[]; netns: string; netns_inode?: number; corrects: boolean;
}

function plan(tag: string, n: number): PlanItem[] {
  const items: PlanItem[] = [];
  for (let i = 0; i < n; i++) {
    const tcp = i % 4 !== 3;
    items.push({ id: `${tag}${i}`, host: HOSTS[i % 3], proto: tcp ? 'tcp' : 'udp', dst: ADDR.srv, dport: tcp ? 5001 : 5005, at: i * 40, hold: 100 + (i % 5) * 60 });
  }
  return items;
}

/** the DESTROYs `conntrack -E -e DESTROY -o id` printed: protocol, original source and port, id */
function destroys(text: string): string[] {
  const out: string[] = [];
  for (const l of text.split('\n')) {
    const m = /^\s*\[DESTROY\] (\w+)\s+\d+ .*?src=(\S+) dst=\S+ sport=(\d+) .*\bid=(\d+)/.exec(l);
    if (m) out.push(`${m[1]} ${m[2]}:${m[3]} id=${m[4]}`);
  }
  return out.sort();
}

const flowKey = (f: FlowLine) => `${f.proto} ${f.orig.src}:${f.orig.sport} id=${f.id}`;

function readFlows(path: string): FlowLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as FlowLine);
}

async function scenario(t: Topology, dir: string, tag: string, store: string, extraSinks = ''): Promise<{ flows: FlowLine[]; err: string }> {
  const flowsFile = join(dir, `${tag}-flows.jsonl`);
  const eventsFile = join(dir, `${tag}-events.log`);
  const conf = join(dir, `${tag}.toml`);
  writeFileSync(conf, `[[source]]\nname = "rtr"\nnetns = "${t.rtr}"\nenable_timestamps = true\nenable_accounting = true\n\n${store}\n\n` +
    `[[sink]]\ntype = "file"\npath = "${flowsFile}"\nrecords = "flows"\n\n[[sink]]\ntype = "file"\npath = "${eventsFile}"\noutput = ["id"]\n${extraSinks}`);
  const ref = t.spawn(t.rtr, ['conntrack', '-E', '-e', 'DESTROY', '-o', 'id']);
  const refOut = collect(ref);
  const d = t.spawn('', [...CONNTRAIL, 'run', '--config', conf]);
  const dOut = collect(d);
  const srv = t.spawn(t.srv, [process.execPath, PEER, 'server', '[5001]', '[5005]']);
  const srvOut = collect(srv);
  try {
    assert.ok(await waitSubscribed(ref.pid!), refOut.err());
    assert.ok(await waitSubscribed(d.pid!, 10000, t.rtr), dOut.err());
    assert.ok(await waitFor(() => /start-up sync done/.test(dOut.err())), dOut.err());
    assert.ok(await waitFor(() => srvOut.out().includes('ready')));
    const items = plan(tag, 36);
    const cl = t.spawn(t.cli, [process.execPath, PEER, 'client', JSON.stringify(items)]);
    const clOut = collect(cl);
    await clOut.done;
    assert.doesNotMatch(clOut.out(), /"ev":"error"/, 'every planned connection was made');
    // every connection ends in the kernel's table too: a dump reaps what has expired (its DESTROY comes at once)
    assert.ok(await waitFor(() => t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true }).trim() === '', 20000), 'the router table emptied');
    // (what conntrack -E printed reaches this process a moment later)
    assert.ok(await waitFor(() => destroys(refOut.out()).length >= items.length, 10000), `conntrack -E saw every flow end: ${destroys(refOut.out()).length}`);
    const want = destroys(refOut.out());
    // the flow sink has one line per DESTROY conntrack -E saw, and no other
    assert.ok(await waitFor(() => readFlows(flowsFile).length >= want.length, 15000), `${readFlows(flowsFile).length} of ${want.length} flows\n${dOut.err()}`);
    const seenLines = srvOut.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as SeenLine | { ev: string });
    {
      assert.equal(await t.stop(d), 0, dOut.err());
      const flows = readFlows(flowsFile);
      assert.deepEqual(flows.map(flowKey).sort(), want, 'each flow once, as conntrack saw it end');
      const ino = statSync(`/run/netns/${t.rtr}`).ino;
      for (const f of flows) {
        assert.equal(f.netns, t.rtr);
        assert.equal(f.netns_inode, ino);
        assert.equal(f.open, false);
        assert.equal(f.corrects, false);
        // NEW and DESTROY seen, kernel times (an expired flow's end of activity is estimated from its timeout)
        assert.deepEqual(f.flags.filter((x) => x !== 'active-estimated'), [], JSON.stringify(f));
        assert.equal(f.end_err_us, 0);
        assert.ok(f.end_us >= f.start_us && f.duration_us === f.end_us - f.start_us);
      }
      // the server's side: each connection it saw is one flow, from the inside host it named, through the public port it saw
      const opens = seenLines.filter((e): e is SeenLine => e.ev === 'open' && (e as SeenLine).id.startsWith(tag));
      const closes = new Map(seenLines.filter((e): e is SeenLine => e.ev === 'close').map((e) => [e.id, e.t]));
      assert.equal(opens.length, items.length, 'the server saw every connection');
      for (const c of opens) {
        const m = flows.filter((f) => f.proto === c.proto && f.nat === 'snat' && f.snat!.public.addr === c.peer && f.snat!.public.port === c.pport &&
          f.orig.dport === c.lport && f.start_us - MARGIN_US <= c.t && f.end_us + MARGIN_US >= (closes.get(c.id) ?? c.t));
        assert.equal(m.length, 1, `${c.id} ${c.proto} ${c.peer}:${c.pport}: ${JSON.stringify(m)}`);
        assert.equal(m[0].snat!.inside.addr, c.host);
        assert.equal(m[0].orig.src, c.host);
        assert.equal(m[0].orig.dst, ADDR.srv);
        assert.ok((m[0].bytes.orig ?? 0) > 0 && (m[0].bytes.reply ?? 0) > 0, JSON.stringify(m[0]));
      }
      // the events sink got the events as before, not flow records
      const ev = readFileSync(eventsFile, 'utf8');
      assert.equal(destroys(ev).length, want.length);
      assert.match(ev, /^\s*\[NEW\] tcp /m);
      return { flows, err: dOut.err() };
    }
  } finally {
    await t.stop(d);
    await Promise.all([srv, ref].map((p) => t.stop(p)));
  }
}

describe('flow records to a sink (records = "flows")', { timeout: 300_000 }, () => {
  const t = new Topology('fsink');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-fsink-'));
  before(() => {
    t.up();
    for (const h of HOSTS.slice(1)) t.exec(t.cli, ['ip', 'addr', 'add', `${h}/24`, 'dev', `${t.prefix}c0`]);
    shortTimeouts(t);
  });
  after(() => {
    t.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('without a store: one JSON line per flow, each DESTROY once, matching what the server saw; the journal has them with FLOW_* fields', async () => {
    const stopJournald = await ensureJournald();
    const tag = `ctflows${process.pid}`;
    try {
      const { flows, err } = await scenario(t, dir, 'a', '[store]\ntype = "none"', `\n[[sink]]\ntype = "journal"\nrecords = "flows"\ntag = "${tag}"\n`);
      assert.match(err, new RegExp(`stopped: .*flows: open=0 opened=\\d+ closed=${flows.length} .*records_sent=${flows.length} records_unsent=0`));
      // journald takes the datagrams at once; journalctl sees them after its next sync
      assert.ok(await waitFor(() => journalEntries(tag).length >= flows.length, 15000), `${journalEntries(tag).length} of ${flows.length} journal entries`);
      const entries = journalEntries(tag);
      assert.equal(entries.length, flows.length);
      for (const f of flows) {
        const e = entries.filter((x) => x.FLOW_ID === String(f.id) && x.FLOW_SRC === f.orig.src && x.FLOW_SPORT === String(f.orig.sport));
        assert.equal(e.length, 1, JSON.stringify(f));
        assert.equal(e[0].FLOW_SNAT_ADDR, f.snat!.public.addr);
        assert.equal(e[0].FLOW_SNAT_PORT, String(f.snat!.public.port));
        assert.equal(e[0].FLOW_NAT, 'snat');
        assert.equal(e[0].FLOW_START_US, String(f.start_us));
        assert.equal(e[0].FLOW_END_US, String(f.end_us));
        assert.equal(e[0].FLOW_ORIG_BYTES, String(f.bytes.orig));
        assert.equal(e[0].FLOW_NETNS, t.rtr);
        assert.equal(e[0].MESSAGE, JSON.stringify(f));
      }
    } finally {
      stopJournald();
    }
  });

  it('with SQLite: the file holds exactly the flows the store does', async () => {
    const db = join(dir, 'flows.db');
    const { flows } = await scenario(t, dir, 'b', `[store]\npath = "${db}"\nflush_interval_ms = 100`);
    const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--limit', '0'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const stored = (JSON.parse(r.stdout) as Array<Record<string, unknown>>).filter((f) => !f.open);
    const strip = (f: Record<string, unknown>) => { const { corrects: _c, netns_inode: _i, ...rest } = f; return JSON.stringify(rest); };
    assert.deepEqual(flows.map((f) => strip(f as unknown as Record<string, unknown>)).sort(), stored.map(strip).sort());
  });
});
