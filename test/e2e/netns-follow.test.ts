// One daemon following network namespaces by pattern (`netns = "PREFIX-*"`):
// 50 namespaces exist at start, 10 more are created and 10 deleted while
// traffic flows in the others. In each namespace `conntrack -E -o id` runs
// beside it (the ground truth, there): the daemon's lines for that
// namespace (a file sink with netns_prefix) are exactly the lines conntrack
// printed. After a delete, no socket of the daemon is in that namespace any
// more (each socket asked with SIOCGSKNS: test/helpers/sockns.py), so the
// kernel frees it: `lsns -t net` lists it no more. A namespace whose name
// does not match is never read.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect, sh, waitFor, waitSubscribed } from '../helpers/netns.js';
import { CONNTRAIL } from '../helpers/cli.js';

const PREFIX = `cf${process.pid % 10000}`;
const AT_START = 50;
const ADDED = 10;
const DELETED = 10;
const SOCKNS = join(process.cwd(), 'test', 'helpers', 'sockns.py');
/** UDP datagrams to `n` ports on the namespace's loopback: n conntrack entries (NEW events) */
const udp = (n: number, base: number) => `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor p in range(${base}, ${base + n}): s.sendto(b"x", ("127.0.0.1", p))`;
const lines = (s: string) => s.split('\n').filter(Boolean);

