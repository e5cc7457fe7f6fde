// conntrail events / dump side by side with the real conntrack -E / -L on
// the same namespace and the same traffic: the same events, the same lines.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { mixedRules, mixedTraffic, reapExpired, shortTimeouts, udp } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';

const env = { ...process.env, TZ: 'UTC' };
const lines = (s: string) => s.split('\n').filter(Boolean);

describe('conntrail events vs conntrack -E', { timeout: 180_000 }, () => {
  const t = new Topology('ev');
  before(() => { t.up({ nft: mixedRules(t) }); shortTimeouts(t); });
  after(() => t.down());

  it('prints the same lines for every event (tcp, udp, icmp, v4, v6, gre, sctp, NAT, zone, mark)', async () => {
    const o = 'extended,id,ktimestamp';
    const ref = t.spawn(t.rtr, ['conntrack', '-E', '-o', o], { env });
    const ours = t.spawn(t.rtr, [...CONNTRAIL, 'events', '-o', o, '--stats'], { env });
    const json = t.spawn(t.rtr, [...CONNTRAIL, 'events', '--format', 'json'], { env });
    const vyos = t.spawn(t.rtr, [...CONNTRAIL, 'events', '--format', 'vyos'], { env });
    const stamped = t.spawn(t.rtr, [...CONNTRAIL, 'events', '-o', 'timestamp'], { env });
    const [r, c, j, v, s] = [ref, ours, json, vyos, stamped].map(collect);
    for (const p of [ref, ours, json, vyos, stamped]) assert.ok(await waitSubscribed(p.pid!), 'listener subscribed');

    await mixedTraffic(t);
    await reapExpired(t);
    const want = () => lines(r.out()).length;
    // every flow has ended (reapExpired), so conntrack has printed a DESTROY
    // for each NEW; then every listener has as many lines as conntrack
    const ended = () => {
      const l = lines(r.out());
      return l.filter((x) => x.startsWith('[DESTROY]')).length === l.filter((x) => x.trimStart().startsWith('[NEW]')).length;
    };
    await waitFor(() => want() >= 30 && ended() && [c, j, v, s].every((x) => lines(x.out()).length === want()));
    for (const p of [ref, ours, json, vyos, stamped]) await t.stop(p);
    await Promise.all([r.done, c.done, j.done, v.done, s.done]);

    const expected = lines(r.out());
    assert.ok(expected.length >= 30, `conntrack saw ${expected.length} events`);
    for (const proto of ['tcp', 'udp', 'icmp ', 'icmpv6', 'gre', 'sctp', 'dccp', 'unknown  253']) {
      assert.ok(expected.some((l) => l.includes(` ${proto}`)), `traffic covered ${proto}`);
    }
    assert.ok(expected.some((l) => l.includes('zone=5') && l.includes('mark=16')));
    assert.ok(expected.some((l) => l.startsWith('[DESTROY]') && l.includes('[start=')));
    assert.deepEqual(lines(c.out()), expected);
    assert.match(c.err(), /stats shown=\d+ .*overflows=0 kernel_drops=0/);

    const js = lines(j.out()).map((l) => JSON.parse(l));
    assert.equal(js.length, expected.length);
    assert.deepEqual(js.map((x) => x.event.toUpperCase()), expected.map((l) => /\[(\w+)\]/.exec(l)![1]));
    assert.deepEqual(js.map((x) => x.id), expected.map((l) => Number([...l.matchAll(/ id=(\d+)/g)].pop()![1])));

    const vy = lines(v.out());
    assert.equal(vy.length, expected.length);
    vy.forEach((l, i) => {
      assert.equal(l.slice(0, 10).trim(), /\[(\w+)\]/.exec(expected[i])![0]);
      assert.ok(l.endsWith(' '), 'VyOS lines end with a space');
    });

    const st = lines(s.out());
    assert.equal(st.length, expected.length);
    const withoutOpts = expected.map((l) => l.replace(/^(\s*\[\w+\]) ipv[46]\s+\d+ /, '$1 ')
      .replace(/ \[start=[^\]]+\]| \[stop=[^\]]+\]| id=\d+$/g, ''));
    st.forEach((l, i) => {
      const m = /^\[(\d{10})\.(\d{6})\]\t(.*)$/.exec(l);
      assert.ok(m, l);
      assert.equal(m[3], withoutOpts[i]);
    });
  });

  it('userspace-originated events carry [USERSPACE] portid= like conntrack', async () => {
    const ref = t.spawn(t.rtr, ['conntrack', '-E', '-e', 'DESTROY'], { env });
    const ours = t.spawn(t.rtr, [...CONNTRAIL, 'events', '-e', 'DESTROY'], { env });
    const [r, c] = [ref, ours].map(collect);
    for (const p of [ref, ours]) assert.ok(await waitSubscribed(p.pid!));
    await udp(t, 9999, false, false);
    t.exec(t.rtr, ['conntrack', '-D', '-p', 'udp', '--dport', '9999']);
    await waitFor(() => lines(r.out()).length >= 1 && lines(c.out()).length >= 1);
    await t.stop(ref);
    await t.stop(ours);
    await Promise.all([r.done, c.done]);
    // the progname is looked up when printing; the deleting process may be gone by then
    const strip = (s: string) => lines(s).map((l) => l.replace(/ progname=\S+$/, ''));
    assert.deepEqual(strip(c.out()), strip(r.out()));
    assert.match(c.out(), /\[USERSPACE\] portid=\d+/);
  });

  it('dump prints what conntrack -L prints', async () => {
    t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_timestamp': '0', 'net.netfilter.nf_conntrack_udp_timeout': '60', 'net.netfilter.nf_conntrack_icmp_timeout': '60', 'net.netfilter.nf_conntrack_icmpv6_timeout': '60', 'net.netfilter.nf_conntrack_tcp_timeout_time_wait': '60', 'net.netfilter.nf_conntrack_gre_timeout': '60', 'net.netfilter.nf_conntrack_sctp_timeout_closed': '60',
      // DCCP (no tracker of its own in this kernel) and protocol 253: the generic timeout
      'net.netfilter.nf_conntrack_generic_timeout': '60' });
    await mixedTraffic(t);
    // Timeouts count down per entry, each on its own sub-second phase: the
    // two reads can differ by one tick. Compare with the timeout masked, and
    // the timeouts entry by entry within one tick.
    const ours = lines(t.exec(t.rtr, [...CONNTRAIL, 'dump', '-o', 'extended,id']));
    const ref = lines(t.exec(t.rtr, ['conntrack', '-L', '-o', 'extended,id']));
    assert.ok(ref.length >= 8, `table has ${ref.length} entries`);
    const timeoutRe = /^(ipv[46]\s+\d+ \S+\s+\d+ )(\d+) /;
    const mask = (l: string) => l.replace(timeoutRe, '$1T ');
    assert.deepEqual(ours.map(mask).sort(), ref.map(mask).sort());
    const byId = (ls: string[]) => new Map(ls.map((l) => [[...l.matchAll(/ id=(\d+)/g)].pop()![1], Number(timeoutRe.exec(l)![2])]));
    const a = byId(ours);
    for (const [id, tv] of byId(ref)) assert.ok(Math.abs(a.get(id)! - tv) <= 1, `timeout of ${id}`);
    const v6 = lines(t.exec(t.rtr, [...CONNTRAIL, 'dump', '-f', 'ipv6']));
    assert.ok(v6.length >= 2 && v6.every((l) => l.includes('src=fd99')));
    const json = lines(t.exec(t.rtr, [...CONNTRAIL, 'dump', '--format', 'json', '-p', 'tcp'])).map((l) => JSON.parse(l));
    assert.ok(json.length >= 2 && json.every((x) => x.event === 'dump' && x.proto === 'tcp'));
  });
});
