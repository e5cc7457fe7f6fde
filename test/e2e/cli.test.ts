// How conntrail events / dump start, stop and fail: namespaces, --count,
// signals, a closed stdout, missing privileges, and overruns never silent.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { ADDR, collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { ping, udp } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';

const lines = (s: string) => s.split('\n').filter(Boolean);

describe('conntrail events: operation', { timeout: 180_000 }, () => {
  const t = new Topology('cl');
  before(() => t.up());
  after(() => t.down());

  it('--netns from the root namespace, --count N exits 0 after N events', async () => {
    const p = spawn(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'events', '--netns', t.rtr, '--count', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const o = collect(p);
    assert.ok(await waitSubscribed(p.pid!, 10000, t.rtr));
    ping(t);
    ping(t);
    const code = await o.done;
    assert.equal(code, 0, o.err());
    const ls = lines(o.out());
    assert.equal(ls.length, 2);
    assert.match(ls[0], /^\s+\[NEW\] icmp\s+1 \d+ src=10\.99\.1\.2 dst=10\.99\.2\.2 /);
  });

  it('SIGTERM and SIGINT: exit 0 with every event read so far written', async () => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const p = t.spawn(t.rtr, [...CONNTRAIL, 'events', '--format', 'json', '--stats']);
      const o = collect(p);
      assert.ok(await waitSubscribed(p.pid!));
      for (let i = 0; i < 5; i++) await udp(t, 6000 + i, false, false);
      await waitFor(() => lines(o.out()).length >= 5);
      const code = await t.stop(p, sig);
      await o.done;
      assert.equal(code, 0, o.err());
      const shown = Number(/shown=(\d+)/.exec(o.err())![1]);
      assert.equal(lines(o.out()).length, shown);
      assert.ok(shown >= 5);
    }
  });

  it('a closed stdout (| head -1) ends it quietly with exit 0', async () => {
    const p = spawn('bash', ['-c', `set -o pipefail; ${CONNTRAIL.join(' ')} events --netns ${t.rtr} | head -1`], { stdio: ['ignore', 'pipe', 'pipe'] });
    const o = collect(p);
    await waitFor(() => spawnSync('pgrep', ['-f', `events --netns ${t.rtr}`]).status === 0);
    await new Promise((r) => setTimeout(r, 500));
    // the first event fills head; later ones hit the closed pipe
    for (let i = 0; i < 6 && p.exitCode === null; i++) { ping(t); await new Promise((r) => setTimeout(r, 100)); }
    const code = await o.done;
    assert.equal(code, 0, `exit ${code}: ${o.err()}`);
    assert.equal(lines(o.out()).length, 1);
    assert.equal(o.err(), '');
  });

  it('a missing namespace: one line naming it, exit 1', () => {
    for (const cmd of ['events', 'dump']) {
      const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), cmd, '--netns', 'no-such-ns-42'], { encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.equal(r.stderr, 'conntrail: network namespace "no-such-ns-42" does not exist (no /run/netns/no-such-ns-42)\n');
    }
  });

  it('without CAP_NET_ADMIN: one line saying so, exit 1', () => {
    for (const cmd of ['events', 'dump']) {
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...CONNTRAIL, cmd], { encoding: 'utf8' });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /^conntrail: permission denied: reading conntrack events needs root or CAP_NET_ADMIN .*EPERM/);
      assert.equal(lines(r.stderr).length, 1);
    }
  });

  it('an overrun is detected, counted and reported, never silent', async () => {
    // a deliberately tiny buffer, read only every 300 ms, under a burst
    const p = t.spawn(t.rtr, [...CONNTRAIL, 'events', '-b', '4096', '--batch-delay', '300', '--stats']);
    const o = collect(p);
    assert.ok(await waitSubscribed(p.pid!));
    t.exec(t.cli, ['python3', '-c', `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3000): s.sendto(b'x', ('${ADDR.srv}', 20000 + i))
`]);
    await waitFor(() => /WARNING: netlink overrun/.test(o.err()), 5000);
    await t.stop(p);
    await o.done;
    assert.match(o.err(), /WARNING: netlink overrun \(ENOBUFS\) x\d+, kernel dropped \d+ events/);
    const st = /shown=(\d+) .*overflows=(\d+) kernel_drops=(\d+)/.exec(o.err())!;
    assert.ok(Number(st[2]) >= 1, 'ENOBUFS counted');
    assert.ok(Number(st[3]) >= 1, 'kernel drops counted');
    // what was lost plus what was shown accounts for every NEW event of the burst
    assert.ok(Number(st[1]) + Number(st[3]) >= 3000, o.err());
  });
});
