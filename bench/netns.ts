// Following network namespaces, measured: one daemon with a conntrack
// source `netns = "PREFIX-*"` (flows into a SQLite store, events into a
// file sink).
//  1. attach latency: for each of N namespaces made one after another, the
//     time from `ip netns add` to the first event of that namespace the
//     daemon recorded (its JSON record's time_us: when the daemon read it),
//     while a generator in the namespace opens a flow every millisecond from
//     as soon as the namespace is set up (lo up, one nft rule); median and max.
//  2. idle cost: RSS, PSS and CPU over an idle interval with M namespaces
//     attached, beside the same daemon attached to none, and beside the
//     one-logger-per-namespace way (`conntrack -E` in each of the M).
//  3. the generator's ceiling split over S namespaces at once: in each, a
//     generator opens F flows as fast as it can (UDP to a new port on lo:
//     one NEW event each); what the daemon recorded against each
//     namespace's nft counter, beside one `conntrack -E -e NEW` per namespace.
// usage: node dist/bench/netns.js [--creations 50] [--idle 200] [--idle-secs 30] [--split 10] [--flows 10000] [--parts "latency idle split"]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const CREATIONS = Number(opt('--creations', '50'));
const IDLE = Number(opt('--idle', '200'));
const IDLE_SECS = Number(opt('--idle-secs', '30'));
const SPLIT = Number(opt('--split', '10'));
const FLOWS = Number(opt('--flows', '10000'));
const PARTS = opt('--parts', 'latency idle split').split(/\s+/);
const PREFIX = `bn${process.pid % 1000}`;
const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const RULES = 'table inet t {\n chain o {\n  type filter hook output priority 0;\n  ct state new counter\n }\n}\n';
// One generator for all (no interpreter start-up in the measure): for each
// namespace name on stdin it enters the namespace (setns), then opens a flow
// every millisecond (a new port each) until the next name, at most 5 s.
const GEN = `import ctypes, os, select, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
for line in sys.stdin:
    fd = os.open("/run/netns/" + line.strip(), os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0: sys.exit("setns: %d" % ctypes.get_errno())
    os.close(fd)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(5000):
        s.sendto(b"x", ("127.0.0.1", 30000 + i))
        if select.select([sys.stdin], [], [], 0.001)[0]: break
    s.close()
`;

const made = new Set<string>();
const procs: ChildProcess[] = [];
const sh = (cmd: string[], input?: string) => {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
function addNs(ns: string): void {
  sh(['ip', 'netns', 'add', ns]);
  made.add(ns);
  sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  sh(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], RULES);
}
function delNs(ns: string): void {
  spawnSync('ip', ['netns', 'del', ns]);
  made.delete(ns);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(pred: () => boolean, maxMs: number): Promise<boolean> {
  const end = Date.now() + maxMs;
  while (Date.now() < end) { if (pred()) return true; await sleep(2); }
  return pred();
}
function cpuTicks(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(x[11]) + Number(x[12]);
  } catch { return 0; }
}
const kib = (pid: number, file: string, key: string) => {
  try { return Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'))?.[1] ?? 0); } catch { return 0; }
};

function daemon(dir: string, pattern: string): { p: ChildProcess; err: () => string; out: string } {
  const out = join(dir, 'events.json');
  const conf = join(dir, 'follow.toml');
  writeFileSync(conf, `[[source]]\nname = "ct"\nnetns = "${pattern}"\n\n[[sink]]\ntype = "file"\npath = "${out}"\nformat = "json"\n\n` +
    `[store]\ntype = "sqlite"\npath = "${join(dir, 'flows.db')}"\nspool_dir = "${join(dir, 'spool')}"\n`);
  const p = spawn(process.execPath, ['--max-semi-space-size=4', CLI, 'run', '--config', conf], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  procs.push(p);
  let err = '';
  p.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  return { p, err: () => err, out };
}
const attachedCount = (err: string) => (err.match(/: attached to network namespace /g) ?? []).length;

/** the first record of namespace `ns` in a growing JSON-lines file, read from `from` on */
class Tail {
  private pos = 0;
  private rest = '';
  constructor(private readonly path: string) {}
  first(ns: string): number | undefined {
    if (!existsSync(this.path)) return undefined;
    const size = statSync(this.path).size;
    if (size <= this.pos) return undefined;
    const fd = openSync(this.path, 'r');
    const b = Buffer.alloc(size - this.pos);
    readSync(fd, b, 0, b.length, this.pos);
    closeSync(fd);
    this.pos = size;
    const text = this.rest + b.toString('utf8');
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.includes(`"netns":"${ns}"`)) continue;
      return (JSON.parse(l) as { time_us: number }).time_us;
    }
    return undefined;
  }
}

