// TCP state changes in the store, joined to flows: the daemon follows a
// router namespace with a conntrack source and a tcpstates source into one
// store (SQLite, then a real PostgreSQL). Three connections:
//   - the router opens one to the server through SNAT (to an address of its
//     own other than the socket's): its flow names the client process, seen
//     at connect(), before the translation;
//   - the client host connects to a port the router DNATs to a server
//     process on the router itself: its flow names that server process,
//     seen when it closes the connection (a passive open's other changes run
//     in softirq and name no one);
//   - the client host connects through the router to the server: no socket
//     on the router, so no process.
// Ground truth: each process prints its own pid and what it saw (the
// server in the server namespace the translated address and port).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { CONNTRAIL } from '../helpers/cli.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

const SNAT_TO = '10.99.2.100';

// "server ADDR PORT": one connection; prints "pid N", "ready", "accept ADDR PORT"; reads, then closes first
const SERVER = `import socket, sys, os
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4)
print("pid", os.getpid(), flush=True); print("ready", flush=True)
s.settimeout(20)
c, a = s.accept()
print("accept", a[0], a[1], flush=True)
c.recv(100)
c.close(); s.close()
`;
// "client HOST PORT": prints "pid N", "local ADDR PORT"; sends, waits for the server's close, closes
const CLIENT = `import socket, sys, os
print("pid", os.getpid(), flush=True)
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)
print("local", *s.getsockname(), flush=True)
s.send(b"hello")
s.recv(100)
s.close()
`;

// "ADDR PORT N": accepts N connections, each read then closed
const MANY_SERVER = `import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64); s.settimeout(30)
print("ready", flush=True)
for i in range(int(sys.argv[3])):
    c, a = s.accept()
    c.recv(100); c.close()
`;
// "HOST PORT N": N connections, one after the other, ~10 ms apart; prints "local ADDR PORT" for each
const MANY_CLIENT = `import socket, sys, time
for i in range(int(sys.argv[3])):
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)
    print("local", *s.getsockname(), flush=True)
    s.send(b"x"); s.recv(100); s.close()
    time.sleep(0.01)
`;

interface Holder { pid: number; comm: string; seen_at: string }
interface FlowJson {
  proto: string; orig: { src: string; sport: number; dst: string; dport: number }; nat: string;
  snat: { public: { addr: string; port: number } } | null; dnat: { inside: { addr: string; port: number } } | null; processes: Holder[];
}

