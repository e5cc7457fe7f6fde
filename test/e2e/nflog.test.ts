// `conntrail packets` side by side with the real ulogd2 2.0.8 on the same
// packets: a router whose forward chain logs every ACCEPT and DROP of a
// "security group" with prefixes (TCP accepted and dropped, UDP, ICMP,
// ICMPv6 and TCP over IPv6), behind masquerade. Each packet is logged to
// four NFLOG groups by four rules (one socket per group and namespace):
// conntrail's logemu and ulogd-json, ulogd's NFLOG,BASE,IFINDEX,IP2STR,
// PRINTPKT,LOGEMU and NFLOG,BASE,IFINDEX,IP2STR,JSON. The lines must be the
// same, line for line, receipt times aside (a prefix in UTF-8, ping6-ü, included).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, Topology, waitFor } from '../helpers/netns.js';
import { gre, ping, rawProto, sctp, tcp, udp } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';
import { boundGroups, ulogdPluginDir } from '../helpers/ulogd.js';


const G = { ctEmu: 40, ctJson: 41, ulEmu: 42, ulJson: 43 };
const lines = (s: string) => s.split('\n').filter(Boolean);

function rules(t: Topology): string {
  const out = `${t.prefix}r1`;
  // one rule per group (a rule may carry several log statements, but one
  // per rule keeps it plain); the verdict after them
  const each = (match: string, prefix: string, verdict = '') =>
    Object.values(G).map((g) => `    ${match} log prefix "${prefix}" group ${g}`).join('\n') + (verdict ? `\n    ${match} ${verdict}` : '');
  return `table inet ctt {
  chain forward {
    type filter hook forward priority 0; policy accept;
${each('tcp dport 8081', 'sg-drop: ', 'drop')}
${each('tcp dport 8080 ct state new', 'sg-accept: ')}
${each('udp dport 5353', 'udp: ')}
${each('icmp type echo-request', '')}
${each('icmpv6 type echo-request', 'ping6-ü ')}
${each('ip6 nexthdr tcp tcp dport 8080', 'v6: ')}
${each('ip protocol gre', 'gre: ')}
${each('ip protocol sctp', 'sctp: ')}
${each('ip protocol udplite', 'udplite: ')}
${each('ip protocol dccp', 'dccp: ')}
${each('ip protocol 253', 'p253: ')}
  }
  chain postrouting { type nat hook postrouting priority 100; oifname "${out}" masquerade; }
}`;
}

function ulogdConfig(dir: string): string {
  const pd = ulogdPluginDir();
  const path = join(dir, 'ulogd.conf');
  const plugins = ['inppkt_NFLOG', 'raw2packet_BASE', 'filter_IFINDEX', 'filter_IP2STR', 'filter_PRINTPKT', 'output_LOGEMU', 'output_JSON'];
  writeFileSync(path, `[global]
logfile="${join(dir, 'ulogd.log')}"
loglevel=3
${plugins.map((p) => `plugin="${pd}/ulogd_${p}.so"`).join('\n')}
stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU
stack=log2:NFLOG,base2:BASE,ifi2:IFINDEX,ip2str2:IP2STR,json1:JSON

[log1]
group=${G.ulEmu}
[log2]
group=${G.ulJson}
[emu1]
file="${join(dir, 'emu.out')}"
sync=1
[json1]
file="${join(dir, 'json.out')}"
sync=1
`);
  writeFileSync(join(dir, 'emu.out'), '');
  writeFileSync(join(dir, 'json.out'), '');
  return path;
}

const bound = boundGroups;

