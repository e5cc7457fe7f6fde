// Packet logging, measured side by side: conntrail packets (logemu,
// ulogd-json) and ulogd2 (NFLOG,BASE,IFINDEX,IP2STR,PRINTPKT,LOGEMU and
// NFLOG,BASE,IFINDEX,IP2STR,JSON) log the same kind of flood, one at a time,
// in one run: a router's forward chain logs every UDP datagram of a counted
// flood (the generator pinned to CPU 0, the logger to CPU 1). For each:
// packets/s asked and achieved, logged lines / sent (the rule's counter),
// loss, CPU (user+sys of the logger) per 100k packets, peak RSS.
// usage: [CONNTRAIL_ARGS="..."] [RUN_SOURCE_TOML='buffer_size = N'] [BENCH_LOG=1] node dist/bench/packets.js [--rates "20000 50000"] [--packets 200000] [--peers "ct-logemu ct-json ulogd-logemu ulogd-json"]
// (run-logemu, run-json: the daemon, an nflog source into a file sink)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, Topology, waitFor } from '../test/helpers/netns.js';
import { ulogdPluginDir } from '../test/helpers/ulogd.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const RATES = opt('--rates', '20000 50000').split(/\s+/).map(Number);
const N = Number(opt('--packets', '200000'));
const PEERS = opt('--peers', 'ct-logemu ct-json ulogd-logemu ulogd-json').split(/\s+/);
const GROUP = 60;
const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

// a counted UDP flood at a rate, from one socket to one port (one conntrack entry)
const FLOOD = `import socket, sys, time
dst, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.monotonic()
for i in range(n):
    s.sendto(b"x" * 32, (dst, 7777))
    if rate > 0 and i % 64 == 63:
        ahead = t0 + (i + 1) / rate - time.monotonic()
        if ahead > 0: time.sleep(ahead)
print(n / (time.monotonic() - t0))
`;

function cpuTicks(pid: number): number {
  let total = 0;
  for (const p of [pid, ...children(pid)]) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
      total += Number(fields[11]) + Number(fields[12]);
    } catch { /* gone */ }
  }
  return total;
}
function children(pid: number): number[] {
  try { return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; }
}
function peakRss(pid: number): number {
  try { return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024; } catch { return 0; }
}
const lineCount = (f: string) => { try { const b = readFileSync(f); let n = 0; for (const c of b) if (c === 10) n++; return n; } catch { return 0; } };

function ulogdConf(dir: string, kind: 'logemu' | 'json', out: string): string {
  const pd = ulogdPluginDir();
  const last = kind === 'json' ? 'JSON' : 'LOGEMU';
  const plugins = ['inppkt_NFLOG', 'raw2packet_BASE', 'filter_IFINDEX', 'filter_IP2STR', ...(kind === 'json' ? ['output_JSON'] : ['filter_PRINTPKT', 'output_LOGEMU'])];
  const path = join(dir, `ulogd-${kind}.conf`);
  writeFileSync(path, `[global]
logfile="${join(dir, 'ulogd.log')}"
loglevel=5
${plugins.map((p) => `plugin="${pd}/ulogd_${p}.so"`).join('\n')}
stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,${kind === 'json' ? '' : 'print1:PRINTPKT,'}out1:${last}
[log1]
group=${GROUP}
[out1]
file="${out}"
`);
  return path;
}

/** the log rule's packet count (it only grows) */
const counter = (t: Topology) => Number(/udp dport 7777 counter packets (\d+)/.exec(t.exec(t.rtr, ['nft', 'list', 'chain', 'inet', 'ctt', 'forward']))?.[1] ?? 0);