describe('TCP state changes stored and joined to flows (flows --process, who --process, tcpstates --db)', { timeout: 180_000 }, () => {
  const t = new Topology('tj');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-tj-'));
  let pg: Postgres | undefined;
  before(() => {
    t.up({
      nft: `table ip ctj {
  chain pre { type nat hook prerouting priority dstnat; policy accept; ip daddr ${ADDR.rtrIn} tcp dport 9001 dnat to ${ADDR.rtrIn}:9000; }
  chain post { type nat hook postrouting priority srcnat; policy accept; ip saddr ${ADDR.rtrOut} tcp dport 8080 snat to ${SNAT_TO}; }
}`,
    });
    // the translated address answers ARP on the router's server side
    t.exec(t.rtr, ['ip', 'addr', 'add', `${SNAT_TO}/32`, 'dev', `${t.prefix}r1`]);
  });
  after(async () => {
    t.down();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (args: string[]) => spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), ...args], { encoding: 'utf8', timeout: 30000 });
  const pidOf = (out: string) => Number(/^pid (\d+)$/m.exec(out)?.[1]);
  /** one connection: SERVER in [namespace, address, port], then CLIENT from [namespace] to [address, port]; `at`: the second the client began */
  async function connectOnce([sNs, sAddr, sPort]: [string, string, number], [cNs, dst, dPort]: [string, string, number]) {
    const srv = collect(t.spawn(sNs, ['python3', '-c', SERVER, sAddr, String(sPort)]));
    assert.ok(await waitFor(() => srv.out().includes('ready'), 10000), srv.err());
    const at = Math.floor(Date.now() / 1000);
    const cli = collect(t.spawn(cNs, ['python3', '-c', CLIENT, dst, String(dPort)]));
    assert.equal(await cli.done, 0, cli.err());
    await srv.done;
    return { srv, cli, at };
  }

  async function scenario(storeToml: string, store: string[], tag: string): Promise<void> {
    const conf = join(dir, `${tag}.toml`);
    writeFileSync(conf, `[[source]]\nname = "ct"\nnetns = "${t.rtr}"\nenable_timestamps = true\n` +
      `[[source]]\nname = "tcp"\ntype = "tcpstates"\nnetns = "${t.rtr}"\n[store]\n${storeToml}\nflush_interval_ms = 100\n`);
    const d = t.spawn('', [...CONNTRAIL, 'run', '-c', conf]);
    const dOut = collect(d);
    try {
      assert.ok(await waitSubscribed(d.pid!, 20000, t.rtr), dOut.err());
      assert.ok(await waitFor(() => /tracing TCP state changes/.test(dOut.err()), 20000), dOut.err());
      const since = new Date().toISOString();
      // the question below (its second, ± 1 s) must lie wholly within the trail: after the second the daemon was ready in
      const readySec = Math.floor(Date.now() / 1000);
      await waitFor(() => Math.floor(Date.now() / 1000) >= readySec + 2, 5000);
      // 1. the router opens a connection to the server, through SNAT
      const { srv: srv1, cli: cli1, at: at1 } = await connectOnce([t.srv, ADDR.srv, 8080], [t.rtr, ADDR.srv, 8080]);
      const seen1 = /accept (\S+) (\d+)/.exec(srv1.out());
      assert.ok(seen1, srv1.out() + srv1.err());
      assert.equal(seen1[1], SNAT_TO, 'the server saw the translated address');
      const local1 = /local (\S+) (\d+)/.exec(cli1.out())!;
      assert.equal(local1[1], ADDR.rtrOut);
      // 2. the client host connects to a port the router forwards to a server process on the router
      const { srv: srv2, cli: cli2 } = await connectOnce([t.rtr, ADDR.rtrIn, 9000], [t.cli, ADDR.rtrIn, 9001]);
      const local2 = /local (\S+) (\d+)/.exec(cli2.out())!;
      assert.equal(/accept (\S+) (\d+)/.exec(srv2.out())?.[2], local2[2], 'the router\'s server saw the client\'s port');
      // 3. the client host through the router to the server: no socket on the router
      const { cli: cli3 } = await connectOnce([t.srv, ADDR.srv, 8081], [t.cli, ADDR.srv, 8081]);
      const local3 = /local (\S+) (\d+)/.exec(cli3.out())!;

      const flows = (): FlowJson[] => {
        const r = run(['flows', ...store, '--process', '--json', '--proto', 'tcp', '--since', since, '--limit', '0']);
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(r.stdout) as FlowJson[];
      };
      // by the whole original tuple: the table also holds the earlier tests' flows (in TIME-WAIT, dumped
      // at start), and the kernel reuses a source port towards another destination
      const key = [[local1, 8080], [local2, 9001], [local3, 8081]] as const;
      const find = (fs: FlowJson[], i: 0 | 1 | 2) => fs.find((f) => f.orig.src === key[i][0][1] && f.orig.sport === Number(key[i][0][2]) && f.orig.dport === key[i][1]);
      // the passive side's holder is known once the server has closed: its changes are stored by then
      const ready = () => {
        const fs = flows();
        return ([0, 1, 2] as const).every((i) => find(fs, i)) && (find(fs, 1)?.processes.length ?? 0) > 0 &&
          (find(fs, 0)?.processes.length ?? 0) > 0;
      };
      assert.ok(await waitFor(ready, 20000), JSON.stringify(flows(), null, 1) + dOut.err());
      const fs = flows();
      const f1 = find(fs, 0)!;
      assert.equal(f1.nat, 'snat');
      assert.deepEqual([f1.snat!.public.addr, String(f1.snat!.public.port)], [seen1[1], seen1[2]], 'the flow\'s translation is what the server saw');
      assert.deepEqual(f1.processes.map((p) => [p.pid, p.comm, p.seen_at]), [[pidOf(cli1.out()), 'python3', 'connect']], 'the router\'s client, at connect()');
      const f2 = find(fs, 1)!;
      assert.equal(f2.nat, 'dnat');
      assert.equal(f2.dnat!.inside.port, 9000);
      assert.deepEqual(f2.processes.map((p) => [p.pid, p.comm, p.seen_at]), [[pidOf(srv2.out()), 'python3', 'close']], 'the router\'s server, at its close');
      assert.deepEqual(find(fs, 2)!.processes, [], 'a forwarded connection has no socket on the router');

      // the table shows the same, in a PROCESS column
      const table = run(['flows', ...store, '--process', '--proto', 'tcp', '--since', since, '--limit', '0']);
      assert.equal(table.status, 0, table.stderr);
      assert.match(table.stdout.split('\n')[0], /PROCESS$/);
      assert.ok(table.stdout.includes(`${pidOf(cli1.out())}/python3 (connect)`), table.stdout);
      // CSV: a process column
      const csv = run(['flows', ...store, '--process', '--csv', '--proto', 'tcp', '--since', since, '--limit', '0']);
      assert.match(csv.stdout.split('\n')[0], /,netns,process$/);
      assert.ok(csv.stdout.includes(`,${pidOf(srv2.out())}/python3 (close)`), csv.stdout);

      // who: the public address and port the server saw -> the router itself, and its process; asked once
      // the daemon's trail covers the whole question (it is marked alive at each flush)
      await waitFor(() => Date.now() >= (at1 + 2) * 1000 + 1500, 10000);
      const w = run(['who', ...store, `${seen1[1]}:${seen1[2]}`, '--at', `@${at1}`, '--skew', '1s', '--process', '--json']);
      assert.ok(w.status === 0, w.stderr + w.stdout);
      const wj = JSON.parse(w.stdout) as { verdict: string; inside: string[]; flows: FlowJson[]; lingering: FlowJson[] };
      assert.deepEqual([wj.verdict, wj.inside], ['exact', [ADDR.rtrOut]], w.stdout);
      const wf = [...wj.flows, ...wj.lingering];
      assert.ok(wf.length >= 1);
      for (const f of wf) assert.deepEqual(f.processes.map((p) => p.pid), [pidOf(cli1.out())]);

      // tcpstates --db: the client's changes, the first its connect() (the local port not chosen yet)
      const ts = run(['tcpstates', ...store, '--pid', String(pidOf(cli1.out())), '--json', '--since', since]);
      assert.equal(ts.status, 0, ts.stderr);
      const rows = JSON.parse(ts.stdout) as Array<{ old_state: string; new_state: string; sport: number; holder: boolean; netns: string; comm: string }>;
      assert.ok(rows.length >= 1, ts.stdout);
      assert.deepEqual([rows[0].old_state, rows[0].new_state, rows[0].sport, rows[0].holder, rows[0].netns, rows[0].comm], ['CLOSE', 'SYN_SENT', 0, true, t.rtr, 'python3']);
      const byState = run(['tcpstates', ...store, '--port', local2[2], '--state', 'LISTEN,SYN_RECV,ESTABLISHED', '--since', since]);
      assert.equal(byState.status, 0, byState.stderr);
      assert.match(byState.stdout, /ESTABLISHED/);
      assert.ok(!/\bSYN_SENT\b/.test(byState.stdout.split('\n').slice(1).map((l) => l.split(/\s{2,}/)[6]).join(' ')), byState.stdout);
      assert.equal(await t.stop(d), 0, dOut.err());
      assert.match(dOut.err(), /tcp_states_written=[1-9]/);
    } finally {
      await t.stop(d);
    }
  }

  it('SIGHUP with a changed tcpstates source while connections go on: the old one is read to its end, the new one takes over; every change stored once', async () => {
    const db = join(dir, 'hup.db');
    const conf = join(dir, 'hup.toml');
    const write = (family: string) => writeFileSync(conf, `[[source]]\nname = "tcp"\ntype = "tcpstates"\nnetns = "${t.rtr}"\nfamily = "${family}"\n` +
      `[store]\npath = "${db}"\nflush_interval_ms = 100\n`);
    write('any');
    const d = t.spawn('', [...CONNTRAIL, 'run', '-c', conf]);
    const dOut = collect(d);
    try {
      assert.ok(await waitFor(() => /tracing TCP state changes/.test(dOut.err()), 20000), dOut.err());
      const since = new Date().toISOString();
      // N connections from the router, one every 10 ms or so, across the reload
      const N = 300;
      const srv = collect(t.spawn(t.srv, ['python3', '-c', MANY_SERVER, ADDR.srv, '8090', String(N)]));
      assert.ok(await waitFor(() => srv.out().includes('ready'), 10000), srv.err());
      const cli = collect(t.spawn(t.rtr, ['python3', '-c', MANY_CLIENT, ADDR.srv, '8090', String(N)]));
      assert.ok(await waitFor(() => (cli.out().match(/^local /gm) ?? []).length >= 20, 20000), cli.out() + cli.err());
      write('ipv4');
      process.kill(d.pid!, 'SIGHUP');
      assert.ok(await waitFor(() => /SIGHUP: configuration reloaded/.test(dOut.err()), 20000), dOut.err());
      assert.equal(await cli.done, 0, cli.err());
      assert.equal(await srv.done, 0, srv.err());
      const ports = [...cli.out().matchAll(/^local \S+ (\d+)$/gm)].map((m) => Number(m[1]));
      assert.equal(ports.length, N);
      // the client may exit before its last socket has closed (LAST_ACK -> CLOSE comes with the
      // server's last ACK): the daemon stops once no socket to the server is left but in TIME-WAIT
      const open = () => t.exec(t.rtr, ['ss', '-Htan', 'dport', '=', ':8090']).split('\n').filter((l) => l.trim() && !l.startsWith('TIME-WAIT'));
      assert.ok(await waitFor(() => open().length === 0, 20000), open().join('\n'));
      assert.equal(await t.stop(d), 0, dOut.err());
      const r = run(['tcpstates', '--db', db, '--port', '8090', '--json', '--since', since, '--limit', '0']);
      assert.equal(r.status, 0, r.stderr);
      const rows = JSON.parse(r.stdout) as Array<{ cookie: number; old_state: string; new_state: string; sport: number; dport: number }>;
      // every change once (the old and the new program both saw those made while both were attached)
      const keys = rows.map((x) => `${x.cookie} ${x.old_state} ${x.new_state}`);
      const dup = keys.filter((k, i) => keys.indexOf(k) !== i);
      assert.deepEqual(dup, [], 'changes stored twice');
      // and none missing: each client socket's connect, handshake and end (the router's sockets: the server is elsewhere)
      assert.equal(rows.filter((x) => x.old_state === 'CLOSE' && x.new_state === 'SYN_SENT').length, N, 'every connect()');
      for (const port of ports) {
        assert.ok(rows.some((x) => x.sport === port && x.old_state === 'SYN_SENT' && x.new_state === 'ESTABLISHED'), `client ${port} established`);
        assert.ok(rows.some((x) => x.sport === port && x.new_state === 'CLOSE'), `client ${port} closed`);
      }
      assert.match(dOut.err(), /drops=0/);
    } finally {
      await t.stop(d);
    }
  });

  it('SQLite', async () => {
    await scenario(`path = "${join(dir, 'flows.db')}"`, ['--db', join(dir, 'flows.db')], 'sqlite');
  });

  it('PostgreSQL', async () => {
    pg = await startPostgres(dir);
    await scenario(`type = "postgres"\nurl = "${pg.url}"\nspool_dir = "${join(dir, 'spool')}"`, ['--postgres', pg.url], 'pg');
  });
});