describe('following network namespaces by pattern', { timeout: 480_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-follow-'));
  const made = new Set<string>();
  const procs: ChildProcess[] = [];
  const refs = new Map<string, { p: ChildProcess; c: ReturnType<typeof collect> }>();
  const kill = (p: ChildProcess) => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } };
  after(() => {
    for (const p of procs) kill(p);
    for (const ns of made) if (existsSync(`/run/netns/${ns}`)) sh(['ip', 'netns', 'del', ns], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  });
  /** `ns` '': the test's own namespace */
  const spawnIn = (ns: string, cmd: string[]): ChildProcess => {
    const argv = ns ? ['ip', 'netns', 'exec', ns, ...cmd] : cmd;
    const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    procs.push(p);
    return p;
  };
  /** a namespace whose loopback traffic is tracked (conntrack runs only where a rule needs it) */
  const addNs = (ns: string) => {
    sh(['ip', 'netns', 'add', ns]);
    made.add(ns);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    sh(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: 'table inet t {\n chain o {\n  type filter hook output priority 0;\n  ct state new counter\n  udp dport { 20000-20004, 22000-22004 } counter log group 7\n }\n}\n' });
    // flows end soon by themselves (a DESTROY without [USERSPACE], which conntrack -F would add)
    sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_udp_timeout=1']);
  };
  const startRef = async (ns: string) => {
    const p = spawnIn(ns, ['conntrack', '-E', '-o', 'id', '-b', '16777216']);
    const c = collect(p);
    refs.set(ns, { p, c });
    assert.ok(await waitSubscribed(p.pid!), `conntrack -E in ${ns}: ${c.err()}`);
  };
  /** the daemon has bound NFLOG group 7 there */
  const nflogBound = (ns: string) => sh(['ip', 'netns', 'exec', ns, 'cat', '/proc/net/netfilter/nfnetlink_log'], { allowFail: true }).split('\n').some((l) => l.trim().split(/\s+/)[0] === '7');
  const inode = (ns: string) => statSync(`/run/netns/${ns}`).ino;
  const socketNamespaces = (pid: number): Set<number> => {
    const r = spawnSync('python3', [SOCKNS, String(pid)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return new Set(lines(r.stdout).map((l) => Number(l.split(' ')[1])));
  };
  const listed = () => new Set(lines(sh(['lsns', '-t', 'net', '-n', '-o', 'NS'])).map((l) => Number(l.trim())));

  it('attaches to 50 at start, 10 created later, detaches from 10 deleted: every namespace\'s lines are conntrack -E\'s there', async () => {
    const names = Array.from({ length: AT_START }, (_, i) => `${PREFIX}-r${i}`);
    for (const ns of names) addNs(ns);
    // not matched: read by nobody
    const other = `${PREFIX}x-other`;
    addNs(other);
    const out = join(dir, 'events.log');
    const pkts = join(dir, 'packets.json');
    const conf = join(dir, 'follow.toml');
    writeFileSync(conf, `[[source]]
name = "ct"
netns = "${PREFIX}-*"
buffer_size = 1048576

[[source]]
name = "pk"
type = "nflog"
groups = [7]
netns = "${PREFIX}-*"

# one namespace of the pattern named again: its flows are stored once (the pattern's instance came first)
[[source]]
name = "fixed"
netns = "${PREFIX}-r20"

[[sink]]
type = "file"
path = "${out}"
sources = ["ct"]
format = "conntrack"
output = ["id"]
netns_prefix = true

[[sink]]
type = "file"
path = "${pkts}"
sources = ["pk"]
format = "json"

[store]
type = "sqlite"
path = "${join(dir, 'flows.db')}"
spool_dir = "${join(dir, 'spool')}"
`);
    for (const ns of names) await startRef(ns);
    const daemon = spawnIn('', [...CONNTRAIL, 'run', '--config', conf]);
    const o = collect(daemon);
    const pid = daemon.pid!;
    for (const ns of names) assert.ok(await waitSubscribed(pid, 60000, ns) && await waitFor(() => nflogBound(ns), 60000), `the daemon in ${ns}: ${o.err()}`);
    assert.ok(await waitFor(() => o.err().includes('started with'), 60000), o.err());
    // at info level one line per namespace and source attached (the instances' own news is at debug)
    for (const ns of names) {
      const said = lines(o.err()).filter((l) => l.includes(`@${ns}:`));
      assert.deepEqual(said.map((l) => l.replace(/^.*?source /, '')).sort(),
        [`ct@${ns}: attached to network namespace ${ns} (inode ${inode(ns)})`, `pk@${ns}: attached to network namespace ${ns} (inode ${inode(ns)})`], said.join('\n'));
    }

    const daemonLines = (ns: string) => {
      const pre = `[${ns}] `;
      return existsSync(out) ? lines(readFileSync(out, 'utf8')).filter((l) => l.startsWith(pre)).map((l) => l.slice(pre.length)) : [];
    };
    /** the packets logged in `ns`: the rule's counter there, and what the daemon wrote */
    const logged = (ns: string) => Number(/counter packets (\d+) bytes \d+ log group 7/.exec(sh(['ip', 'netns', 'exec', ns, 'nft', 'list', 'chain', 'inet', 't', 'o']))?.[1] ?? -1);
    const packetsOf = (ns: string) => (existsSync(pkts) ? lines(readFileSync(pkts, 'utf8')).map((l) => JSON.parse(l) as { netns: string }).filter((r) => r.netns === ns).length : 0);
    /**
     * conntrack -E said it lost events there (it hit ENOBUFS, even with its
     * 32 MiB buffer, on a loaded machine): its stream is no ground truth
     * then, the kernel's counter of new connections is (below)
     */
    const refLost = (ns: string) => /We have hit ENOBUFS/.test(refs.get(ns)!.c.err());
    /** flows begun in `ns`: the kernel's count of its rule `ct state new counter` (kept for after its delete) */
    const begunSeen = new Map<string, number>();
    const begun = (ns: string) => {
      const n = Number(/ct state new counter packets (\d+)/.exec(sh(['ip', 'netns', 'exec', ns, 'nft', 'list', 'chain', 'inet', 't', 'o'], { allowFail: true }))?.[1] ?? -1);
      if (n >= 0) begunSeen.set(ns, n);
      return begunSeen.get(ns) ?? -1;
    };
    const count = (ls: string[], type: string) => ls.filter((l) => l.trimStart().startsWith(`[${type}]`)).length;
    /** every flow conntrack -E saw begin there, it saw end; where it lost events, every flow the kernel counted the daemon saw begin and end */
    const ended = (ns: string) => {
      if (refLost(ns)) {
        const d = daemonLines(ns);
        return count(d, 'NEW') === begun(ns) && count(d, 'DESTROY') === begun(ns);
      }
      const want = lines(refs.get(ns)!.c.out());
      return count(want, 'DESTROY') === count(want, 'NEW');
    };
    const caughtUp = (ns: string) => {
      const want = lines(refs.get(ns)!.c.out());
      return want.length > 0 && daemonLines(ns).length >= want.length;
    };
    // round 1: everywhere
    for (const ns of [...names, other]) sh(['ip', 'netns', 'exec', ns, 'python3', '-c', udp(5, 20000)]);
    for (const ns of names) assert.ok(await waitFor(() => caughtUp(ns) && packetsOf(ns) >= 5, 60000), `${ns}: ${daemonLines(ns).length} lines, ${packetsOf(ns)} packets` +
      // (to tell which side lost them: the rule's count, what the file has in all, the group's binding there, the daemon's words)
      `; the rule logged ${logged(ns)}; ${existsSync(pkts) ? lines(readFileSync(pkts, 'utf8')).length : 'no'} packet lines in all` +
      `; nfnetlink_log there: ${sh(['ip', 'netns', 'exec', ns, 'cat', '/proc/net/netfilter/nfnetlink_log'], { allowFail: true }).trim()}` +
      `; the daemon: ${lines(o.err()).filter((l) => l.includes(`@${ns}`) || /error|warn/i.test(l)).join(' | ')}`);
    for (const ns of names) assert.equal(packetsOf(ns), logged(ns), `${ns}: every packet logged there`);

    // then, while traffic flows in the namespaces that stay: 10 deleted, 10 created
    const deleted = names.slice(0, DELETED);
    const staying = names.slice(DELETED);
    const added = Array.from({ length: ADDED }, (_, i) => `${PREFIX}-n${i}`);
    const gone = new Map(deleted.map((ns) => [ns, inode(ns)]));
    // the flows of the namespaces about to go end first (each one's DESTROY read by both), so that
    // no event comes between the stop of a namespace's conntrack -E and its delete: their streams are whole
    assert.ok(await waitFor(() => {
      for (const ns of deleted) if (!ended(ns)) sh(['ip', 'netns', 'exec', ns, 'conntrack', '-L'], { allowFail: true });
      return deleted.every((ns) => ended(ns) && daemonLines(ns).length >= lines(refs.get(ns)!.c.out()).length);
    }, 60000), `the flows of the namespaces to delete ended: ${deleted.filter((ns) => !ended(ns)).join(' ')}`);
    const flows = staying.map((ns) => spawnIn(ns, ['python3', '-c', `import socket, time\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor p in range(21000, 21200):\n    s.sendto(b"x", ("127.0.0.1", p)); time.sleep(0.005)`]));
    for (const ns of deleted) {
      // its conntrack -E gone first: nothing but the daemon could keep the namespace alive
      kill(refs.get(ns)!.p);
      await refs.get(ns)!.c.done;
      sh(['ip', 'netns', 'del', ns]);
      made.delete(ns);
    }
    // (checked before any namespace is made again: the kernel reuses a freed namespace's inode)
    assert.ok(await waitFor(() => deleted.every((ns) => o.err().includes(`source ct@${ns}: network namespace ${ns} is gone`)), 60000), o.err());
    const heldThen = socketNamespaces(pid);
    for (const [ns, ino] of gone) {
      assert.ok(!heldThen.has(ino), `the daemon still holds a socket in deleted ${ns}: ${o.err().split('\n').filter((l) => l.includes(`@${ns}:`)).join('\n')}`);
    }
    assert.ok(await waitFor(() => { const l = listed(); return [...gone.values()].every((ino) => !l.has(ino)); }, 60000), 'lsns -t net no longer lists the deleted namespaces');
    for (const ns of added) {
      addNs(ns);
      await startRef(ns);
      assert.ok(await waitSubscribed(pid, 60000, ns) && await waitFor(() => nflogBound(ns), 60000), `the daemon in ${ns}: ${o.err()}`);
      sh(['ip', 'netns', 'exec', ns, 'python3', '-c', udp(5, 22000)]);
    }
    // a reload that changes nothing keeps every instance: nothing attached again, no line twice or missing (compared below)
    const attachedBefore = (o.err().match(/: attached to network namespace /g) ?? []).length;
    daemon.kill('SIGHUP');
    assert.ok(await waitFor(() => o.err().includes('SIGHUP: configuration reloaded'), 60000), o.err());
    assert.equal((o.err().match(/: attached to network namespace /g) ?? []).length, attachedBefore, 'nothing attached again at SIGHUP');
    await Promise.all(flows.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
    for (const ns of [...staying, ...added]) assert.ok(await waitFor(() => caughtUp(ns) && daemonLines(ns).length >= lines(refs.get(ns)!.c.out()).length, 60000), ns);
    // every flow's end, in every namespace still there: a listing reaps the expired entries
    const compare = [...staying, ...added];
    assert.ok(await waitFor(() => {
      for (const ns of compare) if (!ended(ns)) sh(['ip', 'netns', 'exec', ns, 'conntrack', '-L'], { allowFail: true });
      return compare.every((ns) => ended(ns) && daemonLines(ns).length >= lines(refs.get(ns)!.c.out()).length);
    }, 60000), `every flow ended, every DESTROY recorded: ${compare.filter((ns) => !ended(ns) || daemonLines(ns).length < lines(refs.get(ns)!.c.out()).length).slice(0, 3).map((ns) => {
      const want = lines(refs.get(ns)!.c.out());
      // (what the daemon has that the reference lacks, and what the reference said: which side lost what)
      const have = new Set(want);
      const extra = daemonLines(ns).filter((l) => !have.has(l));
      return `${ns}: conntrack -E NEW ${want.filter((l) => l.trimStart().startsWith('[NEW]')).length} DESTROY ${want.filter((l) => l.startsWith('[DESTROY]')).length}, daemon ${daemonLines(ns).length} lines; table: ${sh(['ip', 'netns', 'exec', ns, 'conntrack', '-L'], { allowFail: true }).slice(0, 300)}` +
        `; conntrack -E's stderr: ${refs.get(ns)!.c.err().slice(0, 300)}; exited: ${refs.get(ns)!.p.exitCode ?? refs.get(ns)!.p.signalCode}; the daemon's lines it lacks (${extra.length}): ${extra.slice(0, 3).join(' | ')}`;
    }).join('; ')}`);

    // at the end: a socket in each namespace it reads, none anywhere else (but its own namespace: the store, the metrics)
    const held = socketNamespaces(pid);
    const reading = new Set([...compare.map(inode), statSync('/proc/self/ns/net').ino]);
    for (const ns of compare) assert.ok(held.has(inode(ns)), `the daemon holds a socket in ${ns}`);
    assert.deepEqual([...held].filter((ino) => !reading.has(ino)), [], 'sockets in no namespace the daemon reads');
    assert.ok(!held.has(inode(other)), 'the unmatched namespace is not read');
    for (const ns of compare) {
      assert.ok(await waitFor(() => packetsOf(ns) >= logged(ns), 30000), ns);
      assert.equal(packetsOf(ns), logged(ns), `${ns}: every packet logged there, once`);
      const ino = inode(ns);
      const recs = lines(readFileSync(pkts, 'utf8')).map((l) => JSON.parse(l) as { netns: string; netns_inode: number }).filter((r) => r.netns === ns);
      assert.ok(recs.every((r) => r.netns_inode === ino), `${ns}: each packet names its namespace's inode ${ino}`);
    }
    assert.equal(packetsOf(other), 0);

    for (const ns of compare) kill(refs.get(ns)!.p);
    daemon.kill('SIGUSR1');
    assert.ok(await waitFor(() => o.err().includes('namespaces_attached='), 30000));
    assert.match(o.err(), new RegExp(`source ct: namespaces_attached=${AT_START - DELETED + ADDED} namespaces_failing=0`));
    assert.match(o.err(), new RegExp(`source pk: namespaces_attached=${AT_START - DELETED + ADDED} namespaces_failing=0`));
    daemon.kill('SIGTERM');
    await o.done;
    const lost = [...names, ...added].filter(refLost);
    // (a reference that loses events now and then is the peer's loss; most namespaces are still compared line for line)
    assert.ok(lost.length <= names.length / 4, `conntrack -E lost events in ${lost.length} namespaces: ${lost.join(' ')}`);
    for (const ns of [...names, ...added]) {
      const want = lines(refs.get(ns)!.c.out());
      assert.ok(want.length >= 5, `${ns}: conntrack -E printed ${want.length} lines`);
      if (!refLost(ns)) { assert.deepEqual(daemonLines(ns), want, ns); continue; }
      // what the reference did print is the daemon's, in the same order; and the daemon has every flow the kernel counted, begun and ended
      const d = daemonLines(ns);
      let j = 0;
      for (const l of d) if (j < want.length && l === want[j]) j++;
      assert.equal(j, want.length, `${ns}: conntrack -E's lines, in order, among the daemon's`);
      assert.equal(count(d, 'NEW'), begunSeen.get(ns), `${ns}: every flow the kernel counted, begun`);
      assert.equal(count(d, 'DESTROY'), begunSeen.get(ns), `${ns}: every flow the kernel counted, ended`);
    }
    assert.deepEqual(daemonLines(other), []);
    assert.doesNotMatch(o.err(), /cannot attach to network namespace|error:/);
    assert.match(o.err(), new RegExp(`source fixed: network namespace ${PREFIX}-r20 feeds the flow records \\(store, sinks with records = "flows"\\) through source ct@${PREFIX}-r20 already`));
    // the store: one record per flow (r20 read by two sources), and no flow of a deleted namespace left open
    const stored = (ns: string) => {
      const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', join(dir, 'flows.db'), '--json', '--limit', '0', '--netns', ns], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as Array<{ open: boolean; flags: string[] }>;
    };
    const news = (ns: string) => lines(refs.get(ns)!.c.out()).filter((l) => l.trimStart().startsWith('[NEW]')).length;
    assert.equal(stored(`${PREFIX}-r20`).length, news(`${PREFIX}-r20`), 'r20: one record per flow');
    for (const ns of deleted) {
      const fl = stored(ns);
      assert.equal(fl.length, news(ns), `${ns}: every flow stored`);
      assert.deepEqual(fl.filter((f) => f.open), [], `${ns}: none left open after its delete`);
    }
  });

  it('the Neutron case: a router namespace per tenant with NAT, made live; the same inside address behind each; who answers per namespace', async () => {
    // ext: the outside, a server; per tenant T: PREFIX-qrouter-T (masquerades its
    // tenant's 10.0.0.0/24 to its own public address) and PREFIX-vm-T (10.0.0.5, in both tenants)
    const ext = `${PREFIX}-ext`;
    const r = (x: string) => `${PREFIX}-qrouter-${x}`;
    const vm = (x: string) => `${PREFIX}-vm-${x}`;
    const pub: Record<string, string> = { a: '198.51.100.2', b: '198.51.101.2' };
    const add = (ns: string) => { sh(['ip', 'netns', 'add', ns]); made.add(ns); sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']); };
    add(ext);
    const conf = join(dir, 'neutron.toml');
    const db = join(dir, 'neutron.db');
    writeFileSync(conf, `[[source]]\nname = "routers"\nnetns = "${PREFIX}-qrouter-*"\nenable_timestamps = true\n` +
      `[store]\ntype = "sqlite"\npath = "${db}"\nspool_dir = "${join(dir, 'nspool')}"\nflush_interval_ms = 100\n`);
    const daemon = spawnIn('', [...CONNTRAIL, 'run', '--config', conf]);
    const o = collect(daemon);
    assert.ok(await waitFor(() => o.err().includes('started with'), 20000), o.err());
    const SERVER = `import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(("0.0.0.0", 8080)); s.listen(8); s.settimeout(30)\nprint("ready", flush=True)\nfor i in range(2):\n    c, a = s.accept(); print("accept", *a, flush=True); c.recv(10); c.close()\n`;
    const srv = collect(spawnIn(ext, ['python3', '-c', SERVER]));
    assert.ok(await waitFor(() => srv.out().includes('ready'), 10000), srv.err());
    const asked: Array<{ tenant: string; port: string; at: number }> = [];
    for (const [i, x] of ['a', 'b'].entries()) {
      // a tenant's router, made while the daemon runs
      add(r(x));
      add(vm(x));
      sh(['ip', 'link', 'add', `${PREFIX}e${x}`, 'netns', ext, 'type', 'veth', 'peer', 'name', 'pub', 'netns', r(x)]);
      sh(['ip', 'link', 'add', `${PREFIX}v${x}`, 'netns', vm(x), 'type', 'veth', 'peer', 'name', 'lan', 'netns', r(x)]);
      sh(['ip', '-n', ext, 'addr', 'add', `198.51.${100 + i}.1/24`, 'dev', `${PREFIX}e${x}`]);
      sh(['ip', '-n', ext, 'link', 'set', `${PREFIX}e${x}`, 'up']);
      sh(['ip', '-n', r(x), 'addr', 'add', `${pub[x]}/24`, 'dev', 'pub']);
      sh(['ip', '-n', r(x), 'addr', 'add', '10.0.0.1/24', 'dev', 'lan']);
      for (const l of ['pub', 'lan']) sh(['ip', '-n', r(x), 'link', 'set', l, 'up']);
      sh(['ip', '-n', vm(x), 'addr', 'add', '10.0.0.5/24', 'dev', `${PREFIX}v${x}`]);
      sh(['ip', '-n', vm(x), 'link', 'set', `${PREFIX}v${x}`, 'up']);
      sh(['ip', '-n', vm(x), 'route', 'add', 'default', 'via', '10.0.0.1']);
      sh(['ip', 'netns', 'exec', r(x), 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      sh(['ip', 'netns', 'exec', r(x), 'nft', '-f', '-'], { input: 'table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat;\n  oifname "pub" masquerade\n }\n}\n' });
      assert.ok(await waitSubscribed(daemon.pid!, 20000, r(x)), o.err());
      // the question's second must lie within the trail: after the second the daemon attached in
      const attachedSec = Math.floor(Date.now() / 1000);
      await waitFor(() => Math.floor(Date.now() / 1000) >= attachedSec + 2, 5000);
      const at = Math.floor(Date.now() / 1000);
      const cli = spawnSync('ip', ['netns', 'exec', vm(x), 'python3', '-c', `import socket\ns = socket.create_connection(("198.51.${100 + i}.1", 8080), timeout=10)\ns.send(b"x"); s.close()`], { encoding: 'utf8' });
      assert.equal(cli.status, 0, cli.stderr);
      assert.ok(await waitFor(() => (srv.out().match(/accept /g) ?? []).length > i, 10000), srv.out());
      // ground truth: the public address and port the server saw
      const seen = [...srv.out().matchAll(/accept (\S+) (\d+)/g)][i];
      assert.equal(seen[1], pub[x]);
      asked.push({ tenant: x, port: seen[2], at });
    }
    const who = (args: string[]) => spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'who', '--db', db, '--json', ...args], { encoding: 'utf8' });
    for (const q of asked) {
      let ans: { verdict: string; inside: string[]; hosts: Array<{ addr: string; netns: string; netns_inode?: number }>; flows: Array<{ netns: string; netns_inode?: number }> } | undefined;
      assert.ok(await waitFor(() => {
        const w = who([`${pub[q.tenant]}:${q.port}`, '--at', `@${q.at}`, '--window', '5s']);
        ans = w.status === 0 ? JSON.parse(w.stdout) : undefined;
        return ans?.verdict === 'exact';
      }, 15000), JSON.stringify(ans));
      assert.deepEqual(ans!.inside, ['10.0.0.5']);
      assert.deepEqual(ans!.hosts, [{ addr: '10.0.0.5', netns: r(q.tenant), netns_inode: statSync(`/run/netns/${r(q.tenant)}`).ino }]);
      const text = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'who', '--db', db, `${pub[q.tenant]}:${q.port}`, '--at', `@${q.at}`], { encoding: 'utf8' }).stdout;
      assert.match(text, new RegExp(`^exact: 10\\.0\\.0\\.5 \\(netns ${r(q.tenant)}\\) was behind ${pub[q.tenant].replace(/\./g, '\\.')}:${q.port} `));
      assert.match(text, /NETNS/);
      assert.deepEqual(ans!.flows.map((f) => f.netns), [r(q.tenant)]);
      assert.deepEqual(ans!.flows.map((f) => f.netns_inode), [statSync(`/run/netns/${r(q.tenant)}`).ino], 'the store keeps the namespace\'s inode');
      // --netns: the tenant's own router answers; the other one has no such flow
      const mine = JSON.parse(who([`${pub[q.tenant]}:${q.port}`, '--at', `@${q.at}`, '--netns', r(q.tenant)]).stdout);
      assert.equal(mine.verdict, 'exact');
      const other = who([`${pub[q.tenant]}:${q.port}`, '--at', `@${q.at}`, '--netns', r(q.tenant === 'a' ? 'b' : 'a')]);
      assert.equal(other.status, 1, other.stdout);
      assert.equal(JSON.parse(other.stdout).verdict, 'none');
    }
    // flows --netns: each router's flows alone
    for (const x of ['a', 'b']) {
      const f = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--netns', r(x)], { encoding: 'utf8' });
      assert.equal(f.status, 0, f.stderr);
      const list = JSON.parse(f.stdout) as Array<{ netns: string; orig: { src: string } }>;
      assert.ok(list.length >= 1 && list.every((l) => l.netns === r(x) && l.orig.src === '10.0.0.5'), f.stdout);
    }
    const typo = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--netns', 'no-such-router'], { encoding: 'utf8' });
    assert.match(typo.stderr, /--netns: the store has no network namespace "no-such-router" \(it has 2: /);
    daemon.kill('SIGTERM');
    await o.done;
  });
  it('a tcpstates source by pattern: the one program traces the matching namespaces, one made live too, by inode in the kernel; not another, nor one whose name went', async (t) => {
    const why = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'tcpstates', '--help'], { encoding: 'utf8' });
    if (why.status !== 0) { t.skip(`no tcpstates here: ${why.stderr.trim()}`); return; }
    const tA = `${PREFIX}-tcp-a`;
    const tB = `${PREFIX}-tcp-b`;
    const other = `${PREFIX}-other`;
    const add = (ns: string) => { sh(['ip', 'netns', 'add', ns]); made.add(ns); sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']); };
    add(tA);
    add(other);
    const out = join(dir, 'tcp.json');
    const conf = join(dir, 'tcp.toml');
    writeFileSync(conf, `[[source]]\nname = "tcp"\ntype = "tcpstates"\nnetns = "${PREFIX}-tcp-*"\nstore = false\nlocal_ports = [9090]\n\n` +
      `[[sink]]\ntype = "file"\npath = "${out}"\nformat = "json"\n`);
    const daemon = spawnIn('', [...CONNTRAIL, 'run', '--config', conf]);
    const o = collect(daemon);
    assert.ok(await waitFor(() => o.err().includes('started with'), 20000), o.err());
    assert.match(o.err(), new RegExp(`tracing TCP state changes in the network namespaces named ${PREFIX}-tcp-\\* \\(1 now: ${tA};`));
    // in each namespace a process that makes one connection on its loopback per
    // line it reads, and prints the client's port (the ground truth: what was made, where)
    const CLIENT = 'import socket, sys\nsrv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\nsrv.bind(("127.0.0.1", 9090)); srv.listen(8)\nprint("ready", flush=True)\nfor line in sys.stdin:\n    c = socket.create_connection(("127.0.0.1", 9090)); a, _ = srv.accept()\n    print("port", c.getsockname()[1], flush=True); a.close(); c.close()\n';
    const client = (ns: string) => {
      const p = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', CLIENT], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      procs.push(p);
      const c = collect(p);
      let n = 0;
      return {
        ready: () => waitFor(() => c.out().includes('ready'), 10000),
        connect: async () => { n++; p.stdin!.write('x\n'); assert.ok(await waitFor(() => (c.out().match(/^port /gm) ?? []).length >= n, 10000), c.err()); return Number([...c.out().matchAll(/^port (\d+)/gm)][n - 1][1]); },
        end: () => p.stdin!.end(),
      };
    };
    const records = () => lines(existsSync(out) ? readFileSync(out, 'utf8') : '').map((l) => JSON.parse(l) as { netns?: string; netns_inode: number; sport: number; dport: number; new_state: string });
    // the accepted socket's changes (local port 9090) of the connection from `port` in the namespace `ino`
    const traced = (port: number, ino: number) => records().filter((r) => r.sport === 9090 && r.dport === port && r.netns_inode === ino);
    const inoA = inode(tA);
    const inoOther = inode(other);
    const cA = client(tA);
    const cO = client(other);
    assert.ok(await cA.ready() && await cO.ready());
    const inA = await cA.connect();
    const inOther = await cO.connect();
    assert.ok(await waitFor(() => traced(inA, inoA).some((r) => r.new_state === 'CLOSE'), 10000), `${tA}: ${JSON.stringify(records())}\n${o.err()}`);
    assert.ok(traced(inA, inoA).every((r) => r.netns === tA), JSON.stringify(traced(inA, inoA)));
    // a namespace made while it runs: traced once its name is there
    add(tB);
    const inoB = inode(tB);
    assert.ok(await waitFor(() => o.err().includes(`tracing network namespace ${tB} (inode ${inoB})`), 10000), o.err());
    const cB = client(tB);
    assert.ok(await cB.ready());
    const inB = await cB.connect();
    assert.ok(await waitFor(() => traced(inB, inoB).some((r) => r.new_state === 'CLOSE'), 10000), `${tB}: ${JSON.stringify(records())}\n${o.err()}`);
    assert.ok(traced(inB, inoB).every((r) => r.netns === tB), JSON.stringify(traced(inB, inoB)));
    const before = o.err().length;
    daemon.kill('SIGUSR1');
    assert.ok(await waitFor(() => /source tcp: namespaces_attached=2 namespaces_failing=0/.test(o.err().slice(before)), 10000), o.err().slice(before));
    // each namespace's changes counted: those of the accepted sockets and more (the listener's, the client's)
    const counted = (ns: string) => Number(new RegExp(`source tcp@${ns}: changes=(\\d+)`).exec(o.err().slice(before))?.[1]);
    assert.ok(counted(tA) >= traced(inA, inoA).length && counted(tB) >= traced(inB, inoB).length && counted(tA) > 0, o.err().slice(before));
    // A's name goes; its process keeps the namespace alive and connects again: not traced
    sh(['ip', 'netns', 'del', tA]);
    assert.ok(await waitFor(() => o.err().includes(`network namespace ${tA} (inode`) && o.err().includes('is gone: no longer traced'), 10000), o.err());
    const againA = await cA.connect();
    // B is still traced after it: what A did is in the file by then, if it was traced at all
    const againB = await cB.connect();
    assert.ok(await waitFor(() => traced(againB, inoB).some((r) => r.new_state === 'CLOSE'), 10000), o.err());
    assert.deepEqual(traced(againA, inoA), [], `${tA} after its delete`);
    assert.ok(traced(inA, inoA).length > 0, 'A was traced before');
    assert.deepEqual(records().filter((r) => r.netns_inode === inoOther), [], `${other} does not match (its connection from port ${inOther})`);
    // every change in the file is of a followed namespace
    assert.deepEqual([...new Set(records().map((r) => r.netns))].sort(), [tA, tB]);
    for (const c of [cA, cB, cO]) c.end();
    daemon.kill('SIGTERM');
    assert.equal(await o.done, 0, o.err());
  });
});
