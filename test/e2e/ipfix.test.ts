// The IPFIX sink against real collectors: nfdump's nfcapd (read back with
// nfdump -o json), pmacct's nfacctd (its print plugin's JSON) and tshark
// (which decodes what those two drop: IPv6 after NAT). Traffic through a
// router namespace that masquerades (SNAT), forwards a port (DNAT and SNAT)
// and masquerades IPv6; the servers say which public address and port each
// connection came from. Every field a collector shows equals the daemon's
// own record of the flow in its store (conntrail flows --json).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, sh, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { CONNTRAIL } from '../helpers/cli.js';

interface Flow {
  start_us: number; end_us: number; open: boolean; proto: string;
  orig: { src: string; sport: number; dst: string; dport: number };
  snat: { public: { addr: string; port: number } } | null;
  dnat: { inside: { addr: string; port: number } } | null;
  packets: { orig: number; reply: number }; bytes: { orig: number; reply: number };
}
type Nf = Record<string, string | number | undefined>;

const PROTO: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, ipv6_icmp: 58 };
/** nfdump's time: local time (UTC here) to the millisecond, no zone */
const nfTime = (ms: number) => new Date(ms).toISOString().replace('Z', '');

describe('the IPFIX sink, read by nfcapd/nfdump, nfacctd and tshark', { timeout: 300_000 }, () => {
  const t = new Topology('ix');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-ipfix-'));
  before(() => {
    t.up({
      nft: `table inet ctt {
  chain prerouting { type nat hook prerouting priority -100; iifname "${t.prefix}r0" tcp dport 8081 dnat ip to ${ADDR.srv}:8080; }
  chain postrouting { type nat hook postrouting priority 100; oifname "${t.prefix}r1" masquerade; }
}`,
    });
    // flows end soon after their last packet
    t.sysctl(t.rtr, {
      'net.netfilter.nf_conntrack_udp_timeout': '1', 'net.netfilter.nf_conntrack_icmp_timeout': '1', 'net.netfilter.nf_conntrack_icmpv6_timeout': '1',
      'net.netfilter.nf_conntrack_tcp_timeout_time_wait': '1', 'net.netfilter.nf_conntrack_tcp_timeout_close': '1',
    });
  });
  after(() => {
    t.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('SNAT, DNAT and both, IPv4 and IPv6, TCP, UDP and ICMP: each flow once, as the store has it, with its NAT session events', async () => {
    const cap = join(dir, 'nfcapd');
    mkdirSync(cap);
    const pm = join(dir, 'pmacct.json');
    const pcap = join(dir, 'export.pcap');
    const db = join(dir, 'flows.db');
    writeFileSync(join(dir, 'nfacctd.conf'), [
      'daemonize: false', 'nfacctd_ip: 127.0.0.1', 'nfacctd_port: 39702', `logfile: ${join(dir, 'nfacctd.log')}`,
      'nfacctd_disable_checks: false', 'plugins: print[j]',
      'aggregate[j]: src_host, dst_host, src_port, dst_port, proto, timestamp_start, timestamp_end, post_nat_src_host, post_nat_dst_host, post_nat_src_port, post_nat_dst_port',
      'print_output[j]: json', `print_output_file[j]: ${pm}`, 'print_output_file_append[j]: true', 'print_refresh_time[j]: 1', 'timestamps_utc: true', 'timestamps_since_epoch: true', '',
    ].join('\n'));
    // the collectors, and a capture of the export, beside the daemon in the server's namespace (on its loopback)
    const nfcapd = t.spawn(t.srv, ['nfcapd', '-w', cap, '-p', '39701', '-b', '127.0.0.1', '-t', '60']);
    const nc = collect(nfcapd);
    const nfacctd = t.spawn(t.srv, ['nfacctd', '-f', join(dir, 'nfacctd.conf')]);
    const na = collect(nfacctd);
    const dump = t.spawn(t.srv, ['tcpdump', '-i', 'lo', '-U', '-w', pcap, 'udp', 'port', '39703']);
    const dc = collect(dump);
    const listening = (port: number) => t.exec(t.srv, ['ss', '-Huln']).includes(`127.0.0.1:${port}`);
    assert.ok(await waitFor(() => listening(39701) && listening(39702) && /listening on lo/.test(dc.err()), 20_000), `${nc.err()} ${na.err()} ${dc.err()}`);

    const conf = join(dir, 'ipfix.toml');
    writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\n\n[store]\npath = "${db}"\nflush_interval_ms = 100\n\n` +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39701"\nobservation_domain = 42\nnat_events = true\n\n` +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39702"\n\n` +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39703"\nnat_events = true\nnat_event_numbers = "historic"\n`);
    const daemon = t.spawn(t.srv, [...CONNTRAIL, 'run', '--config', conf]);
    const o = collect(daemon);
    try {
      assert.ok(await waitSubscribed(daemon.pid!, 20_000, t.rtr), o.err());
      assert.ok(await waitFor(() => /started with/.test(o.err()), 20_000), o.err());

      // the servers: each connection's and datagram's peer as they saw it (the ground truth of the translation)
      const srv = t.spawn(t.srv, ['/usr/bin/python3', '-c', [
        'import socket, threading',
        'def tcp():',
        '    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 8080)); s.listen(8)',
        '    for i in range(2):',
        '        c, a = s.accept(); print("tcp", a[0], a[1], flush=True); c.recv(100); c.sendall(b"y" * 3000); c.close()',
        'def udp(fam, addr):',
        '    s = socket.socket(fam, socket.SOCK_DGRAM)',
        '    if fam == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)',
        '    s.bind((addr, 9000))',
        '    d, a = s.recvfrom(100); print("udp", a[0], a[1], flush=True); s.sendto(b"z" * 50, a)',
        'threading.Thread(target=udp, args=(socket.AF_INET6, "::")).start()',
        'threading.Thread(target=udp, args=(socket.AF_INET, "0.0.0.0")).start()',
        'print("ready", flush=True); tcp()',
      ].join('\n')]);
      const so = collect(srv);
      assert.ok(await waitFor(() => so.out().includes('ready'), 10_000), so.err());
      const client = (code: string) => {
        const r = spawnSync('ip', ['netns', 'exec', t.cli, '/usr/bin/python3', '-c', code], { encoding: 'utf8', timeout: 20_000 });
        assert.equal(r.status, 0, r.stderr);
      };
      // SNAT (TCP), DNAT and SNAT (the forwarded port), UDP over IPv4 and IPv6 (masqueraded both), ICMP echo
      client(`import socket\nfor dst in (("${ADDR.srv}", 8080), ("${ADDR.rtrIn}", 8081)):\n    s = socket.create_connection(dst, timeout=10); s.sendall(b"x" * 100)\n    n = 0\n    while n < 3000:\n        d = s.recv(4096)\n        if not d: break\n        n += len(d)\n    s.close()`);
      client(`import socket\nfor fam, dst in ((socket.AF_INET, "${ADDR.srv}"), (socket.AF_INET6, "${ADDR.srv6}")):\n    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(10); s.sendto(b"q" * 20, (dst, 9000)); s.recv(100)`);
      t.exec(t.cli, ['ping', '-c', '1', '-W', '5', ADDR.srv]);
      assert.ok(await waitFor(() => (so.out().match(/^(tcp|udp) /gm) ?? []).length === 4, 10_000), so.out());

      // every flow ended and stored (a listing reaps what expired)
      const flows = (): Flow[] => {
        const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--limit', '0'], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        return (JSON.parse(r.stdout) as Flow[]).filter((f) => f.orig.src === ADDR.cli || f.orig.src === ADDR.cli6);
      };
      assert.ok(await waitFor(() => {
        t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true });
        const l = flows();
        return l.length >= 5 && l.every((f) => !f.open);
      }, 60_000), JSON.stringify(flows()));
      const list = flows();
      assert.equal(list.length, 5, JSON.stringify(list));
      // the servers' view is the store's: the public source of each connection
      for (const m of so.out().matchAll(/^(tcp|udp) (\S+) (\d+)$/gm)) {
        const f = list.filter((x) => x.proto === m[1] && x.snat?.public.addr === m[2].replace(/^::ffff:/, '') && x.snat.public.port === Number(m[3]));
        assert.equal(f.length, 1, `${m[0]}: ${JSON.stringify(list)}`);
      }
      assert.ok(list.some((f) => f.dnat !== null && f.snat !== null), 'a flow with DNAT and SNAT');
      // the exports are sent (each record's datagram written) before the collectors are stopped
      daemon.kill('SIGUSR1');
      assert.ok(await waitFor(() => /sink ipfix2: written=(\d+)/.test(o.err()), 10_000), o.err());
      assert.equal(await t.stop(daemon), 0, o.err());
      const stopped = o.err();
      // per sink: flows, and with nat_events a create and a delete per translated flow (all five are)
      for (const [name, n] of [['ipfix0', 15], ['ipfix1', 5], ['ipfix2', 15]] as const) {
        assert.match(stopped, new RegExp(`sink ${name}: written=${n} dropped=0 queued=0 errors=0 skipped=0`), stopped);
      }

      // nfcapd writes its file when stopped
      await t.stop(nfcapd);
      const file = readdirSync(cap).find((f) => /^nfcapd\.\d{12}$/.test(f));
      assert.ok(file, `${readdirSync(cap).join(' ')} ${nc.err()} ${nc.out()}`);
      const nd = spawnSync('nfdump', ['-r', join(cap, file), '-o', 'json'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
      assert.equal(nd.status, 0, nd.stderr);
      const recs = JSON.parse(nd.stdout) as Nf[];
      const key = (r: Nf) => `${r.proto} ${r.src4_addr ?? r.src6_addr} ${r.dst4_addr ?? r.dst6_addr} ${r.src_port ?? ''}`;
      const fkey = (f: Flow) => `${PROTO[f.proto]} ${f.orig.src} ${f.orig.dst} ${f.proto === 'icmp' ? '' : f.orig.sport}`;
      assert.match(nc.out() + nc.err(), /Sequence Errors: 0/);
      for (const f of list) {
        const mine = recs.filter((r) => key(r) === fkey(f));
        const flow = mine.filter((r) => r.nat_event_id === undefined);
        assert.equal(flow.length, 1, `${fkey(f)}: ${JSON.stringify(mine)}`);
        const r = flow[0];
        const v6 = f.orig.src.includes(':');
        const want: Nf = {
          first: nfTime(Math.floor(f.start_us / 1000)), last: nfTime(Math.ceil(f.end_us / 1000)),
          in_bytes: f.bytes.orig, in_packets: f.packets.orig, out_bytes: f.bytes.reply, out_packets: f.packets.reply,
        };
        if (f.proto === 'icmp') Object.assign(want, { icmp_type: 8, icmp_code: 0 });
        else Object.assign(want, { src_port: f.orig.sport, dst_port: f.orig.dport });
        // (nfdump keeps no IPv6 address after NAT, only the ports)
        if (!v6) Object.assign(want, { src4_xlt_ip: f.snat?.public.addr ?? f.orig.src, dst4_xlt_ip: f.dnat?.inside.addr ?? f.orig.dst });
        Object.assign(want, { src_xlt_port: String(f.snat?.public.port ?? f.orig.sport), dst_xlt_port: String(f.proto === 'icmp' ? 0 : f.dnat?.inside.port ?? f.orig.dport) });
        assert.deepEqual(Object.fromEntries(Object.keys(want).map((k) => [k, r[k]])), want, `${fkey(f)}: ${JSON.stringify(r)}`);
        // RFC 8158's NAT44 session create and delete (IPv6: the generic 1 and 2)
        const events = mine.filter((x) => x.nat_event_id !== undefined).map((x) => x.nat_event_id).sort();
        assert.deepEqual(events, v6 ? ['1', '2'] : ['4', '5'], `${fkey(f)}: ${JSON.stringify(mine)}`);
      }
      assert.equal(recs.length, 15);

      // nfacctd: its JSON once its cache is written out
      assert.ok(await waitFor(() => existsSync(pm) && readFileSync(pm, 'utf8').split('\n').filter(Boolean).length >= 5, 20_000), `${existsSync(pm) ? readFileSync(pm, 'utf8') : 'no file'}`);
      await t.stop(nfacctd, 'SIGINT');
      const pmRecs = readFileSync(pm, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Nf);
      for (const f of list) {
        const v6 = f.orig.src.includes(':');
        const r = pmRecs.filter((x) => x.ip_proto === f.proto && x.ip_src === f.orig.src && x.ip_dst === f.orig.dst && x.port_src === f.orig.sport);
        assert.equal(r.length, 1, `${fkey(f)}: ${JSON.stringify(pmRecs)}`);
        const want: Nf = {
          bytes: f.bytes.orig, packets: f.packets.orig,
          timestamp_start: (Math.floor(f.start_us / 1000) / 1000).toFixed(6), timestamp_end: (Math.ceil(f.end_us / 1000) / 1000).toFixed(6),
          post_nat_port_src: f.snat?.public.port ?? f.orig.sport,
        };
        if (!v6) Object.assign(want, { post_nat_ip_src: f.snat?.public.addr ?? f.orig.src, post_nat_ip_dst: f.dnat?.inside.addr ?? f.orig.dst });
        if (f.proto !== 'icmp') Object.assign(want, { port_dst: f.orig.dport, post_nat_port_dst: f.dnat?.inside.port ?? f.orig.dport });
        assert.deepEqual(Object.fromEntries(Object.keys(want).map((k) => [k, String(r[0][k])])), Object.fromEntries(Object.entries(want).map(([k, v]) => [k, String(v)])), `${fkey(f)}: ${JSON.stringify(r[0])}`);
      }

      // tshark: the IPv6 flow's address after NAT, and the historic event numbers
      await t.stop(dump);
      const ts = spawnSync('tshark', ['-r', pcap, '-d', 'udp.port==39703,cflow', '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=;',
        '-e', 'cflow.srcaddrv6', '-e', 'cflow.post_nat_source_ipv6_address', '-e', 'cflow.nat_event', '-e', 'cflow.od_id'], { encoding: 'utf8' });
      assert.equal(ts.status, 0, ts.stderr);
      const six = list.find((f) => f.orig.src === ADDR.cli6)!;
      const lines = ts.stdout.split('\n').filter(Boolean).join('\n');
      assert.ok(lines.includes(six.snat!.public.addr), `the IPv6 flow's public source ${six.snat!.public.addr}: ${lines}`);
      const natEvents = [...lines.matchAll(/\t([\d;]+)\t[\d;]+$/gm)].flatMap((m) => m[1].split(';')).sort();
      assert.deepEqual([...new Set(natEvents)], ['1', '2'], lines);
    } finally {
      for (const p of [daemon, nfcapd, dump]) await t.stop(p);
      await t.stop(nfacctd, 'SIGINT');
    }
  });
  it('3,000 flows at 3,000/s in messages of at most 576 bytes: nfcapd has each once, with no sequence error', async () => {
    const N = 3000;
    const cap = join(dir, 'nfcapd-load');
    mkdirSync(cap);
    const db = join(dir, 'load.db');
    const nfcapd = t.spawn(t.srv, ['nfcapd', '-w', cap, '-p', '39711', '-b', '127.0.0.1', '-t', '60']);
    const nc = collect(nfcapd);
    assert.ok(await waitFor(() => t.exec(t.srv, ['ss', '-Huln']).includes('127.0.0.1:39711'), 20_000), nc.err());
    const conf = join(dir, 'load.toml');
    writeFileSync(conf, `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\n\n[store]\npath = "${db}"\nflush_interval_ms = 100\n\n` +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39711"\nmax_message_size = 576\n`);
    const daemon = t.spawn(t.srv, [...CONNTRAIL, 'run', '--config', conf]);
    const o = collect(daemon);
    try {
      assert.ok(await waitSubscribed(daemon.pid!, 20_000, t.rtr), o.err());
      assert.ok(await waitFor(() => /started with/.test(o.err()), 20_000), o.err());
      t.exec(t.cli, ['python3', join(process.cwd(), 'test', 'helpers', 'udpflows.py'), ADDR.srv, String(N), '3000']);
      const stored = () => {
        const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--limit', '0', '--proto', 'udp', '--src', ADDR.cli], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(r.stdout) as Flow[];
      };
      assert.ok(await waitFor(() => {
        t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true });
        const l = stored();
        return l.length >= N && l.every((f) => !f.open);
      }, 90_000), `${stored().length} stored`);
      assert.equal(await t.stop(daemon), 0, o.err());
      assert.match(o.err(), new RegExp(`sink ipfix0: written=${N} dropped=0 queued=0 errors=0 skipped=0`), o.err());
      await t.stop(nfcapd);
      assert.match(nc.out() + nc.err(), new RegExp(`Flows: ${N}, .*Sequence Errors: 0`), nc.out() + nc.err());
      const file = readdirSync(cap).find((f) => /^nfcapd\.\d{12}$/.test(f))!;
      const nd = spawnSync('nfdump', ['-r', join(cap, file), '-q', '-o', 'fmt:%sp %dp %ibyt %obyt'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.equal(nd.status, 0, nd.stderr);
      const got = nd.stdout.split('\n').map((l) => l.trim().split(/\s+/).join(' ')).filter(Boolean).sort();
      const want = stored().map((f) => `${f.orig.sport} ${f.orig.dport} ${f.bytes.orig} ${f.bytes.reply}`).sort();
      assert.deepEqual(got, want);
    } finally {
      await t.stop(daemon);
      await t.stop(nfcapd);
    }
  });
});
