// --format kernel against the kernel's own log: every packet is logged twice
// by the router's forward chain, once by the kernel's LOG logger (nft `log`
// without a group, read back with dmesg) and once to an NFLOG group
// conntrail reads; the lines must be the same. The kernel logs from a
// network namespace other than the first only with
// net.netfilter.nf_log_all_netns = 1, set for the test and put back after.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { collect, Topology, waitFor } from '../helpers/netns.js';
import { ping, tcp, udp } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';

const GROUP = 52;
const ALL_NETNS = '/proc/sys/net/netfilter/nf_log_all_netns';

describe('packets --format kernel vs the kernel log', { timeout: 120_000 }, () => {
  const t = new Topology('nk');
  // a prefix no other line of the kernel log has: the ring buffer outlives
  // test runs, and a PID alone repeats (a CI run saw an earlier run's lines
  // with the same one: the kernel's count twice conntrail's)
  const tag = `ctk${process.pid.toString(36)}${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  let saved = '0';
  before(() => {
    saved = readFileSync(ALL_NETNS, 'utf8').trim();
    writeFileSync(ALL_NETNS, '1');
    const each = (match: string, name: string) =>
      `    ${match} log prefix "${tag}-${name}: "\n    ${match} log prefix "${tag}-${name}: " group ${GROUP}`;
    t.up({ nft: `table inet ctt {
  chain forward {
    type filter hook forward priority 0; policy accept;
${each('tcp dport 8080', 'tcp')}
${each('udp dport 5353', 'udp')}
${each('icmp type echo-request', 'ping')}
${each('icmpv6 type echo-request', 'ping6')}
${each('ip6 nexthdr tcp tcp dport 8080', 'tcp6')}
  }
  chain postrouting { type nat hook postrouting priority 100; oifname "${t.prefix}r1" masquerade; }
}` });
  });
  after(() => {
    t.down();
    writeFileSync(ALL_NETNS, saved);
  });

  const kernelLines = () => spawnSync('dmesg', ['--notime'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).stdout
    .split('\n').filter((l) => l.startsWith(`${tag}-`)).map((l) => l.replace(/\s+$/, ''));

  it('each line is the one the kernel wrote for the same packet', async () => {
    const d = t.spawn(t.rtr, [...CONNTRAIL, 'packets', '--group', String(GROUP), '--format', 'kernel']);
    const o = collect(d);
    const ours = () => o.out().split('\n').filter(Boolean).map((l) => l.replace(/\s+$/, ''));
    try {
      assert.ok(await waitFor(() => t.exec(t.rtr, ['cat', '/proc/net/netfilter/nfnetlink_log']).split('\n').some((l) => Number(l.trim().split(/\s+/)[0]) === GROUP), 10000), o.err());
      await tcp(t, 8080);
      await udp(t, 5353);
      ping(t);
      ping(t, true);
      await tcp(t, 8080, true);
      assert.ok(await waitFor(() => kernelLines().length >= 8 && ours().length === kernelLines().length, 15000),
        `kernel ${kernelLines().length}, conntrail ${ours().length}\n${o.err()}`);
    } finally {
      await t.stop(d);
    }
    // (the kernel's line ends with a space: dmesg keeps it, compared without)
    assert.deepEqual(ours(), kernelLines());
    for (const w of ['-tcp: IN=', 'TOS=0x', 'RES=0x', 'SYN ', '-udp: ', 'PROTO=ICMP TYPE=8', 'PROTO=ICMPv6 TYPE=128', 'SRC=fd99:0001:0000:0000:0000:0000:0000:0002']) {
      assert.ok(ours().some((l) => l.includes(w)), `a line with ${w}`);
    }
  });
});