async function runOne(t: Topology, dir: string, peer: string, rate: number): Promise<string> {
  const out = join(dir, `${peer}-${rate}.out`);
  writeFileSync(out, '');
  let cmd: string[];
  if (peer.startsWith('run-')) {
    // the daemon: an nflog source into a file sink, no store
    const conf = join(dir, `${peer}.toml`);
    writeFileSync(conf, `[[source]]\nname = "pk"\ntype = "nflog"\ngroups = [${GROUP}]\nstore = false\n${process.env.RUN_SOURCE_TOML ?? ''}\n[[sink]]\ntype = "file"\npath = "${out}"\n` +
      `format = "${peer === 'run-json' ? 'ulogd-json' : 'logemu'}"\n[store]\ntype = "none"\n`);
    cmd = ['sh', '-c', `exec taskset -c 1 ${process.execPath} ${process.env.NODE_ARGS ?? ""} ${CLI} run -c ${conf}`];
  } else if (peer.startsWith('ct-')) {
    const fmt = peer === 'ct-json' ? 'ulogd-json' : 'logemu';
    // CONNTRAIL_ARGS: more options for conntrail (experiments, e.g. "--qthreshold 32 --timeout 10")
    cmd = ['sh', '-c', `exec taskset -c 1 ${process.execPath} ${process.env.NODE_ARGS ?? ""} ${CLI} packets --group ${GROUP} --format ${fmt} --stats ${process.env.CONNTRAIL_ARGS ?? ''} > ${out}`];
  } else {
    cmd = ['taskset', '-c', '1', 'ulogd', '-c', ulogdConf(dir, peer === 'ulogd-json' ? 'json' : 'logemu', out)];
  }
  const p = t.spawn(t.rtr, cmd);
  let err = '';
  p.stderr?.on('data', (d) => { err += d; });
  const bound = () => t.exec(t.rtr, ['cat', '/proc/net/netfilter/nfnetlink_log']).split('\n').some((l) => Number(l.trim().split(/\s+/)[0]) === GROUP);
  if (!(await waitFor(bound, 10000))) throw new Error(`${peer} did not bind group ${GROUP}: ${err}`);
  // the logger's own pid (ip netns exec / sh exec into it)
  const pid = p.pid!;
  const before = counter(t);
  const c0 = cpuTicks(pid);
  const gen = spawnSync('ip', ['netns', 'exec', t.cli, 'taskset', '-c', '0', 'python3', '-c', FLOOD, ADDR.srv, String(N), String(rate)], { encoding: 'utf8' });
  const achieved = Number(gen.stdout.trim());
  const logged = counter(t) - before;
  // drained: all lines written, or nothing more for 2 s
  let last = -1;
  let still = 0;
  await waitFor(() => {
    const n = lineCount(out);
    if (n >= logged) return true;
    if (n === last) still++; else { still = 0; last = n; }
    return still >= 20;
  }, 120000);
  const cpu = (cpuTicks(pid) - c0) / TICK;
  const rss = peakRss(pid);
  p.kill('SIGTERM');
  await new Promise((r) => p.once('exit', r));
  const got = lineCount(out);
  const st = /stats shown=\d+ packets=(\d+) seq_gaps=(\d+) datagrams=(\d+) .*overflows=(\d+)/.exec(err) ?? /source pk: packets=(\d+) seq_gaps=(\d+) datagrams=(\d+) overflows=(\d+)/.exec(err);
  if (process.env.BENCH_LOG) process.stderr.write(`--- ${peer} ${rate}:\n${err}\n`);
  const perDgram = st && Number(st[3]) > 0 ? (Number(st[1]) / Number(st[3])).toFixed(1) : '-';
  return `| ${peer} | ${rate || 'max'} | ${Math.round(achieved)} | ${got}/${logged} | ${(((logged - got) / logged) * 100).toFixed(3)} | ${st ? `${st[4]} / ${st[2]}` : '-'} | ${perDgram} | ${cpu.toFixed(2)} | ${((cpu / got) * 1e5).toFixed(3)} | ${rss.toFixed(1)} |`;
}

const t = new Topology('pkb');
const dir = mkdtempSync(join(tmpdir(), 'conntrail-pkb-'));
try {
  t.up({ nft: `table inet ctt {
  chain forward { type filter hook forward priority 0; policy accept; udp dport 7777 counter log prefix "flood: " group ${GROUP}; }
  chain postrouting { type nat hook postrouting priority 100; oifname "${t.prefix}r1" masquerade; }
}` });
  console.log(`${N} packets per run; generator on CPU 0, logger on CPU 1\n`);
  console.log('| peer | rate asked/s | achieved/s | lines/logged | loss % | overruns / seq gaps | packets/datagram | CPU s | CPU s/100k | peak RSS MiB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const rate of RATES) for (const peer of PEERS) console.log(await runOne(t, dir, peer, rate));
} finally {
  t.down();
  rmSync(dir, { recursive: true, force: true });
}
