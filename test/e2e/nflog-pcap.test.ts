// pcap output of `conntrail packets -w`, against the real peers on the same
// packets (each rule logs to four groups): link type RAW against ulogd2's
// PCAP output (NFLOG,BASE,PCAP), byte for byte apart from the times of
// packets the kernel sent without a timestamp; link type NFLOG against
// `tcpdump -i nflog:N -w`, record for record as tshark decodes them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect, Topology, waitFor } from '../helpers/netns.js';
import { ping, tcp, udp } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';
import { boundGroups, ulogdPluginDir } from '../helpers/ulogd.js';

const G = { ctRaw: 44, ctNflog: 45, ulPcap: 46, tcpdump: 47 };

function rules(t: Topology): string {
  const each = (match: string, prefix: string) => Object.values(G).map((g) => `    ${match} log prefix "${prefix}" group ${g}`).join('\n');
  return `table inet ctt {
  chain forward {
    type filter hook forward priority 0; policy accept;
${each('tcp dport 8080', 'tcp: ')}
${each('udp dport 5353', 'udp: ')}
${each('meta l4proto { icmp, ipv6-icmp }', 'icmp: ')}
  }
  chain postrouting { type nat hook postrouting priority 100; oifname "${t.prefix}r1" masquerade; }
}`;
}

/** the records of a pcap file: [ts_sec, ts_usec, caplen, len, data] */
function records(file: string): { header: Buffer; recs: Array<{ ts: Buffer; rest: Buffer }> } {
  const b = readFileSync(file);
  const recs: Array<{ ts: Buffer; rest: Buffer }> = [];
  let o = 24;
  while (o + 16 <= b.length) {
    const cap = b.readUInt32LE(o + 8);
    recs.push({ ts: b.subarray(o, o + 8), rest: b.subarray(o + 8, o + 16 + cap) });
    o += 16 + cap;
  }
  assert.equal(o, b.length, `${file}: whole records`);
  return { header: b.subarray(0, 24), recs };
}

const FIELDS = ['nflog.family', 'nflog.protocol', 'nflog.hook', 'nflog.ifindex_indev', 'nflog.ifindex_outdev', 'nflog.prefix',
  'frame.protocols', 'ip.src', 'ip.dst', 'ip.len', 'ip.id', 'ipv6.src', 'ipv6.dst', 'ipv6.plen', 'tcp.srcport', 'tcp.dstport', 'tcp.flags', 'tcp.seq_raw',
  'udp.srcport', 'udp.dstport', 'icmp.type', 'icmpv6.type', 'data.len'];

