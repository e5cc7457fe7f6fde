// The VyOS conntrack-logger drop-in keeps its event × protocol selection
// through a resync: an overrun is forced (the daemon is stopped with
// SIGSTOP while a burst of UDP flows overflows its receive buffer), the
// resync dumps the table, and only the entries the "new" selection takes
// (TCP here) are printed as [NEW] lines; no UDP [NEW] line appears.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { CONNTRAIL } from '../helpers/cli.js';

const GEN = join(process.cwd(), 'test', 'helpers', 'udpflows.py');
const lines = (s: string) => s.split('\n').filter((l) => l.startsWith('['));

describe('VyOS drop-in through a resync', { timeout: 120_000 }, () => {
  const t = new Topology('vr');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-vr-'));
  before(() => {
    t.up();
    t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '30' });
  });
  after(() => { t.down(); rmSync(dir, { recursive: true, force: true }); });

  it('after a forced overrun, the resync prints only the selected protocols as [NEW]', async () => {
    const conf = join(dir, 'vyos.conf');
    writeFileSync(conf, JSON.stringify({ event: { new: { tcp: {} }, destroy: { udp: {} } }, queue_size: 10000, log_level: 'info' }));
    const d = t.spawn(t.rtr, [...CONNTRAIL, 'run', '--config', conf]);
    const o = collect(d);
    const srv = t.spawn(t.srv, ['ncat', '-l', '-k', '8080']);
    let cli: ReturnType<typeof t.spawn> | undefined;
    try {
      assert.ok(await waitSubscribed(d.pid!));
      // a TCP connection held open: in the table during the resync
      await new Promise((r) => setTimeout(r, 200));
      cli = t.spawn(t.cli, ['ncat', ADDR.srv, '8080']);
      collect(cli);
      assert.ok(await waitFor(() => lines(o.out()).some((l) => l.startsWith('[NEW]') && / tcp /.test(l))), o.out());
      const tcpNew = lines(o.out()).find((l) => l.startsWith('[NEW]') && / tcp /.test(l))!;
      const id = tcpNew.split(/\s+/)[1];
      // overflow the receive buffer while the daemon cannot read
      process.kill(d.pid!, 'SIGSTOP');
      t.exec(t.cli, ['python3', GEN, ADDR.srv, '60000', '0', '60000']);
      process.kill(d.pid!, 'SIGCONT');
      assert.ok(await waitFor(() => /resync done/.test(o.err()), 30000), o.err());
      assert.match(o.err(), /netlink overrun \(ENOBUFS\)/);
      const out = lines(o.out());
      assert.deepEqual(out.filter((l) => l.startsWith('[NEW]') && !/ tcp /.test(l)).slice(0, 3), [], 'NEW: tcp only, dump entries included');
      assert.ok(out.filter((l) => l.startsWith('[NEW]') && l.split(/\s+/)[1] === id).length >= 2, 'the held connection: its NEW, then its table entry from the resync');
      assert.ok(!out.some((l) => l.startsWith('[UPDATE]')), 'no UPDATE selected');
    } finally {
      if (cli) await t.stop(cli);
      await t.stop(srv);
      await t.stop(d);
    }
  });
});