async function latency(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-bnl-'));
  const d = daemon(dir, `${PREFIX}-l*`);
  try {
    if (!(await waitFor(() => d.err().includes('started with'), 20000))) throw new Error(`daemon: ${d.err()}`);
    const tail = new Tail(d.out);
    const fromAdd: number[] = [];
    const fromSetup: number[] = [];
    const g = spawn('python3', ['-c', GEN], { stdio: ['pipe', 'ignore', 'inherit'], detached: true });
    procs.push(g);
    for (let i = 0; i < CREATIONS; i++) {
      const ns = `${PREFIX}-l${i}`;
      const t0 = Date.now() * 1000;
      addNs(ns);
      const t1 = Date.now() * 1000;
      g.stdin!.write(`${ns}\n`);
      let first: number | undefined;
      await waitFor(() => (first = tail.first(ns)) !== undefined, 10000);
      if (first === undefined) throw new Error(`no event recorded from ${ns}: ${d.err().slice(-2000)}`);
      fromAdd.push((first - t0) / 1000);
      fromSetup.push((first - t1) / 1000);
      // (the generator holds it until the next name: deleted after)
      if (i > 0) delNs(`${PREFIX}-l${i - 1}`);
    }
    g.stdin!.end();
    await new Promise((r) => (g.exitCode !== null ? r(null) : g.once('exit', r)));
    const med = (a: number[]) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
    return `| attach latency over ${CREATIONS} namespaces made one after another | from \`ip netns add\`: median ${med(fromAdd).toFixed(1)} ms, max ${Math.max(...fromAdd).toFixed(1)} ms | from its set-up done (lo up, nft rule): median ${med(fromSetup).toFixed(1)} ms, max ${Math.max(...fromSetup).toFixed(1)} ms |`;
  } finally {
    try { process.kill(-d.p.pid!, 'SIGTERM'); } catch { /* gone */ }
    await new Promise((r) => (d.p.exitCode !== null ? r(null) : d.p.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Idle { rssMiB: number; pssMiB: number; cpuS: number }
async function measureIdle(pids: number[]): Promise<Idle> {
  await sleep(3000); // settled (start-up syncs, the first store batches)
  const c0 = pids.reduce((s, p) => s + cpuTicks(p), 0);
  await sleep(IDLE_SECS * 1000);
  const cpu = (pids.reduce((s, p) => s + cpuTicks(p), 0) - c0) / TICK;
  return {
    rssMiB: pids.reduce((s, p) => s + kib(p, 'status', 'VmRSS'), 0) / 1024,
    pssMiB: pids.reduce((s, p) => s + kib(p, 'smaps_rollup', 'Pss'), 0) / 1024,
    cpuS: cpu,
  };
}

async function idleDaemon(pattern: string, want: number): Promise<Idle> {
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-bni-'));
  const d = daemon(dir, pattern);
  try {
    if (!(await waitFor(() => d.err().includes('started with') && attachedCount(d.err()) >= want, 120000))) throw new Error(`daemon: attached ${attachedCount(d.err())} of ${want}: ${d.err().slice(-2000)}`);
    return await measureIdle([d.p.pid!]);
  } finally {
    try { process.kill(-d.p.pid!, 'SIGTERM'); } catch { /* gone */ }
    await new Promise((r) => (d.p.exitCode !== null ? r(null) : d.p.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function idlePeers(names: string[]): Promise<Idle> {
  const ps = names.map((ns) => {
    const p = spawn('ip', ['netns', 'exec', ns, 'conntrack', '-E'], { stdio: 'ignore', detached: true });
    procs.push(p);
    return p;
  });
  try {
    // `ip netns exec` execs conntrack: the pid is conntrack's once it has
    await waitFor(() => ps.every((p) => { try { return readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim() === 'conntrack'; } catch { return false; } }), 30000);
    return await measureIdle(ps.map((p) => p.pid!));
  } finally {
    for (const p of ps) try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ }
  }
}

// F flows as fast as one process opens them
const BURST = `import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = int(sys.argv[1])
t0 = time.monotonic()
for i in range(n):
    s.sendto(b"x", ("127.%d.%d.1" % (i // 250 % 250, i % 250 + 1), 7000))
print(n / (time.monotonic() - t0), flush=True)
`;
const newCount = (ns: string) => Number(/ct state new counter packets (\d+)/.exec(sh(['ip', 'netns', 'exec', ns, 'nft', 'list', 'chain', 'inet', 't', 'o']))?.[1] ?? -1);

async function split(): Promise<string[]> {
  const names = Array.from({ length: SPLIT }, (_, i) => `${PREFIX}-s${i}`);
  const rows: string[] = [];
  for (const peer of ['conntrail', 'conntrack -E']) {
    for (const ns of names) { addNs(ns); sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_udp_timeout=1']); }
    const dir = mkdtempSync(join(tmpdir(), 'conntrail-bns-'));
    let pids: number[] = [];
    let d: ReturnType<typeof daemon> | undefined;
    const refs: Array<{ ns: string; p: ChildProcess; out: string }> = [];
    try {
      if (peer === 'conntrail') {
        d = daemon(dir, `${PREFIX}-s*`);
        if (!(await waitFor(() => d!.err().includes('started with') && attachedCount(d!.err()) >= SPLIT, 60000))) throw new Error(`daemon: ${d.err().slice(-2000)}`);
        pids = [d.p.pid!];
      } else {
        for (const ns of names) {
          const out = join(dir, `${ns}.log`);
          const p = spawn('sh', ['-c', `exec ip netns exec ${ns} conntrack -E -e NEW -b 67108864 > ${out}`], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
          procs.push(p);
          refs.push({ ns, p, out });
        }
        await waitFor(() => refs.every((r) => { try { return readFileSync(`/proc/${r.p.pid}/comm`, 'utf8').trim() === 'conntrack'; } catch { return false; } }), 30000);
        await sleep(500);
        pids = refs.map((r) => r.p.pid!);
      }
      const c0 = pids.reduce((x, p) => x + cpuTicks(p), 0);
      const t0 = Date.now();
      const gens = names.map((ns) => spawn('ip', ['netns', 'exec', ns, 'python3', '-c', BURST, String(FLOWS)], { stdio: ['ignore', 'pipe', 'inherit'], detached: true }));
      procs.push(...gens);
      await Promise.all(gens.map((g) => new Promise((r) => g.once('exit', r))));
      const genSecs = (Date.now() - t0) / 1000;
      const sent = names.map(newCount);
      const got = (ns: string) => {
        if (d) return existsSync(d.out) ? (readFileSync(d.out, 'utf8').match(new RegExp(`"event":"new"[^\n]*"netns":"${ns}"`, 'g')) ?? []).length : 0;
        const r = refs.find((x) => x.ns === ns)!;
        return existsSync(r.out) ? readFileSync(r.out, 'utf8').split('\n').filter((l) => l.includes('[NEW]')).length : 0;
      };
      // drained: all recorded, or nothing more for 2 s
      let last = -1;
      let still = 0;
      await waitFor(() => {
        const n = names.reduce((x, ns) => x + got(ns), 0);
        if (n >= sent.reduce((x, y) => x + y, 0)) return true;
        if (n === last) still++; else { still = 0; last = n; }
        return still >= 1000;
      }, 120000);
      const cpu = (pids.reduce((x, p) => x + cpuTicks(p), 0) - c0) / TICK;
      const total = sent.reduce((x, y) => x + y, 0);
      const recorded = names.reduce((x, ns) => x + got(ns), 0);
      const worst = Math.max(...names.map((ns, i) => (sent[i] - got(ns)) / sent[i]));
      rows.push(`| ${peer === 'conntrail' ? 'conntrail run, one process' : '`conntrack -E -e NEW`, one per namespace'} | ${SPLIT} | ${total} | ${Math.round(total / genSecs)} | ${recorded} | ${(((total - recorded) / total) * 100).toFixed(3)} | ${(worst * 100).toFixed(3)} | ${cpu.toFixed(2)} | ${((cpu / Math.max(recorded, 1)) * 1e5).toFixed(3)} |`);
    } finally {
      if (d) { try { process.kill(-d.p.pid!, 'SIGTERM'); } catch { /* gone */ } await new Promise((r) => (d!.p.exitCode !== null ? r(null) : d!.p.once('exit', r))); }
      for (const r of refs) try { process.kill(-r.p.pid!, 'SIGKILL'); } catch { /* gone */ }
      for (const ns of names) delNs(ns);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

try {
  console.log(`machine: ${sh(['nproc']).trim()} CPUs, ${sh(['uname', '-r']).trim()}, node ${process.version}\n`);
  if (PARTS.includes('split')) {
    console.log(`the generator's ceiling split over ${SPLIT} namespaces (${FLOWS} flows each, all at once):\n`);
    console.log('| logger | namespaces | NEW events (nft counters) | achieved/s | recorded | loss % | worst namespace loss % | CPU s | CPU s/100k |\n|---|---|---|---|---|---|---|---|---|');
    for (const r of await split()) console.log(r);
    console.log('');
  }
  if (PARTS.includes('latency')) {
    console.log('| measure | result | |\n|---|---|---|');
    console.log(await latency());
  }
  if (!PARTS.includes('idle')) process.exit(0);
  const names = Array.from({ length: IDLE }, (_, i) => `${PREFIX}-i${i}`);
  for (const ns of names) addNs(ns);
  const none = await idleDaemon(`${PREFIX}-none-*`, 0);
  const all = await idleDaemon(`${PREFIX}-i*`, IDLE);
  const peers = await idlePeers(names);
  console.log(`\nidle for ${IDLE_SECS} s:\n`);
  console.log('| what | namespaces | RSS MiB | PSS MiB | CPU s | per namespace: PSS KiB, CPU ms/min |\n|---|---|---|---|---|---|');
  const row = (what: string, n: number, x: Idle, base?: Idle) => {
    const per = n ? `${(((x.pssMiB - (base?.pssMiB ?? 0)) * 1024) / n).toFixed(0)}, ${((((x.cpuS - (base?.cpuS ?? 0)) * 1000) / n) * (60 / IDLE_SECS)).toFixed(2)}` : '-';
    return `| ${what} | ${n} | ${x.rssMiB.toFixed(1)} | ${x.pssMiB.toFixed(1)} | ${x.cpuS.toFixed(2)} | ${per} |`;
  };
  console.log(row('conntrail run, attached to none', 0, none));
  console.log(row('conntrail run, one process for all', IDLE, all, none));
  console.log(row('`conntrack -E`, one per namespace', IDLE, peers));
} finally {
  for (const p of procs) try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ }
  for (const ns of made) spawnSync('ip', ['netns', 'del', ns]);
}