function tsharkFields(file: string): string[] {
  const r = spawnSync('tshark', ['-r', file, '-T', 'fields', ...FIELDS.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

/** ulogd's NFLOG,BASE,PCAP stack on group G.ulPcap into `file`; returns the configuration's path */
function ulogdPcapConf(dir: string, file: string): string {
  const pd = ulogdPluginDir();
  const conf = join(dir, 'ulogd.conf');
  writeFileSync(conf, `[global]
logfile="${join(dir, 'ulogd.log')}"
loglevel=3
plugin="${pd}/ulogd_inppkt_NFLOG.so"
plugin="${pd}/ulogd_raw2packet_BASE.so"
plugin="${pd}/ulogd_output_PCAP.so"
stack=log1:NFLOG,base1:BASE,pcap1:PCAP
[log1]
group=${G.ulPcap}
[pcap1]
file="${file}"
sync=1
`);
  return conf;
}

/** records in a pcap file so far (-1 while it cannot be read whole) */
const count = (f: string) => { try { return records(f).recs.length; } catch { return -1; } };

describe('packets -w (pcap) vs ulogd2 PCAP and tcpdump', { timeout: 120_000 }, () => {
  const t = new Topology('np');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-pcap-'));
  before(() => { t.up({ nft: rules(t) }); });
  after(() => { t.down(); rmSync(dir, { recursive: true, force: true }); });

  it('link type RAW is ulogd\'s PCAP file, link type NFLOG decodes as tcpdump\'s does, record for record', async () => {
    const conf = ulogdPcapConf(dir, join(dir, 'ulogd.pcap'));
    const files = { raw: join(dir, 'ct-raw.pcap'), nflog: join(dir, 'ct-nflog.pcap'), tcpdump: join(dir, 'tcpdump.pcap') };
    const ref = t.spawn(t.rtr, ['ulogd', '-c', conf]);
    const dump = t.spawn(t.rtr, ['tcpdump', '-i', `nflog:${G.tcpdump}`, '-U', '-w', files.tcpdump]);
    const raw = t.spawn(t.rtr, [...CONNTRAIL, 'packets', '--group', String(G.ctRaw), '-w', files.raw, '--stats']);
    const nfl = t.spawn(t.rtr, [...CONNTRAIL, 'packets', '--group', String(G.ctNflog), '-w', files.nflog, '--linktype', 'nflog', '--stats']);
    const outs = [raw, nfl, dump].map(collect);
    const bound = () => boundGroups(t);
    try {
      assert.ok(await waitFor(() => Object.values(G).every((g) => bound().includes(g)), 10000), `bound: ${bound()}\n${outs.map((o) => o.err()).join('')}`);
      await tcp(t, 8080);
      await udp(t, 5353);
      ping(t);
      ping(t, true);
      await tcp(t, 8080, true);
      // the traffic is over: wait until each has written as many records as ulogd
      assert.ok(await waitFor(() => count(join(dir, 'ulogd.pcap')) >= 10 &&
        [files.raw, files.nflog, files.tcpdump].every((f) => count(f) === count(join(dir, 'ulogd.pcap'))), 15000),
      `records: ulogd ${count(join(dir, 'ulogd.pcap'))}, ours ${count(files.raw)}/${count(files.nflog)}, tcpdump ${count(files.tcpdump)}`);
    } finally {
      for (const p of [raw, nfl, dump, ref]) await t.stop(p);
    }

    // RAW: the same file header; each record the same lengths and bytes
    const a = records(files.raw);
    const b = records(join(dir, 'ulogd.pcap'));
    assert.deepEqual(a.header, b.header);
    assert.equal(a.recs.length, b.recs.length);
    a.recs.forEach((r, i) => assert.deepEqual(r.rest, b.recs[i].rest, `record ${i}`));

    // NFLOG: tshark reads the same fields from ours and from tcpdump's
    const ours = tsharkFields(files.nflog);
    const theirs = tsharkFields(files.tcpdump);
    assert.ok(ours.length >= 10);
    assert.deepEqual(ours, theirs);
    assert.ok(ours.some((l) => l.includes('tcp: ')) && ours.some((l) => l.includes('icmp: ')) && ours.some((l) => l.includes('udp: ')));
  });

  it('the daemon: pcap sinks of both link types, the RAW one rotated by size; the files together are ulogd\'s records, each file with its header', async () => {
    const d2 = mkdtempSync(join(dir, 'daemon-'));
    const ulog = join(d2, 'ulogd.pcap');
    const conf = ulogdPcapConf(d2, ulog);
    const files = { raw: join(d2, 'ct-raw.pcap'), nflog: join(d2, 'ct-nflog.pcap'), tcpdump: join(d2, 'tcpdump.pcap') };
    const toml = join(d2, 'conntrail.toml');
    writeFileSync(toml, `[[source]]
name = "raw"
type = "nflog"
groups = [${G.ctRaw}]
[[source]]
name = "nfl"
type = "nflog"
groups = [${G.ctNflog}]
[[sink]]
type = "pcap"
sources = ["raw"]
path = "${files.raw}"
rotate_size = 400
rotate_keep = 50
[[sink]]
type = "pcap"
sources = ["nfl"]
path = "${files.nflog}"
linktype = "nflog"
[store]
type = "none"
`);
    const ref = t.spawn(t.rtr, ['ulogd', '-c', conf]);
    const dump = t.spawn(t.rtr, ['tcpdump', '-i', `nflog:${G.tcpdump}`, '-U', '-w', files.tcpdump]);
    const daemon = t.spawn(t.rtr, [...CONNTRAIL, 'run', '-c', toml]);
    const outs = [daemon, dump].map(collect);
    const bound = () => boundGroups(t);
    // the RAW sink's files, oldest first: PATH.N .. PATH.1, PATH
    const rotated = () => {
      const n = readdirSync(d2).filter((f) => /^ct-raw\.pcap\.\d+$/.test(f)).map((f) => Number(f.split('.').pop())).sort((x, y) => y - x);
      return [...n.map((i) => `${files.raw}.${i}`), files.raw];
    };
    const rawCount = () => rotated().reduce((a, f) => a + Math.max(0, count(f)), 0);
    try {
      assert.ok(await waitFor(() => Object.values(G).every((g) => bound().includes(g)), 10000), `bound: ${bound()}\n${outs.map((o) => o.err()).join('')}`);
      await tcp(t, 8080);
      await udp(t, 5353);
      ping(t);
      ping(t, true);
      await tcp(t, 8080, true);
      assert.ok(await waitFor(() => count(ulog) >= 10 && rawCount() === count(ulog) &&
        [files.nflog, files.tcpdump].every((f) => count(f) === count(ulog)), 15000),
      `records: ulogd ${count(ulog)}, ours ${rawCount()}/${count(files.nflog)}, tcpdump ${count(files.tcpdump)}\n${outs[0].err()}`);
    } finally {
      for (const p of [daemon, dump, ref]) await t.stop(p);
    }
    const b = records(ulog);
    const parts = rotated().map(records);
    assert.ok(parts.length >= 2, `rotated at 400 bytes: ${parts.length} files`);
    for (const part of parts) assert.deepEqual(part.header, b.header);
    const all = parts.flatMap((x) => x.recs);
    assert.equal(all.length, b.recs.length);
    all.forEach((r, i) => assert.deepEqual(r.rest, b.recs[i].rest, `record ${i}`));
    assert.deepEqual(tsharkFields(files.nflog), tsharkFields(files.tcpdump));
    assert.match(outs[0].err(), /source raw: packets=\d+ seq_gaps=0 /);
  });
});
