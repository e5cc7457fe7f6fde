// Test hosts in network namespaces: a client, a router that tracks and NATs,
// a server, joined by veth pairs. Everything a test starts is tracked by PID
// and removed in down(), also when the test failed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

let counter = 0;

export interface TopologyOptions {
  /** nft rules for the router's inet table `ctt` (chains and all); default: masquerade */
  nft?: string;
  acct?: boolean;
  timestamp?: boolean;
}

export const ADDR = {
  cli: '10.99.1.2', cli6: 'fd99:1::2', rtrIn: '10.99.1.1', rtrIn6: 'fd99:1::1',
  rtrOut: '10.99.2.1', rtrOut6: 'fd99:2::1', srv: '10.99.2.2', srv6: 'fd99:2::2',
};

export const RAW_SENDER = join(process.cwd(), 'test', 'helpers', 'rawsend.py');

export function sh(cmd: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd[0], cmd.slice(1), { input: opts.input, encoding: 'utf8' });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`);
  }
  return r.stdout;
}

export class Topology {
  readonly cli: string;
  readonly rtr: string;
  readonly srv: string;
  readonly prefix: string;
  private procs: ChildProcess[] = [];

  constructor(name = 't') {
    this.prefix = `ct${process.pid % 100000}${name}${counter++}`.slice(0, 11);
    this.cli = `${this.prefix}-cli`;
    this.rtr = `${this.prefix}-rtr`;
    this.srv = `${this.prefix}-srv`;
  }

  masquerade(): string {
    return `table inet ctt {
  chain forward { type filter hook forward priority 0; policy accept; ct state established,related accept; ct state new accept; }
  chain postrouting { type nat hook postrouting priority 100; oifname "${this.prefix}r1" masquerade; }
}`;
  }

  up(o: TopologyOptions = {}): this {
    this.down();
    const p = this.prefix;
    try {
      for (const ns of [this.cli, this.rtr, this.srv]) {
        sh(['ip', 'netns', 'add', ns]);
        sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      }
      sh(['ip', 'link', 'add', `${p}c0`, 'netns', this.cli, 'type', 'veth', 'peer', 'name', `${p}r0`, 'netns', this.rtr]);
      sh(['ip', 'link', 'add', `${p}r1`, 'netns', this.rtr, 'type', 'veth', 'peer', 'name', `${p}s0`, 'netns', this.srv]);
      const cfg: Array<[string, string, string[], string[]]> = [
        [this.cli, `${p}c0`, [`${ADDR.cli}/24`], [`${ADDR.cli6}/64`]],
        [this.rtr, `${p}r0`, [`${ADDR.rtrIn}/24`], [`${ADDR.rtrIn6}/64`]],
        [this.rtr, `${p}r1`, [`${ADDR.rtrOut}/24`], [`${ADDR.rtrOut6}/64`]],
        [this.srv, `${p}s0`, [`${ADDR.srv}/24`], [`${ADDR.srv6}/64`]],
      ];
      for (const [ns, dev, v4, v6] of cfg) {
        for (const a of v4) sh(['ip', '-n', ns, 'addr', 'add', a, 'dev', dev]);
        for (const a of v6) sh(['ip', '-n', ns, 'addr', 'add', a, 'dev', dev, 'nodad']);
        sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
      }
      sh(['ip', '-n', this.cli, 'route', 'add', 'default', 'via', ADDR.rtrIn]);
      sh(['ip', '-n', this.cli, '-6', 'route', 'add', 'default', 'via', ADDR.rtrIn6]);
      sh(['ip', '-n', this.srv, 'route', 'add', 'default', 'via', ADDR.rtrOut]);
      sh(['ip', '-n', this.srv, '-6', 'route', 'add', 'default', 'via', ADDR.rtrOut6]);
      this.sysctl(this.rtr, {
        'net.ipv4.ip_forward': '1',
        'net.ipv6.conf.all.forwarding': '1',
        'net.netfilter.nf_conntrack_acct': o.acct === false ? '0' : '1',
        'net.netfilter.nf_conntrack_timestamp': o.timestamp === false ? '0' : '1',
      });
      this.nft(this.rtr, o.nft ?? this.masquerade());
    } catch (e) {
      this.down();
      throw e;
    }
    return this;
  }

  sysctl(ns: string, kv: Record<string, string>): void {
    for (const [k, v] of Object.entries(kv)) sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', `${k}=${v}`]);
  }

  nft(ns: string, ruleset: string): void {
    sh(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: ruleset });
  }

  /** Runs a command in a namespace and waits for it. */
  exec(ns: string, cmd: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
    return sh(['ip', 'netns', 'exec', ns, ...cmd], opts);
  }

  /** Starts a command in a namespace ('' : the test's own); killed by PID in down(). */
  spawn(ns: string, cmd: string[], opts: { env?: NodeJS.ProcessEnv } = {}): ChildProcess {
    // its own process group, so down() can remove whatever it forked too
    const argv = ns ? ['ip', 'netns', 'exec', ns, ...cmd] : cmd;
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, detached: true,
    });
    this.procs.push(child);
    return child;
  }

  /**
   * Stops a process started with spawn() (its process group) and waits for
   * it to exit; one that ignores the signal for 10 s is killed (and the
   * caller sees exit null).
   */
  async stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = once(child, 'exit');
    // the whole process group: what it forked (VyOS's workers) holds its pipes too
    const kill = (sig: NodeJS.Signals) => {
      try { process.kill(-child.pid!, sig); } catch { child.kill(sig); }
    };
    kill(signal);
    const timer = setTimeout(() => kill('SIGKILL'), 10_000);
    const [code] = await exited;
    clearTimeout(timer);
    return code as number | null;
  }

  down(): void {
    for (const c of this.procs) {
      if (c.pid) {
        try { process.kill(-c.pid, 'SIGKILL'); } catch { /* group gone */ }
      }
    }
    this.procs = [];
    for (const ns of [this.cli, this.rtr, this.srv]) {
      if (existsSync(`/run/netns/${ns}`)) sh(['ip', 'netns', 'del', ns], { allowFail: true });
    }
  }
}

/** Collects a child's stdout as text; resolves when it exits. */
export function collect(child: ChildProcess): { out: () => string; err: () => string; done: Promise<number | null> } {
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { out: () => out, err: () => err, done };
}

/**
 * Waits until `pred()` holds, polling every 50 ms; gives up after `maxMs`
 * (then the test's own assertion reports what was missing).
 */
export async function waitFor(pred: () => boolean, maxMs = 10000): Promise<boolean> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return pred();
}

/**
 * Waits until process `pid` has a NETLINK_NETFILTER socket subscribed to
 * conntrack groups. `ns`: the namespace the socket lives in, when it is not
 * the process's own (conntrail --netns).
 */
export async function waitSubscribed(pid: number, maxMs = 10000, ns?: string): Promise<boolean> {
  const { readFileSync, readdirSync, readlinkSync } = await import('node:fs');
  const inodes = (p: number): Set<string> => {
    const s = new Set<string>();
    const pids = [p];
    try {
      const kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      pids.push(...kids.map(Number));
    } catch { /* none */ }
    for (const q of pids) {
      try {
        for (const fd of readdirSync(`/proc/${q}/fd`)) {
          const l = readlinkSync(`/proc/${q}/fd/${fd}`);
          const m = /^socket:\[(\d+)\]$/.exec(l);
          if (m) s.add(m[1]);
        }
      } catch { /* gone */ }
    }
    return s;
  };
  return waitFor(() => {
    const ino = inodes(pid);
    const kids = (() => {
      try { return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean); } catch { return []; }
    })();
    for (const q of [pid, ...kids.map(Number)]) {
      let text = '';
      if (ns) text = sh(['ip', 'netns', 'exec', ns, 'cat', '/proc/net/netlink'], { allowFail: true });
      else try { text = readFileSync(`/proc/${q}/net/netlink`, 'utf8'); } catch { continue; }
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length >= 10 && f[1] === '12' && f[3] !== '00000000' && ino.has(f[9])) return true;
      }
    }
    return false;
  }, maxMs);
}

export function writeFileOnce(path: string, text: string): boolean {
  if (existsSync(path)) return false;
  writeFileSync(path, text);
  return true;
}
