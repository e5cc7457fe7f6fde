// --format vyos side by side with VyOS's own conntrack logger
// (vyos-conntrack-logger, rebuilt from the reference copy in
// ../shared/reference by ../shared/bench/peers/vyos/prepare.py, running on
// Debian's python3-pyroute2) on the same traffic.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, sh, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { gre, ping, rawProto, sctp, tcp, udp } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';

const SHARED = join(process.cwd(), '..', 'shared');
const PREPARE = join(SHARED, 'bench', 'peers', 'vyos', 'prepare.py');
const SOURCE = join(SHARED, 'reference', '000_120ff0aaa19cf175.txt');
const lines = (s: string) => s.split('\n').filter((l) => l.startsWith('['));

describe('vyos format vs vyos-conntrack-logger', { skip: !existsSync(PREPARE) && 'no ../shared/bench beside the project', timeout: 120_000 }, () => {
  const t = new Topology('vy');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-vyos-'));
  before(() => {
    sh(['/usr/bin/python3', PREPARE, SOURCE, dir]);
    writeFileSync(join(dir, 'all.json'), JSON.stringify({ event: { new: {}, update: {}, destroy: {} }, queue_size: 10000, log_level: 'info' }));
    t.up();
  });
  after(() => { t.down(); rmSync(dir, { recursive: true, force: true }); });

  it('logs the same lines for the same events (counters aside, which VyOS drops)', async () => {
    const ref = t.spawn(t.rtr, ['env', `PYTHONPATH=${join(dir, 'pylib')}`, '/usr/bin/python3',
      join(dir, 'vyos-conntrack-logger'), '-c', join(dir, 'all.json')]);
    const ours = t.spawn(t.rtr, [...CONNTRAIL, 'events', '--format', 'vyos']);
    const [r, c] = [ref, ours].map(collect);
    assert.ok(await waitSubscribed(ours.pid!));
    // the VyOS logger subscribes from its main process, then forks workers
    assert.ok(await waitFor(() => /listening for messages/.test(r.err())), r.err());

    await tcp(t, 8080);
    await udp(t, 5353);
    await tcp(t, 8081, true);
    ping(t);
    ping(t, true);
    gre(t);
    sctp(t, 5000, 6000);
    rawProto(t, 253);
    // end every flow from user space: DESTROY events with portid=
    t.exec(t.rtr, ['conntrack', '-F'], { allowFail: true });
    // the DESTROYs are still on their way when conntrack -F returns, and the
    // VyOS logger, stopped, drops what its workers have not printed: wait for
    // the end of the stream, not a count. A ping to the router after the
    // flush ends ours (its NEW, then its UPDATE at the reply; its DESTROY
    // comes 30 s later), then the VyOS logger must have printed the same lines.
    ping(t, false, ADDR.rtrIn);
    const strip = (l: string) => l.replace(/ packets=\d+ bytes=\d+/g, '');
    const last = (l: string) => l.startsWith('[UPDATE]') && l.includes(' icmp ') && l.includes(` dst=${ADDR.rtrIn} `);
    const same = () => {
      const [a, b] = [lines(c.out()).map(strip).sort(), lines(r.err()).sort()];
      return a.length === b.length && a.every((l, i) => l === b[i]);
    };
    await waitFor(() => lines(c.out()).some(last) && same());
    await t.stop(ref);
    await t.stop(ours);
    await Promise.all([r.done, c.done]);

    const theirs = lines(r.err());
    const mine = lines(c.out());
    assert.ok(mine.length >= 20, `${mine.length} events`);
    assert.ok(mine.some(last), 'the ping after the flush');
    assert.ok(mine.some((l) => / packets=\d+ bytes=\d+ /.test(l)), 'conntrail prints the counters');
    // VyOS runs one worker per CPU, so its order can differ: compare sorted
    assert.deepEqual(mine.map(strip).sort(), [...theirs].sort());
  });
});
