// TCP state changes, measured side by side: conntrail tcpstates and
// libbpf-tools' tcpstates (0.26) each in turn trace the same kind of load: N
// TCP connections over loopback in a namespace of the bench's own, at a
// rate (each one orderly closed: 10 state changes, 5 per end; and the
// listener's own 2), from one
// Python process pinned to CPU 0; the tracer pinned to CPU 1 writes to a
// file. For each: connections/s, lines written / expected (10 per
// connection), drops counted, CPU (user+sys of the tracer) per 100k
// changes, peak RSS. Peers: conntrail (`conntrail tcpstates`), tcpstates
// (libbpf-tools), daemon (`conntrail run`: a tcpstates source into a file
// sink of tcpstates -T lines and the SQLite store, every change a row),
// daemon-nostore (the same without a store).
// usage: node dist/bench/tcpstates.js [--rates "2000 0"] [--conns 20000] [--peers "conntrail tcpstates daemon daemon-nostore"]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../test/helpers/netns.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const RATES = opt('--rates', '2000 0').split(/\s+/).map(Number);
const N = Number(opt('--conns', '20000'));
const PEERS = opt('--peers', 'conntrail tcpstates').split(/\s+/);
const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const NS = `ctbts${process.pid % 100000}`;
const PORT = 7000;


// N connections to 127.0.0.1:PORT at a rate (0: as fast as it goes); the client closes first
const LOAD = `import socket, sys, time, threading
n, rate, port = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); ls.bind(("127.0.0.1", port)); ls.listen(4096)
def serve():
    for i in range(n):
        c, _ = ls.accept()
        c.recv(1)
        c.close()
t = threading.Thread(target=serve); t.start()
t0 = time.monotonic()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.close()
    if rate > 0 and i % 16 == 15:
        ahead = t0 + (i + 1) / rate - time.monotonic()
        if ahead > 0: time.sleep(ahead)
t.join()
print(n / (time.monotonic() - t0))
`;

function cpuTicks(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch { return 0; }
}
const peakRss = (pid: number) => { try { return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024; } catch { return 0; } };
const lines = (f: string) => { try { return readFileSync(f, 'utf8').split('\n').filter((l) => / 7000 /.test(l)); } catch { return []; } };
const count = (f: string) => lines(f).length;
const opens = (f: string) => lines(f).filter((l) => /CLOSE +-> SYN_SENT /.test(l)).length;
const accepts = (f: string) => lines(f).filter((l) => /SYN_RECV +-> ESTABLISHED /.test(l)).length;

async function runOne(dir: string, peer: string, rate: number): Promise<string> {
  const out = join(dir, `${peer}-${rate}.out`);
  const ours = peer !== 'tcpstates';
  const daemon = peer.startsWith('daemon');
  if (daemon) {
    writeFileSync(join(dir, `${peer}.toml`), `[[source]]\nname = "tcp"\ntype = "tcpstates"\n[[sink]]\ntype = "file"\npath = "${out}"\nformat = "tcpstates"\n` +
      (peer === 'daemon' ? `[store]\npath = "${join(dir, `${peer}-${rate}.db`)}"\n` : '[store]\ntype = "none"\n'));
  }
  const cmd = peer === 'conntrail' ? `exec taskset -c 1 ${process.execPath} ${CLI} tcpstates --stats > ${out}`
    : daemon ? `exec taskset -c 1 ${process.execPath} ${CLI} run -c ${join(dir, `${peer}.toml`)}`
      : `exec taskset -c 1 /usr/sbin/tcpstates > ${out}`;
  const p = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr?.on('data', (d) => { err += d; });
  // attached: its header is in the file (libbpf-tools' after the first flush: wait for a probe connection)
  const probe = () => spawnSync('ip', ['netns', 'exec', NS, 'python3', '-c', 'import socket\ns=socket.socket()\ntry: s.connect(("127.0.0.1", 9))\nexcept OSError: pass'], { encoding: 'utf8' });
  const attached = () => (daemon ? /tracing TCP state changes/.test(err) : peer === 'conntrail' ? readFileSync(out, 'utf8').includes('SKADDR') : true);
  await waitFor(() => { probe(); return attached(); }, 20000);
  await new Promise((r) => setTimeout(r, ours ? 0 : 1500)); // the C peer prints nothing before its first flush: give it time to attach
  const c0 = cpuTicks(p.pid!);
  const gen = spawnSync('ip', ['netns', 'exec', NS, 'taskset', '-c', '0', 'python3', '-c', LOAD, String(N), String(rate), String(PORT)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const achieved = Number(gen.stdout.trim());
  // drained: the conntrail file has all lines, or nothing more comes for 2 s
  let last = -1;
  let still = 0;
  if (ours) {
    await waitFor(() => { const n = count(out); if (opens(out) >= N && accepts(out) >= N && n === last) return true; if (n === last) still++; else { still = 0; last = n; } return still >= 40; }, 120000);
  } else {
    await new Promise((r) => setTimeout(r, 2000));
  }
  // the daemon's store takes its last batch at the next flush (every second): within the run
  if (peer === 'daemon') await new Promise((r) => setTimeout(r, 2000));
  const cpu = (cpuTicks(p.pid!) - c0) / TICK;
  const rss = peakRss(p.pid!);
  p.kill(daemon ? 'SIGTERM' : 'SIGINT');
  await new Promise((r) => p.once('exit', r));
  const got = count(out);
  const whole = Math.min(opens(out), accepts(out));
  if (daemon && !/stopped:/.test(err)) await waitFor(() => /stopped:/.test(err), 10000);
  const drops = /drops=(\d+)/.exec(err)?.[1] ?? String([...err.matchAll(/lost (\d+) events/g)].reduce((a, m) => a + Number(m[1]), 0));
  return `| ${peer} | ${rate || 'max'} | ${Math.round(achieved)} | ${got} | ${whole}/${N} | ${(((N - whole) / N) * 100).toFixed(3)} | ${drops} | ${cpu.toFixed(2)} | ${((cpu / Math.max(got, 1)) * 1e5).toFixed(3)} | ${rss.toFixed(1)} |`;
}

const dir = mkdtempSync(join(tmpdir(), 'conntrail-tsb-'));
spawnSync('ip', ['netns', 'add', NS]);
spawnSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
try {
  if (!readFileSync('/proc/mounts', 'utf8').includes(' /sys/kernel/tracing ')) spawnSync('mount', ['-t', 'tracefs', 'nodev', '/sys/kernel/tracing']);
  console.log(`${N} connections per run (10 state changes each); generator on CPU 0, tracer on CPU 1\n`);
  console.log('| peer | conns/s asked | achieved | changes written | connections whole / made | loss % | drops counted | CPU s | CPU s/100k changes | peak RSS MiB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const rate of RATES) for (const peer of PEERS) console.log(await runOne(dir, peer, rate));
} finally {
  spawnSync('ip', ['netns', 'del', NS]);
  if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true }); else console.log(dir);
}
