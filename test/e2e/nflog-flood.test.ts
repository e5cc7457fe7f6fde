// A flood of 10,000 logged packets: with room, every one is printed and no
// gap is counted; with a tiny receive buffer and the reader stopped during
// the flood, the socket overruns and every packet is either printed or
// counted missing by its sequence number: printed + missing = sent, exactly.
// Ground truth: the generator's count and the nft rule's packet counter.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, Topology, waitFor } from '../helpers/netns.js';
import { CONNTRAIL } from '../helpers/cli.js';
import { spawnSync } from 'node:child_process';

const GEN = join(process.cwd(), 'test', 'helpers', 'udpflows.py');
const GROUP = 50;
const N = 10_000;

describe('packets: a 10,000-packet flood', { timeout: 180_000 }, () => {
  const t = new Topology('nq');
  before(() => {
    t.up({ nft: `table inet ctt {
  chain forward { type filter hook forward priority 0; policy accept;
    udp dport 20000-49999 counter log prefix "flood: " group ${GROUP}
    udp dport 50000 counter log prefix "last: " group ${GROUP}
  }
  chain postrouting { type nat hook postrouting priority 100; oifname "${t.prefix}r1" masquerade; }
}` });
  });
  after(() => t.down());

  const bound = () => t.exec(t.rtr, ['cat', '/proc/net/netfilter/nfnetlink_log']).split('\n').some((l) => Number(l.trim().split(/\s+/)[0]) === GROUP);
  const counted = () => {
    const m = /udp dport 20000-49999 counter packets (\d+)/.exec(t.exec(t.rtr, ['nft', 'list', 'chain', 'inet', 'ctt', 'forward']));
    return Number(m?.[1] ?? -1);
  };
  /** one more logged packet after the flood: a loss at the flood's tail shows as a gap before it */
  const last = () => t.exec(t.cli, ['python3', '-c', `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b"x", ("${ADDR.srv}", 50000))`]);
  const stats = (err: string) => {
    const m = /stats shown=(\d+) packets=(\d+) seq_gaps=(\d+) .*overflows=(\d+)/.exec(err);
    assert.ok(m, err);
    return { shown: Number(m[1]), packets: Number(m[2]), gaps: Number(m[3]), overflows: Number(m[4]) };
  };

  // the second: the kernel's largest batches (its skb for 128 KiB of packets
  // is a 256 KiB allocation it fills: each datagram must fit one read)
  for (const batch of [[], ['--nlbufsiz', '131072', '--qthreshold', '2000', '--timeout', '50']]) it(`with room${batch.length ? ` and ${batch.join(' ')}` : ''}: all 10,000 printed, in order, no gap, no overrun`, async () => {
    const c0 = counted();
    const d = t.spawn(t.rtr, [...CONNTRAIL, 'packets', '--group', String(GROUP), '--format', 'json', '--buffer-size', '67108864', '--stats', ...batch]);
    const o = collect(d);
    try {
      assert.ok(await waitFor(bound, 10000), o.err());
      t.exec(t.cli, ['python3', GEN, ADDR.srv, String(N), '0', String(N)]);
      last();
      assert.equal(counted() - c0, N, 'the rule logged every packet');
      assert.ok(await waitFor(() => o.out().includes('"prefix":"last: "'), 20000), o.err());
    } finally {
      await t.stop(d);
    }
    await o.done;
    const recs = o.out().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { prefix: string; dport: number; seq: number });
    const flood = recs.filter((r) => r.prefix === 'flood: ');
    assert.equal(flood.length, N);
    assert.deepEqual(flood.map((r) => r.dport).slice(0, 3), [20000, 20001, 20002]);
    assert.ok(flood.every((r, i) => i === 0 || r.seq === flood[i - 1].seq + 1), 'consecutive sequence numbers');
    const s = stats(o.err());
    assert.equal(s.gaps, 0);
    assert.equal(s.overflows, 0);
    assert.match(o.err(), / truncated_datagrams=0 /);
    assert.doesNotMatch(o.err(), /WARNING/);
  });

  it('a tiny buffer and a reader stopped mid-flood: it overruns, and printed + counted missing = sent', async () => {
    const c0 = counted();
    const d = t.spawn(t.rtr, [...CONNTRAIL, 'packets', '--group', String(GROUP), '--format', 'json', '--buffer-size', '4096', '--stats']);
    const o = collect(d);
    try {
      assert.ok(await waitFor(bound, 10000), o.err());
      process.kill(d.pid!, 'SIGSTOP');
      t.exec(t.cli, ['python3', GEN, ADDR.srv, String(N), '0', String(N)]);
      process.kill(d.pid!, 'SIGCONT');
      last();
      assert.equal(counted() - c0, N);
      assert.ok(await waitFor(() => o.out().includes('"prefix":"last: "'), 20000), o.err());
      assert.ok(await waitFor(() => /WARNING: packets lost/.test(o.err()), 5000), o.err());
    } finally {
      await t.stop(d);
    }
    await o.done;
    const flood = o.out().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { prefix: string }).filter((r) => r.prefix === 'flood: ');
    const s = stats(o.err());
    assert.ok(s.overflows > 0, `overruns: ${s.overflows}`);
    assert.ok(flood.length < N, `printed ${flood.length}`);
    assert.equal(flood.length + s.gaps, N, `printed ${flood.length} + missing ${s.gaps}`);
  });

  it('the daemon, stopped mid-flood with a tiny buffer: stored + counted missing = sent, and the search says when packets were lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conntrail-flood-'));
    const db = join(dir, 'flows.db');
    const conf = join(dir, 'c.toml');
    // (no conntrack source: the packets alone; the buffer may not grow past its start)
    writeFileSync(conf, `[[source]]\nname = "fl"\ntype = "nflog"\ngroups = [${GROUP}]\nbuffer_size = 4096\nbuffer_max = 4096\n\n` +
      `[store]\npath = "${db}"\nspool_dir = "${join(dir, 'spool')}"\nflush_interval_ms = 100\n`);
    const c0 = counted();
    const d = t.spawn(t.rtr, [...CONNTRAIL, 'run', '-c', conf]);
    const o = collect(d);
    try {
      assert.ok(await waitFor(() => bound() && /started with/.test(o.err()), 10000), o.err());
      process.kill(d.pid!, 'SIGSTOP');
      t.exec(t.cli, ['python3', GEN, ADDR.srv, String(N), '0', String(N)]);
      process.kill(d.pid!, 'SIGCONT');
      last();
      assert.equal(counted() - c0, N);
      assert.ok(await waitFor(() => /packets lost: .*missing by sequence number/.test(o.err()), 10000), o.err());
      // the last packet is stored (it shows where the flood's tail was lost)
      assert.ok(await waitFor(() => /"last: "/.test(t.exec(t.rtr, [...CONNTRAIL, 'packets', '--db', db, '--prefix', 'last', '--json'])), 10000));
    } finally {
      await t.stop(d);
    }
    await o.done;
    const m = /source fl: packets=(\d+) seq_gaps=(\d+) /.exec(o.err());
    assert.ok(m, o.err());
    const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'packets', '--db', db, '--prefix', 'flood', '--limit', '0', '--csv'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    assert.equal(r.status, 0, r.stderr);
    const stored = r.stdout.split('\n').filter(Boolean).length - 1;
    assert.ok(stored < N, `stored ${stored}`);
    assert.equal(stored + Number(m[2]), N, `stored ${stored} + missing ${m[2]}`);
    // the search says the trail has a gap, with how many were lost
    assert.match(r.stderr, /warning: the trail of packets has a gap: .* packets? of NFLOG group 50 lost \(sequence numbers skipped\)/);
    rmSync(dir, { recursive: true, force: true });
  });
});
