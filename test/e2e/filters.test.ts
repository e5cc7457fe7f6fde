// Every accept and deny filter passes exactly what it should: conntrail with
// each filter runs beside an unfiltered conntrack -E; the expected lines are
// conntrack's, selected by a predicate over their text (an oracle that does
// not share our decoder). And the socket filter keeps what it rejects out of
// user space (the datagram counter).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { ADDR, collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { mixedRules, mixedTraffic, reapExpired, shortTimeouts } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';

const lines = (s: string) => s.split('\n').filter(Boolean);

interface Parsed { type: string; proto: string; src: string; dst: string; ports: number[]; mark: number | undefined; zone: number; v6: boolean }
function parse(l: string): Parsed {
  const kv = (k: string) => [...l.matchAll(new RegExp(` ${k}=(\\S+)`, 'g'))].map((m) => m[1]);
  return {
    type: /\[(\w+)\]/.exec(l)![1],
    proto: l.replace(/^\s*\[\w+\]\s+/, '').split(/\s+/)[0],
    src: kv('src')[0],
    dst: kv('dst')[0],
    ports: [...kv('sport'), ...kv('dport')].map(Number),
    // (a line without mark=: the event carried none)
    mark: kv('mark')[0] === undefined ? undefined : Number(kv('mark')[0]),
    zone: Number(kv('zone')[0] ?? 0),
    v6: kv('src')[0].includes(':'),
  };
}

interface Case { args: string[]; want: (p: Parsed) => boolean; kernel: boolean }
const CASES: Record<string, Case> = {
  'proto tcp': { args: ['-p', 'tcp'], want: (p) => p.proto === 'tcp', kernel: true },
  'proto list': { args: ['-p', 'gre,sctp', '-p', '17'], want: (p) => ['gre', 'sctp', 'udp'].includes(p.proto), kernel: true },
  'not-proto icmp, icmpv6': { args: ['--not-proto', 'icmp', '--not-proto', 'icmpv6'], want: (p) => p.proto !== 'icmp' && p.proto !== 'icmpv6', kernel: true },
  'src cidr v4': { args: ['-s', '10.99.1.0/24'], want: (p) => p.src.startsWith('10.99.1.'), kernel: true },
  'dst v6 cidr or v4 host': { args: ['-d', 'fd99:2::/64', '-d', ADDR.rtrIn], want: (p) => p.dst.startsWith('fd99:2:') || p.dst === ADDR.rtrIn, kernel: true },
  'not-dst host': { args: ['--not-dst', ADDR.srv], want: (p) => p.dst !== ADDR.srv, kernel: true },
  'not-src v6 net': { args: ['--not-src', 'fd99::/16'], want: (p) => !p.src.startsWith('fd99:'), kernel: true },
  'mark': { args: ['-m', '16'], want: (p) => p.mark === 16, kernel: true },
  'mark with mask': { args: ['-m', '16/0xf0'], want: (p) => p.mark !== undefined && (p.mark & 0xf0) === 16, kernel: true },
  'zone': { args: ['-w', '5'], want: (p) => p.zone === 5, kernel: true },
  'family ipv6': { args: ['-f', 'ipv6'], want: (p) => p.v6, kernel: true },
  'events NEW,DESTROY': { args: ['-e', 'NEW,DESTROY'], want: (p) => p.type !== 'UPDATE', kernel: true },
  'port': { args: ['--port', '8080-8081'], want: (p) => p.ports.some((x) => x >= 8080 && x <= 8081), kernel: false },
  'not-port': { args: ['--not-port', '5353'], want: (p) => !p.ports.includes(5353), kernel: false },
  'combined accept and deny': {
    args: ['-p', 'tcp,udp', '--not-src', 'fd99::/16', '--not-port', '80'],
    want: (p) => ['tcp', 'udp'].includes(p.proto) && !p.v6 && !p.ports.includes(80), kernel: false,
  },
  'proto tcp, user space only': { args: ['-p', 'tcp', '--no-kernel-filter'], want: (p) => p.proto === 'tcp', kernel: false },
};

describe('filters', { timeout: 180_000 }, () => {
  const t = new Topology('fl');
  before(() => {
    t.up({ nft: mixedRules(t) });
    shortTimeouts(t);
  });
  after(() => t.down());

  it('each filter keeps exactly the matching events; kernel-side filters drop the rest before user space', async () => {
    const ref = t.spawn(t.rtr, ['conntrack', '-E']);
    const r = collect(ref);
    const procs: Array<[string, ChildProcess, ReturnType<typeof collect>]> = [];
    for (const [name, c] of Object.entries(CASES)) {
      const p = t.spawn(t.rtr, [...CONNTRAIL, 'events', ...c.args, '--stats']);
      procs.push([name, p, collect(p)]);
    }
    for (const p of [ref, ...procs.map((x) => x[1])]) assert.ok(await waitSubscribed(p.pid!), 'subscribed');

    await mixedTraffic(t);
    await reapExpired(t);

    const all = () => lines(r.out());
    const expectedFor = (c: Case) => all().filter((l) => c.want(parse(l)));
    await waitFor(() => all().length >= 30 && procs.every(([n, , o]) => lines(o.out()).length >= expectedFor(CASES[n]).length));
    for (const p of [ref, ...procs.map((x) => x[1])]) await t.stop(p);
    await Promise.all([r.done, ...procs.map((x) => x[2].done)]);

    const total = all().length;
    for (const [name, , o] of procs) {
      const c = CASES[name];
      const want = expectedFor(c);
      assert.ok(want.length > 0 && want.length < total, `${name}: the traffic exercises it (${want.length}/${total})`);
      assert.deepEqual(lines(o.out()), want, name);
      const st = /datagrams=(\d+) .*filter_insns=(\d+)/.exec(o.err());
      assert.ok(st, `${name}: stats printed`);
      const datagrams = Number(st[1]);
      if (c.kernel && !c.args.includes('-e')) {
        assert.ok(Number(st[2]) > 0, `${name}: socket filter attached`);
        assert.equal(datagrams, want.length, `${name}: only matching events reached user space`);
      } else if (c.args.includes('-e')) {
        assert.equal(datagrams, want.length, `${name}: only the subscribed groups were delivered`);
      } else {
        assert.ok(datagrams > want.length, `${name}: filtered in user space`);
      }
    }
  });
});

describe('filter arguments', () => {
  const bad: Array<[string[], RegExp]> = [
    [['-s', '10.0.0.300'], /--src: "10\.0\.0\.300" is not an IPv4 or IPv6 address or CIDR/],
    [['-d', '10.0.0.0/40'], /--dst: "10\.0\.0\.0\/40": prefix length must be 0\.\.32/],
    [['-p', 'tcpx'], /--proto: "tcpx" is not a protocol/],
    [['--port', '70000'], /--port: "70000" is not a port/],
    [['-m', 'abc'], /--mark: "abc" is not a mark/],
    [['-e', 'NEW,FOO'], /--event: "FOO" is not an event type/],
    [['-f', 'ipv5'], /--family: "ipv5" is not ipv4 or ipv6/],
    [['-f', 'ipv6', '-s', '10.0.0.1'], /--src: "10\.0\.0\.1" is not an ipv6 address/],
    [['-o', 'bogus'], /--output: "bogus" is not an output option/],
    [['--format', 'xml'], /argument 'xml' is invalid/],
    [['--bogus'], /unknown option '--bogus'/],
  ];
  for (const [args, re] of bad) {
    it(`${args.join(' ')}: one line, exit 2`, async () => {
      const { spawnSync } = await import('node:child_process');
      const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'events', ...args], { encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    });
  }
});
