// Overrun recovery, measured: a daemon with a small receive buffer meets a
// burst of N UDP flows (one datagram each, so each expires exactly 1 s
// after it began and its end is known), stored in SQLite. Reports how the
// buffer grew (how many overruns, over how long), how many flows were
// stored, twice, or missed, how many were settled (DESTROY lost) and how
// far their recorded ends are from the real ones. `--cli` runs another
// build of conntrail the same way (an earlier commit, side by side in one
// run: these VMs differ from day to day).
// usage: node dist/bench/overrun.js [--flows 20000] [--rate 0] [--buffer 8192] [--max 268435456] [--cli PATH/dist/src/cli/main.js]...
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, Topology, waitFor, waitSubscribed } from '../test/helpers/netns.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const N = Number(opt('--flows', '20000'));
const RATE = Number(opt('--rate', '0'));
const BUFFER = Number(opt('--buffer', '8192'));
const MAX = Number(opt('--max', '268435456'));
const clis = args.flatMap((a, i) => (a === '--cli' ? [args[i + 1]] : []));
if (!clis.length) clis.push(join(process.cwd(), 'dist', 'src', 'cli', 'main.js'));
const GEN = join(process.cwd(), 'test', 'helpers', 'udpflows.py');

interface Row { orig: { sport: number; dport: number }; open: boolean; start: string; end: string | null; start_us?: number; end_us?: number | null; end_err_us?: number; duration_ms?: number; flags: string[] }

const us = (r: Row, which: 'start' | 'end') => {
  const v = which === 'start' ? r.start_us : r.end_us;
  if (typeof v === 'number') return v;
  const t = which === 'start' ? r.start : r.end;
  return Date.parse(t!) * 1000;
};
const pct = (a: number[], p: number) => (a.length ? [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor((p / 100) * a.length))] : NaN);
const ms = (x: number) => (Number.isNaN(x) ? '-' : (x / 1000).toFixed(1));

async function runOne(cli: string, t: Topology, dir: string): Promise<string> {
  const db = join(dir, `flows-${Math.random().toString(36).slice(2)}.db`);
  const conf = join(dir, 'overrun.toml');
  writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\nbuffer_size = ${BUFFER}\nbuffer_max = ${MAX}\n\n[store]\npath = "${db}"\nflush_interval_ms = 200\n`);
  const d = t.spawn('', [process.execPath, cli, 'run', '--config', conf]);
  const o = collect(d);
  // when each overrun warning arrived
  const warnAt: number[] = [];
  let seen = 0;
  d.stderr?.on('data', () => {
    const n = (o.err().match(/netlink overrun/g) ?? []).length;
    for (; seen < n; seen++) warnAt.push(performance.now());
  });
  if (!(await waitSubscribed(d.pid!, 10000, t.rtr))) throw new Error(o.err());
  await waitFor(() => /start-up sync done/.test(o.err()), 15000);
  const t0 = performance.now();
  t.exec(t.cli, ['python3', GEN, ADDR.srv, String(N), String(RATE), String(N)]);
  const sent = performance.now();
  const read = () => {
    const r = spawnSync(process.execPath, [cli, 'flows', '--db', db, '--json', '--limit', '0', '--proto', 'udp', '--src', ADDR.cli], { encoding: 'utf8', maxBuffer: 1 << 30 });
    return r.status === 0 ? (JSON.parse(r.stdout) as Row[]) : [];
  };
  await waitFor(() => {
    t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true });
    const r = read();
    return r.filter((x) => !x.open).length >= N && !r.some((x) => x.open);
  }, 60000);
  await t.stop(d);
  const rows = read();
  const keys = new Map<string, number>();
  for (const r of rows) { const k = `${r.orig.sport}>${r.orig.dport}`; keys.set(k, (keys.get(k) ?? 0) + 1); }
  const dup = [...keys.values()].filter((n) => n > 1).reduce((a, n) => a + n - 1, 0);
  const settled = rows.filter((r) => r.flags.includes('end-estimated'));
  // each flow is one datagram: it ended 1 s after it began
  const off = settled.map((r) => us(r, 'end') - (us(r, 'start') + 1_000_000));
  const err = settled.map((r) => r.end_err_us ?? NaN).filter((x) => !Number.isNaN(x));
  const inside = settled.filter((r) => r.end_err_us !== undefined && us(r, 'start') + 1_000_000 <= us(r, 'end') + 10_000 && us(r, 'start') + 1_000_000 >= us(r, 'end') - r.end_err_us - 10_000).length;
  const grown = [...o.err().matchAll(/grown from (\d+) to (\d+)/g)].map((m) => `${m[1]}→${m[2]}`);
  const stop = /stopped: source conntrack: events=\d+ datagrams=\d+ overflows=(\d+) kernel_drops=(\d+) resyncs=(\d+)/.exec(o.err());
  const flowsLine = /flows: open=\d+ opened=\d+ closed=\d+ partial=(\d+) settled=(\d+)/.exec(o.err());
  return [
    cli,
    `  burst: ${N} flows sent in ${((sent - t0) / 1000).toFixed(2)} s; receive buffer asked ${BUFFER}, buffer_max ${MAX}`,
    `  overruns: ${stop?.[1]} (warnings ${warnAt.length}, the last ${warnAt.length ? ((warnAt[warnAt.length - 1] - t0) / 1000).toFixed(2) : '-'} s after the burst began), kernel drops ${stop?.[2]}, resyncs ${stop?.[3]}; buffer ${grown.join(', ') || 'not grown'}`,
    `  stored: ${rows.length} rows, ${keys.size} distinct flows of ${N}, ${dup} duplicates, ${N - keys.size} missing; partial ${flowsLine?.[1]}, settled ${flowsLine?.[2]}`,
    `  settled flows' recorded end minus real end (ms): p50 ${ms(pct(off, 50))}, p99 ${ms(pct(off, 99))}, max ${off.length ? ms(Math.max(...off)) : '-'}` +
      (err.length ? `; end_err (ms) p50 ${ms(pct(err, 50))}, p99 ${ms(pct(err, 99))}, max ${ms(Math.max(...err))}; the real end within [end - end_err, end] for ${inside}/${settled.length}` : '; no end uncertainty recorded'),
  ].join('\n');
}

const t = new Topology('ovb');
const dir = mkdtempSync(join(tmpdir(), 'conntrail-ovb-'));
try {
  t.up();
  t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '1' });
  for (const cli of clis) {
    console.log(await runOne(cli, t, dir));
    // the table empties between runs
    await waitFor(() => { t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true }); return t.exec(t.rtr, ['conntrack', '-C']).trim() === '0'; }, 30000);
  }
} finally {
  t.down();
  rmSync(dir, { recursive: true, force: true });
}