describe('packets (NFLOG) vs ulogd2', { timeout: 120_000 }, () => {
  const t = new Topology('nf');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-nflog-'));
  before(() => { t.up({ nft: rules(t) }); });
  after(() => { t.down(); rmSync(dir, { recursive: true, force: true }); });

  it('logemu and ulogd-json lines are ulogd\'s, line for line: accepted and dropped TCP, UDP, ICMP, ICMPv6, TCP over IPv6, through masquerade', async () => {
    const ref = t.spawn(t.rtr, ['ulogd', '-c', ulogdConfig(dir)]);
    const emu = t.spawn(t.rtr, [...CONNTRAIL, 'packets', '--group', String(G.ctEmu), '--format', 'logemu', '--stats']);
    // two groups in one process (39 logs nothing): both bound, each group's configuration acknowledged
    const json = t.spawn(t.rtr, [...CONNTRAIL, 'packets', '--group', String(G.ctJson), '--group', '39', '--format', 'ulogd-json', '--stats']);
    const [oe, oj] = [emu, json].map(collect);
    try {
      assert.ok(await waitFor(() => [...Object.values(G), 39].every((g) => bound(t).includes(g)), 10000), `bound: ${bound(t)}\n${oe.err()}${oj.err()}`);
      await tcp(t, 8080);
      await udp(t, 5353, false, false);
      ping(t);
      ping(t, true);
      await tcp(t, 8080, true);
      // dropped: the SYN is logged (and retried) and never answered
      t.exec(t.cli, ['python3', '-c', `import socket\ns=socket.socket()\ns.settimeout(1.2)\ntry: s.connect(("${ADDR.srv}", 8081))\nexcept Exception: pass`], { allowFail: true });
      // the traffic is over, so every packet is logged and on its way: wait
      // until both have written the same number of lines
      await sameLines(dir, oe, oj, 8);
    } finally {
      for (const p of [ref, emu, json]) await t.stop(p);
    }
    await Promise.all([oe.done, oj.done]);

    const stamp = /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ /;
    const ulEmu = theirs2(dir, 'emu.out');
    const ctEmu = lines(oe.out());
    for (const l of ctEmu) assert.match(l, stamp);
    assert.deepEqual(ctEmu.map((l) => l.replace(stamp, '')), ulEmu.map((l) => l.replace(stamp, '')));
    for (const want of ['sg-drop:  IN=', 'sg-accept:  IN=', 'PROTO=TCP', 'PROTO=UDP', 'PROTO=ICMP TYPE=8', 'PROTO=ICMPv6 TYPE=128', 'SRC=fd99:1::2']) {
      assert.ok(ctEmu.some((l) => l.includes(want)), `a line with ${want}`);
    }
    assert.ok(ctEmu.filter((l) => l.includes('sg-drop: ')).length >= 2, 'the dropped SYN and its retry');

    // JSON: the same keys in the same order with the same values; the time
    // of a packet the kernel sent without a timestamp is when each read it
    const norm = (l: string) => {
      const o = JSON.parse(l);
      assert.match(o.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
      for (const k of ['timestamp', 'oob.time.sec', 'oob.time.usec']) o[k] = 'time';
      return JSON.stringify(o);
    };
    const ulJson = theirs2(dir, 'json.out');
    const ctJson = lines(oj.out());
    assert.deepEqual(ctJson.map(norm), ulJson.map(norm));
    assert.ok(ctJson.every((l) => l.startsWith('{"timestamp": "') && l.includes('", "dvc": "Netfilter", ')), 'jansson\'s spacing');
    assert.match(oe.err(), /stats shown=\d+ packets=\d+ seq_gaps=0 .*overflows=0/);
  });

  it('other protocols (GRE, SCTP, UDP-Lite, a cut DCCP header, protocol 253): the same lines as ulogd\'s, logemu and ulogd-json', async () => {
    for (const f of ['emu.out', 'json.out']) writeFileSync(join(dir, f), '');
    const ref = t.spawn(t.rtr, ['ulogd', '-c', ulogdConfig(dir)]);
    const emu = t.spawn(t.rtr, [...CONNTRAIL, 'packets', '--group', String(G.ctEmu), '--format', 'logemu']);
    const json = t.spawn(t.rtr, [...CONNTRAIL, 'packets', '--group', String(G.ctJson), '--format', 'ulogd-json']);
    const [oe, oj] = [emu, json].map(collect);
    const theirs = (f: string) => theirs2(dir, f);
    try {
      assert.ok(await waitFor(() => Object.values(G).every((g) => bound(t).includes(g)), 10000), `bound: ${bound(t)}\n${oe.err()}${oj.err()}`);
      gre(t);
      sctp(t, 4000, 9);
      rawProto(t, 136);
      rawProto(t, 33);
      rawProto(t, 253);
      await sameLines(dir, oe, oj, 5);
    } finally {
      for (const p of [ref, emu, json]) await t.stop(p);
    }
    await Promise.all([oe.done, oj.done]);
    const stamp = /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ /;
    const ctEmu = lines(oe.out());
    assert.deepEqual(ctEmu.map((l) => l.replace(stamp, '')), theirs('emu.out').map((l) => l.replace(stamp, '')));
    for (const want of ['gre: ', 'sctp: ', 'udplite: ', 'dccp: ', 'p253: ']) assert.ok(ctEmu.some((l) => l.startsWith(want, l.search(/[a-z0-9]+: /))), `a line with ${want}`);
    const norm = (l: string) => {
      const o = JSON.parse(l);
      for (const k of ['timestamp', 'oob.time.sec', 'oob.time.usec']) o[k] = 'time';
      return JSON.stringify(o);
    };
    assert.deepEqual(lines(oj.out()).map(norm), theirs('json.out').map(norm));
  });

  it('the daemon: an nflog source beside a conntrack source, its packets in ulogd\'s LOGEMU lines in one sink, both kinds in another in their own JSON', async () => {
    for (const f of ['emu.out', 'json.out']) writeFileSync(join(dir, f), '');
    const conf = join(dir, 'daemon.toml');
    const pk = join(dir, 'packets.log');
    const all = join(dir, 'all.json');
    writeFileSync(conf, `[[source]]
name = "ct"
flows = false
events = ["new", "destroy"]

[[source]]
name = "sg"
type = "nflog"
groups = [${G.ctEmu}]

[[sink]]
type = "file"
path = "${pk}"
sources = ["sg"]
format = "logemu"

[[sink]]
type = "file"
path = "${all}"
format = "json"

[store]
type = "none"
`);
    const ref = t.spawn(t.rtr, ['ulogd', '-c', ulogdConfig(dir)]);
    const d = t.spawn(t.rtr, [...CONNTRAIL, 'run', '-c', conf]);
    const od = collect(d);
    const theirs = () => theirs2(dir, 'emu.out');
    const ours = () => { try { return lines(readFileSync(pk, 'utf8')); } catch { return []; } };
    try {
      assert.ok(await waitFor(() => bound(t).includes(G.ctEmu) && bound(t).includes(G.ulEmu) && /listening to NFLOG group/.test(od.err()), 10000), `bound: ${bound(t)}\n${od.err()}`);
      await tcp(t, 8080);
      await udp(t, 5353, false, false);
      ping(t);
      ping(t, true);
      assert.ok(await waitFor(() => theirs().length >= 4 && ours().length === theirs().length, 15000),
        `ulogd ${theirs().length}, conntrail ${ours().length}\n${od.err()}`);
    } finally {
      for (const p of [ref, d]) await t.stop(p);
    }
    await od.done;
    const stamp = /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ /;
    assert.deepEqual(ours().map((l) => l.replace(stamp, '')), theirs().map((l) => l.replace(stamp, '')));
    // the json sink has both kinds, each in its own schema: the packets as many as ulogd logged
    const js = lines(readFileSync(all, 'utf8')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const packets = js.filter((o) => o.event === undefined);
    const events = js.filter((o) => o.event !== undefined);
    assert.equal(packets.length, theirs().length);
    assert.ok(packets.every((o) => typeof o.time_us === 'number' && o.group === G.ctEmu), JSON.stringify(packets[0]));
    // (one NEW for each connection: the TCP, UDP and both pings; their ends come after the test)
    assert.ok(events.filter((o) => o.event === 'new').length >= 4 && events.every((o) => o.event === 'new' || o.event === 'destroy'), JSON.stringify(events));
    // the counters at exit name the packets and no loss
    assert.match(od.err(), new RegExp(`source sg: packets=${theirs().length} seq_gaps=0 `));
  });

  it('SIGHUP: an unchanged nflog source keeps its socket; a changed one gives its group up and binds it again, and logs on', async () => {
    const conf = join(dir, 'reload.toml');
    const pk = join(dir, 'reload.log');
    const write = (qthreshold: number) => writeFileSync(conf, `[[source]]\nname = "a"\ntype = "nflog"\ngroups = [${G.ctEmu}]\nqthreshold = ${qthreshold}\ntimeout_ms = 10\n` +
      `[[source]]\nname = "b"\ntype = "nflog"\ngroups = [${G.ctJson}]\n` +
      `[[sink]]\ntype = "file"\npath = "${pk}"\nsources = ["a"]\n[store]\ntype = "none"\n`);
    write(1);
    writeFileSync(pk, '');
    const d = t.spawn(t.rtr, [...CONNTRAIL, 'run', '-c', conf]);
    const od = collect(d);
    const ours = () => lines(readFileSync(pk, 'utf8'));
    try {
      assert.ok(await waitFor(() => bound(t).includes(G.ctEmu) && bound(t).includes(G.ctJson) && /started with/.test(od.err()), 10000), od.err());
      ping(t);
      assert.ok(await waitFor(() => ours().length === 1, 10000), `lines: ${ours().length}\n${od.err()}`);
      write(4);
      process.kill(d.pid!, 'SIGHUP');
      assert.ok(await waitFor(() => /SIGHUP: source a: NFLOG group 40 given up/.test(od.err()) && (od.err().match(/source a: listening to NFLOG group 40/g) ?? []).length === 2, 10000), od.err());
      ping(t);
      // qthreshold 4, timeout 10 ms: the kernel sends the one packet when its timer runs out
      assert.ok(await waitFor(() => ours().length === 2, 10000), `lines: ${ours().length}\n${od.err()}`);
    } finally {
      await t.stop(d);
    }
    await od.done;
    // b was unchanged: bound once, never given up
    assert.equal((od.err().match(/source b: listening to NFLOG group 41/g) ?? []).length, 1, od.err());
    assert.doesNotMatch(od.err(), /source b: NFLOG group/);
    assert.ok(ours().every((l) => l.includes('PROTO=ICMP TYPE=8')), ours().join('\n'));
  });

  it('packets in the store: `packets --db` finds what ulogd logged, by prefix and protocol; `flows --packets` joins each flow to its packets through the masquerade', async () => {
    writeFileSync(join(dir, 'emu.out'), '');
    // the earlier tests' connections (TIME_WAIT) would be stored by the start-up sync: an empty table
    t.exec(t.rtr, ['conntrack', '-F'], { allowFail: true });
    const conf = join(dir, 'store.toml');
    const db = join(dir, 'store.db');
    writeFileSync(conf, `[[source]]
name = "ct"
enable_timestamps = true

[[source]]
name = "sg"
type = "nflog"
groups = [${G.ctEmu}]

[store]
path = "${db}"
spool_dir = "${join(dir, 'spool')}"
flush_interval_ms = 100
`);
    const ref = t.spawn(t.rtr, ['ulogd', '-c', ulogdConfig(dir)]);
    const d = t.spawn(t.rtr, [...CONNTRAIL, 'run', '-c', conf]);
    const od = collect(d);
    const theirs = () => theirs2(dir, 'emu.out');
    try {
      assert.ok(await waitFor(() => bound(t).includes(G.ctEmu) && bound(t).includes(G.ulEmu) && /started with/.test(od.err()), 10000), `bound: ${bound(t)}\n${od.err()}`);
      await tcp(t, 8080);
      await udp(t, 5353, false, false);
      ping(t);
      // the traffic is over; ulogd has written its lines when it has as many as the packets logged
      assert.ok(await waitFor(() => theirs().length >= 3 && theirs().some((l) => l.includes('PROTO=ICMP')), 15000), `ulogd: ${theirs().length}\n${od.err()}`);
    } finally {
      for (const p of [ref, d]) await t.stop(p);
    }
    await od.done;
    const n = theirs().length;
    assert.match(od.err(), new RegExp(`packets_written=${n} `), od.err());
    const run = (args: string[]) => t.exec(t.rtr, [...CONNTRAIL, ...args, '--db', db]);
    const all = JSON.parse(run(['packets', '--json', '--limit', '0'])) as Array<Record<string, unknown>>;
    assert.equal(all.length, n);
    // each of ulogd's lines has a stored packet with the same prefix, protocol, addresses and ports
    const key = (prefix: string, proto: string, src: string, dst: string) => `${prefix}|${proto}|${src}|${dst}`;
    const ours = all.map((p) => key(String(p.prefix), String(p.proto).toUpperCase(), String(p.src), String(p.dst))).sort();
    const ref2 = theirs().map((l) => {
      const rest = l.replace(/^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ /, '');
      const prefix = rest.slice(0, rest.indexOf('IN=')).replace(/ $/, '');
      const f = (k: string) => (new RegExp(` ${k}=(\\S+)`).exec(l) ?? [])[1] ?? '';
      return key(prefix, f('PROTO'), f('SRC'), f('DST'));
    }).sort();
    assert.deepEqual(ours, ref2);
    const accepted = JSON.parse(run(['packets', '--json', '--prefix', 'sg-acc'])) as Array<Record<string, unknown>>;
    assert.equal(accepted.length, theirs().filter((l) => l.includes('sg-accept: ')).length);
    assert.ok(accepted.every((p) => p.proto === 'tcp' && p.dport === 8080 && p.hook === 'FORWARD'));
    assert.match(run(['packets', '--top', 'prefixes']), /"sg-accept: "\s+1\s/);
    // flows --packets: the TCP, UDP and ICMP flows each with the packet the rules logged for it
    const flows = JSON.parse(run(['flows', '--json', '--packets', '--src', ADDR.cli])) as Array<{ proto: string; orig: { dport: number | null }; nat: string; logged_packets: Array<Record<string, unknown>> }>;
    const of = (proto: string, dport?: number) => flows.filter((f) => f.proto === proto && (dport === undefined || f.orig.dport === dport));
    for (const [proto, dport, prefix] of [['tcp', 8080, 'sg-accept: '], ['udp', 5353, 'udp: '], ['icmp', undefined, '']] as const) {
      const fl = of(proto, dport);
      assert.equal(fl.length, 1, `${proto} flows: ${JSON.stringify(flows)}`);
      assert.equal(fl[0].nat, 'snat');
      assert.deepEqual(fl[0].logged_packets.map((p) => p.prefix), [prefix], `${proto}: ${JSON.stringify(fl[0])} all: ${JSON.stringify(all)}`);
    }
    // and the table output lists them under the flows
    assert.match(run(['flows', '--packets', '--src', ADDR.cli, '--proto', 'tcp']), /packets logged for flow 1 .*: 1\n {2}TIME/);
    // who, from the public side of the translation, shows the same packet with the inside host
    const tcpFlow = of('tcp', 8080)[0] as unknown as { start: string; snat: { public: { addr: string; port: number } } };
    const who = JSON.parse(run(['who', `${tcpFlow.snat.public.addr}:${tcpFlow.snat.public.port}`, '--at', tcpFlow.start, '--packets', '--json'])) as
      { verdict: string; flows: Array<{ inside: string; logged_packets: Array<{ prefix: string; src: string }> }> };
    assert.equal(who.verdict, 'exact');
    assert.deepEqual(who.flows[0].logged_packets.map((p) => [p.prefix, p.src]), [['sg-accept: ', ADDR.cli]]);
  });
});

/** Waits until ulogd has written at least `min` lines of each stack and each of ours (logemu, ulogd-json) as many. */
async function sameLines(dir: string, oe: ReturnType<typeof collect>, oj: ReturnType<typeof collect>, min: number): Promise<void> {
  const theirs = (f: string) => theirs2(dir, f);
  assert.ok(await waitFor(() => theirs('emu.out').length >= min && lines(oe.out()).length === theirs('emu.out').length &&
    lines(oj.out()).length === theirs('json.out').length && theirs('json.out').length === theirs('emu.out').length, 15000),
  `ulogd ${theirs('emu.out').length}/${theirs('json.out').length}, conntrail ${lines(oe.out()).length}/${lines(oj.out()).length}\n${oe.err()}`);
}

function theirs2(dir: string, f: string): string[] {
  return lines(readFileSync(join(dir, f), 'utf8'));
}
