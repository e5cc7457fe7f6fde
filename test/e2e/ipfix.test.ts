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
/** nfcapd's counts over all the files it wrote (a line each; it starts a new file every -t seconds, at the minute here) */
const nfTotals = (log: string) => {
  const lines = [...log.matchAll(/Flows: (\d+), .*Sequence Errors: (\d+)/g)];
  return { files: lines.length, flows: lines.reduce((a, m) => a + Number(m[1]), 0), sequenceErrors: lines.reduce((a, m) => a + Number(m[2]), 0) };
};
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
  /** the router's conntrack source (kernel timestamps; accounting unless told) and a SQLite store at `db` */
  const routerStore = (db: string, accounting = true) =>
    `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\n${accounting ? 'enable_accounting = true\n' : ''}\n[store]\npath = "${db}"\nflush_interval_ms = 100\n\n`;
  /** the daemon (in the server's namespace) with the configuration in `conf`, its output collected */
  const runDaemon = (conf: string) => {
    const daemon = t.spawn(t.srv, [...CONNTRAIL, 'run', '--config', conf]);
    return { daemon, o: collect(daemon) };
  };
  /** until it listens to the router's events and has started */
  const started = async (daemon: ReturnType<typeof t.spawn>, o: ReturnType<typeof collect>) => {
    assert.ok(await waitSubscribed(daemon.pid!, 20_000, t.rtr), o.err());
    assert.ok(await waitFor(() => /started with/.test(o.err()), 20_000), o.err());
  };

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
    writeFileSync(conf, routerStore(db, false) +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39701"\nobservation_domain = 42\nnat_events = true\n\n` +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39702"\n\n` +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39703"\nnat_events = true\nnat_event_numbers = "historic"\n`);
    const { daemon, o } = runDaemon(conf);
    try {
      await started(daemon, o);

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
      assert.ok(readdirSync(cap).some((x) => /^nfcapd\.\d{12}$/.test(x)), `${readdirSync(cap).join(' ')} ${nc.err()} ${nc.out()}`);
      const nd = spawnSync('nfdump', ['-R', cap, '-o', 'json'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
      assert.equal(nd.status, 0, nd.stderr);
      const recs = JSON.parse(nd.stdout) as Nf[];
      const key = (r: Nf) => `${r.proto} ${r.src4_addr ?? r.src6_addr} ${r.dst4_addr ?? r.dst6_addr} ${r.src_port ?? ''}`;
      const fkey = (f: Flow) => `${PROTO[f.proto]} ${f.orig.src} ${f.orig.dst} ${f.proto === 'icmp' ? '' : f.orig.sport}`;
      assert.equal(nfTotals(nc.out() + nc.err()).sequenceErrors, 0, nc.out() + nc.err());
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
    writeFileSync(conf, routerStore(db, false) +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39711"\nmax_message_size = 576\n`);
    const { daemon, o } = runDaemon(conf);
    try {
      await started(daemon, o);
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
      assert.deepEqual([nfTotals(nc.out() + nc.err()).flows, nfTotals(nc.out() + nc.err()).sequenceErrors], [N, 0], nc.out() + nc.err());
      assert.ok(readdirSync(cap).some((x) => /^nfcapd\.\d{12}$/.test(x)), `${readdirSync(cap).join(' ')} ${nc.err()} ${nc.out()}`);
      const nd = spawnSync('nfdump', ['-R', cap, '-q', '-o', 'fmt:%sp %dp %ibyt %obyt'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.equal(nd.status, 0, nd.stderr);
      const got = nd.stdout.split('\n').map((l) => l.trim().split(/\s+/).join(' ')).filter(Boolean).sort();
      const want = stored().map((f) => `${f.orig.sport} ${f.orig.dport} ${f.bytes.orig} ${f.bytes.reply}`).sort();
      assert.deepEqual(got, want);
    } finally {
      await t.stop(daemon);
      await t.stop(nfcapd);
    }
  });
  it('a long flow with active_timeout = 2: reported while it runs, each record what came since the last; together what the server received and sent', async () => {
    const cap = join(dir, 'nfcapd-long');
    mkdirSync(cap);
    const pcap = join(dir, 'long.pcap');
    const db = join(dir, 'long.db');
    // a stream (replies seen) is kept nf_conntrack_udp_timeout_stream: 1 s here too, so it ends soon after its last packet
    t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout_stream': '1' });
    const nfcapd = t.spawn(t.srv, ['nfcapd', '-w', cap, '-p', '39721', '-b', '127.0.0.1', '-t', '60']);
    const nc = collect(nfcapd);
    const dump = t.spawn(t.srv, ['tcpdump', '-i', 'lo', '-U', '-w', pcap, 'udp', 'port', '39721']);
    const dc = collect(dump);
    assert.ok(await waitFor(() => t.exec(t.srv, ['ss', '-Huln']).includes('127.0.0.1:39721') && /listening on lo/.test(dc.err()), 20_000), `${nc.err()} ${dc.err()}`);
    const conf = join(dir, 'long.toml');
    writeFileSync(conf, routerStore(db) +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39721"\nactive_timeout = 2\nnat_events = true\nnat_event_numbers = "historic"\n`);
    const { daemon, o } = runDaemon(conf);
    // the server: every datagram answered, and counted with the public source it came from
    const srv = t.spawn(t.srv, ['/usr/bin/python3', '-c', [
      'import socket',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9001)); print("ready", flush=True)',
      'n = 0; b = 0',
      'while True:',
      '    d, a = s.recvfrom(2000); n += 1; b += len(d); s.sendto(b"r" * 30, a)',
      '    if d == b"bye": break',
      'print("got", a[0], a[1], n, b, flush=True)',
    ].join('\n')]);
    const so = collect(srv);
    try {
      await started(daemon, o);
      assert.ok(await waitFor(() => so.out().includes('ready'), 10_000), so.err());
      // 7 s of one datagram each 100 ms, each answered before the next (bounded: 70, then the last)
      const r = spawnSync('ip', ['netns', 'exec', t.cli, '/usr/bin/python3', '-c',
        `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\nfor i in range(70):\n    s.sendto(b"p" * 200, ("${ADDR.srv}", 9001)); s.recv(100); time.sleep(0.1)\ns.sendto(b"bye", ("${ADDR.srv}", 9001)); s.recv(100)`],
      { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(await waitFor(() => /^got /m.test(so.out()), 10_000), so.out());
      const [, pubAddr, pubPort, n] = /^got (\S+) (\d+) (\d+) (\d+)$/m.exec(so.out())!;
      assert.equal(Number(n), 71);
      const stored = (): Flow[] => {
        const q = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--limit', '0', '--proto', 'udp', '--src', ADDR.cli], { encoding: 'utf8' });
        assert.equal(q.status, 0, q.stderr);
        return (JSON.parse(q.stdout) as Flow[]).filter((f) => f.orig.dport === 9001);
      };
      assert.ok(await waitFor(() => { t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true }); const l = stored(); return l.length === 1 && !l[0].open; }, 60_000), JSON.stringify(stored()));
      const f = stored()[0];
      // the store's flow is the server's: 71 each way, from the public port it saw
      assert.deepEqual([f.packets.orig, f.packets.reply, f.snat?.public.addr, f.snat?.public.port], [71, 71, pubAddr, Number(pubPort)]);
      daemon.kill('SIGUSR1');
      assert.ok(await waitFor(() => /sink ipfix0: written=(\d+)/.test(o.err()), 10_000), o.err());
      assert.equal(await t.stop(daemon), 0, o.err());
      await t.stop(nfcapd);
      await t.stop(dump);
      assert.equal(nfTotals(nc.out() + nc.err()).sequenceErrors, 0, nc.out() + nc.err());
      assert.ok(readdirSync(cap).some((x) => /^nfcapd\.\d{12}$/.test(x)), `${readdirSync(cap).join(' ')} ${nc.err()} ${nc.out()}`);
      const nd = spawnSync('nfdump', ['-R', cap, '-o', 'json'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
      assert.equal(nd.status, 0, nd.stderr);
      const mine = (JSON.parse(nd.stdout) as Nf[]).filter((x) => x.src4_addr === ADDR.cli && x.src_port === f.orig.sport && x.dst_port === 9001);
      const recs = mine.filter((x) => x.nat_event_id === undefined).sort((a, b) => String(a.first).localeCompare(String(b.first)));
      // reported while it ran (7 s, every 2 s or a dump later), then its end
      assert.ok(recs.length >= 2 && recs.length <= 5, JSON.stringify(recs));
      const sum = (k: string) => recs.reduce((a, x) => a + Number(x[k]), 0);
      assert.deepEqual([sum('in_packets'), sum('out_packets'), sum('in_bytes'), sum('out_bytes')], [71, 71, f.bytes.orig, f.bytes.reply], JSON.stringify(recs));
      assert.equal(recs[0].first, nfTime(Math.floor(f.start_us / 1000)), `${JSON.stringify(f)}\n${JSON.stringify(recs)}\n${o.err()}`);
      const ms = (x: Nf[string]) => Date.parse(`${x}Z`);
      // its end is a record of its own, ending when the flow did; unless the last report came after its
      // last packet, before its entry expired: then that report carried the rest, and its end no record
      // (no record of nothing: its delete event still goes)
      const endRecord = recs.at(-1)!.last === nfTime(Math.ceil(f.end_us / 1000));
      if (!endRecord) assert.ok(ms(recs.at(-1)!.last) < f.end_us / 1000, `${JSON.stringify(f)}\n${JSON.stringify(recs)}\n${o.err()}`);
      for (let i = 1; i < recs.length; i++) {
        // each starts where the one before ended (to the ms: the start rounded down, the end up)
        assert.ok(ms(recs[i].first) <= ms(recs[i - 1].last) && ms(recs[i - 1].last) - ms(recs[i].first) <= 1, JSON.stringify(recs));
        assert.ok(Number(recs[i - 1].in_packets) > 0, 'no record of nothing');
      }
      for (const x of recs) assert.deepEqual([x.src4_xlt_ip, x.src_xlt_port], [pubAddr, pubPort], JSON.stringify(x));
      // one session: one create, one delete
      assert.deepEqual(mine.filter((x) => x.nat_event_id !== undefined).map((x) => x.nat_event_id).sort(), ['1', '2'], JSON.stringify(mine));
      assert.match(o.err(), new RegExp(`sink ipfix0: written=${recs.length + 2} dropped=0 queued=0 errors=0 skipped=0`), o.err());
      // tshark: the reports say active timeout (2), the end idle timeout (1: the entry expired)
      // (the capture has this flow's records only, and its two events, which have no flowEndReason)
      const ts = spawnSync('tshark', ['-r', pcap, '-d', 'udp.port==39721,cflow', '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=;', '-e', 'cflow.flow_end_reason'], { encoding: 'utf8' });
      assert.equal(ts.status, 0, ts.stderr);
      const reasons = ts.stdout.split('\n').filter(Boolean).flatMap((l) => l.split(';'));
      assert.deepEqual(reasons, endRecord ? [...Array(recs.length - 1).fill('2'), '1'] : Array(recs.length).fill('2'), ts.stdout);
    } finally {
      for (const p of [daemon, nfcapd, dump, srv]) await t.stop(p);
    }
  });
  it('over TCP (tcp://): one connection, the templates first, every flow once with its counters, as tshark decodes the stream', async () => {
    const N = 200;
    const pcap = join(dir, 'tcp.pcap');
    const db = join(dir, 'tcp.db');
    // the collector: a listener that reads what it gets and never closes (the capture is what tshark reads)
    const ncat = t.spawn(t.srv, ['/usr/bin/python3', '-c', [
      'import socket, threading',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 39731)); s.listen(4)',
      'def read(c):',
      '    while c.recv(65536): pass',
      'while True:',
      '    c, a = s.accept(); print("connection", a[1], flush=True); threading.Thread(target=read, args=(c,), daemon=True).start()',
    ].join('\n')]);
    const nk = collect(ncat);
    const dump = t.spawn(t.srv, ['tcpdump', '-i', 'lo', '-U', '-w', pcap, 'tcp', 'port', '39731']);
    const dc = collect(dump);
    assert.ok(await waitFor(() => t.exec(t.srv, ['ss', '-Htln']).includes('127.0.0.1:39731') && /listening on lo/.test(dc.err()), 20_000), `${nk.err()} ${dc.err()}`);
    const conf = join(dir, 'tcp.toml');
    writeFileSync(conf, routerStore(db) +
      `[[sink]]\ntype = "ipfix"\naddress = "tcp://127.0.0.1:39731"\nobservation_domain = 9\n`);
    const { daemon, o } = runDaemon(conf);
    try {
      await started(daemon, o);
      t.exec(t.cli, ['python3', join(process.cwd(), 'test', 'helpers', 'udpflows.py'), ADDR.srv, String(N), '1000']);
      const stored = (): Flow[] => {
        const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--limit', '0', '--proto', 'udp', '--src', ADDR.cli], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(r.stdout) as Flow[];
      };
      assert.ok(await waitFor(() => { t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true }); const l = stored(); return l.length >= N && l.every((f) => !f.open); }, 60_000), `${stored().length} stored`);
      daemon.kill('SIGUSR1');
      assert.ok(await waitFor(() => new RegExp(`sink ipfix0: written=${N} `).test(o.err()), 20_000), o.err());
      assert.equal(await t.stop(daemon), 0, o.err());
      assert.match(o.err(), new RegExp(`sink ipfix0: written=${N} dropped=0 queued=0 errors=0 resent=0 skipped=0`), o.err());
      // tshark reassembles the stream into IPFIX messages: the template set in the first only, sequence numbers the records before
      const decode = () => spawnSync('tshark', ['-r', pcap, '-d', 'tcp.port==39731,cflow', '-Y', 'cflow', '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=;',
        '-e', 'cflow.sequence', '-e', 'cflow.od_id', '-e', 'cflow.template_id', '-e', 'cflow.dstport', '-e', 'cflow.octets', '-e', 'cflow.packets'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      // (the capture is written as tcpdump reads it: stopped before it read the last segments, it would not have them)
      const records = () => decode().stdout.split('\n').filter(Boolean).reduce((n, l) => n + (l.split('\t')[3] ? l.split('\t')[3].split(';').length : 0), 0);
      assert.ok(await waitFor(() => records() >= N, 20_000), `${records()} records in the capture`);
      await t.stop(dump);
      assert.equal((nk.out().match(/^connection /gm) ?? []).length, 1, nk.out());
      const ts = decode();
      assert.equal(ts.status, 0, ts.stderr);
      const rows = ts.stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
      assert.ok(rows.length > 0, ts.stdout);
      const got: string[] = [];
      let seq = 0;
      rows.forEach(([sq, od, tmpl, ports, octets, packets], i) => {
        // (a segment of several messages is one row: their sequence numbers, the first the records before it)
        assert.equal(Number(sq.split(';')[0]), seq, `row ${i}: ${rows[i].join(' ')}`);
        assert.ok(od.split(';').every((x) => x === '9'));
        if (i === 0) assert.ok(tmpl.length > 0, 'templates first');
        else assert.equal(tmpl, '', 'the templates once');
        const p = ports ? ports.split(';') : [];
        const b = octets ? octets.split(';') : [];
        const k = packets ? packets.split(';') : [];
        // (each record's counters twice: the original direction's, then RFC 5103's reverse ones, which tshark names alike)
        p.forEach((x, j) => got.push(`${x} ${b[2 * j]} ${k[2 * j]} ${b[2 * j + 1]} ${k[2 * j + 1]}`));
        seq += p.length;
      });
      const want = stored().map((f) => `${f.orig.dport} ${f.bytes.orig} ${f.packets.orig} ${f.bytes.reply} ${f.packets.reply}`);
      assert.deepEqual(got.sort(), want.sort());
    } finally {
      await t.stop(daemon);
      await t.stop(dump);
      await t.stop(ncat);
    }
  });
  it('a TCP flow of 4.5 GiB through SNAT: its 64-bit counters, above 2^32, reach nfdump as the store and the server have them', async () => {
    const SIZE = 4.5 * 2 ** 30;
    const cap = join(dir, 'nfcapd-big');
    mkdirSync(cap);
    const db = join(dir, 'big.db');
    const nfcapd = t.spawn(t.srv, ['nfcapd', '-w', cap, '-p', '39741', '-b', '127.0.0.1', '-t', '60']);
    const nc = collect(nfcapd);
    assert.ok(await waitFor(() => t.exec(t.srv, ['ss', '-Huln']).includes('127.0.0.1:39741'), 20_000), nc.err());
    const conf = join(dir, 'big.toml');
    writeFileSync(conf, routerStore(db) +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39741"\n`);
    const { daemon, o } = runDaemon(conf);
    // the server: counts what it received, and says from which public port
    const srv = t.spawn(t.srv, ['/usr/bin/python3', '-c', [
      'import socket',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 8082)); s.listen(1); print("ready", flush=True)',
      'c, a = s.accept(); n = 0',
      'while True:',
      '    d = c.recv(1 << 20)',
      '    if not d: break',
      '    n += len(d)',
      'c.close(); print("got", a[0], a[1], n, flush=True)',
    ].join('\n')]);
    const so = collect(srv);
    try {
      await started(daemon, o);
      assert.ok(await waitFor(() => so.out().includes('ready'), 10_000), so.err());
      const r = spawnSync('ip', ['netns', 'exec', t.cli, '/usr/bin/python3', '-c',
        `import socket\nc = socket.create_connection(("${ADDR.srv}", 8082), timeout=30)\nb = bytes(1 << 20)\nfor i in range(${SIZE / 2 ** 20}): c.sendall(b)\nc.shutdown(socket.SHUT_WR); c.recv(1); c.close()`],
      { encoding: 'utf8', timeout: 300_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(await waitFor(() => /^got /m.test(so.out()), 30_000), so.out());
      const [, , pubPort, got] = /^got (\S+) (\d+) (\d+)$/m.exec(so.out())!;
      assert.equal(Number(got), SIZE, 'the server received it all');
      const stored = (): Flow[] => {
        const q = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--limit', '0', '--proto', 'tcp', '--src', ADDR.cli], { encoding: 'utf8' });
        assert.equal(q.status, 0, q.stderr);
        return (JSON.parse(q.stdout) as Flow[]).filter((f) => f.orig.dport === 8082);
      };
      assert.ok(await waitFor(() => { t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true }); const l = stored(); return l.length === 1 && !l[0].open; }, 60_000), JSON.stringify(stored()));
      const f = stored()[0];
      // the kernel counts the packets whole: the payload and every header
      assert.ok(f.bytes.orig > SIZE && f.bytes.orig > 2 ** 32, JSON.stringify(f));
      assert.equal(f.snat?.public.port, Number(pubPort));
      daemon.kill('SIGUSR1');
      assert.ok(await waitFor(() => /sink ipfix0: written=1 /.test(o.err()), 10_000), o.err());
      assert.equal(await t.stop(daemon), 0, o.err());
      await t.stop(nfcapd);
      assert.ok(readdirSync(cap).some((x) => /^nfcapd\.\d{12}$/.test(x)), `${readdirSync(cap).join(' ')} ${nc.err()} ${nc.out()}`);
      const nd = spawnSync('nfdump', ['-R', cap, '-o', 'json'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
      assert.equal(nd.status, 0, nd.stderr);
      const recs = (JSON.parse(nd.stdout) as Nf[]).filter((x) => x.dst_port === 8082);
      assert.equal(recs.length, 1, nd.stdout);
      assert.deepEqual([recs[0].in_bytes, recs[0].in_packets, recs[0].out_bytes, recs[0].out_packets, recs[0].src_xlt_port],
        [f.bytes.orig, f.packets.orig, f.bytes.reply, f.packets.reply, pubPort]);
    } finally {
      for (const p of [daemon, nfcapd, srv]) await t.stop(p);
    }
  });
  it('[[aggregate]] beside the raw export: per interval, its records are what nfdump -A with the same keys makes of the raw flows', async () => {
    const raw = join(dir, 'nfcapd-raw');
    const agg = join(dir, 'nfcapd-agg');
    mkdirSync(raw);
    mkdirSync(agg);
    const db = join(dir, 'agg.db');
    const capRaw = t.spawn(t.srv, ['nfcapd', '-w', raw, '-p', '39761', '-b', '127.0.0.1', '-t', '60']);
    const capAgg = t.spawn(t.srv, ['nfcapd', '-w', agg, '-p', '39762', '-b', '127.0.0.1', '-t', '60']);
    const cr = collect(capRaw);
    const ca = collect(capAgg);
    const udpListening = () => t.exec(t.srv, ['ss', '-Huln']);
    assert.ok(await waitFor(() => udpListening().includes('127.0.0.1:39761') && udpListening().includes('127.0.0.1:39762'), 20_000), `${cr.err()} ${ca.err()}`);
    const conf = join(dir, 'agg.toml');
    writeFileSync(conf, routerStore(db) +
      `[[aggregate]]\nname = "agg"\nkeys = ["src", "proto", "dport", "nat_src"]\ninterval = 10\ndelay = 2\nstore = true\n\n` +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39761"\n\n` +
      `[[sink]]\ntype = "ipfix"\naddress = "udp://127.0.0.1:39762"\naggregate = "agg"\n\n` +
      // the same records as JSON lines
      `[[sink]]\ntype = "file"\npath = "${join(dir, 'agg.jsonl')}"\naggregate = "agg"\n`);
    const { daemon, o } = runDaemon(conf);
    try {
      await started(daemon, o);
      // two intervals: in each, at its start, UDP flows to three ports (several from each of a few source ports), ended at once by conntrack -D
      const bursts = [[7000, 7001, 7002], [7003, 7004, 7005]];
      for (const ports of bursts) {
        assert.ok(await waitFor(() => Date.now() % 10_000 < 1000, 15_000), 'an interval begins');
        const r = spawnSync('ip', ['netns', 'exec', t.cli, '/usr/bin/python3', '-c',
          `import socket\nfor n, p in enumerate(${JSON.stringify(ports)}):\n    for k in range(n + 2):\n        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"a" * (10 + k), ("${ADDR.srv}", p)); s.sendto(b"b" * 20, ("${ADDR.srv}", p)); s.close()`],
        { encoding: 'utf8', timeout: 20_000 });
        assert.equal(r.status, 0, r.stderr);
        for (const p of ports) t.exec(t.rtr, ['conntrack', '-D', '-p', 'udp', '--dport', String(p)], { allowFail: true });
      }
      // the second interval sent too: 2 + 2 s after its end
      const sentAgg = () => Number(/sink ipfix1: written=(\d+)/.exec(o.err().split('\n').filter((l) => l.includes('counters:')).at(-1) ?? '')?.[1] ?? 0);
      assert.ok(await waitFor(() => { daemon.kill('SIGUSR1'); return sentAgg() >= 6; }, 40_000), o.err());
      assert.equal(await t.stop(daemon), 0, o.err());
      assert.match(o.err(), /aggregate agg: flows=18 records=6 late=0 early=0 held=0/, o.err());
      assert.match(o.err(), /sink file2: written=6 dropped=0 queued=0 errors=0/, o.err());
      assert.match(o.err(), /aggregates_written=6 aggregates_expired=0/, o.err());
      await t.stop(capRaw);
      await t.stop(capAgg);
      const nfdump = (args: string[]) => {
        const r = spawnSync('nfdump', args, { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout;
      };
      // (nfdump 1.7.1's JSON output has no fields with -A: the same fmt line for the raw flows aggregated and for our records)
      const FMT = 'fmt:%ts|%te|%sa|%pr|%dp|%xsa|%fl|%ipkt|%ibyt|%opkt|%obyt';
      const lines = (out: string) => out.split('\n').filter((l) => l.includes('|')).map((l) => l.split('|').map((x) => x.trim()).join('|')).sort();
      const mine = JSON.parse(nfdump(['-R', agg, '-o', 'json'])) as Nf[];
      assert.equal(mine.length, 6, JSON.stringify(mine));
      const interval = (x: Nf[string]) => Math.floor(Date.parse(`${x}Z`) / 10_000);
      for (const [b, ports] of bursts.entries()) {
        const filter = ports.map((p) => `dst port ${p}`).join(' or ');
        // one interval each: the raw flows' ends and the records' times in it
        const raws = JSON.parse(nfdump(['-R', raw, '-o', 'json', filter])) as Nf[];
        assert.equal(raws.length, 2 + 3 + 4, JSON.stringify(raws));
        assert.equal(new Set(raws.map((x) => interval(x.last))).size, 1, `burst ${b}: ${JSON.stringify(raws)}`);
        const ours = mine.filter((x) => ports.includes(Number(x.dst_port)));
        assert.ok(ours.every((x) => interval(x.last) === interval(raws[0].last)), JSON.stringify(ours));
        assert.deepEqual(ours.map((x) => Number(x.aggr_flows)).sort(), [2, 3, 4], JSON.stringify(ours));
        // key for key: first, last, the keys, the flow count and the sums
        const theirs = lines(nfdump(['-q', '-R', raw, '-A', 'srcip,proto,dstport,xsrcip', '-o', FMT, filter]));
        const oursFmt = lines(nfdump(['-q', '-R', agg, '-o', FMT, filter]));
        assert.equal(theirs.length, 3, theirs.join('\n'));
        assert.deepEqual(oursFmt, theirs);
      }
      // the file sink's JSON lines: the records the collector has, field for field, and the flows the store has, summed
      const json = readFileSync(join(dir, 'agg.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
      assert.equal(json.length, 6, JSON.stringify(json));
      // the store has the same records (store = true): conntrail aggregates prints them as the file has them, oldest first
      const st = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'aggregates', '--db', db, '--json', '--name', 'agg'], { encoding: 'utf8' });
      assert.equal(st.status, 0, st.stderr);
      const byKey = (l: Array<Record<string, any>>) => [...l].sort((a, b) => a.interval_start_us - b.interval_start_us || a.dport - b.dport);
      assert.deepEqual(byKey(JSON.parse(st.stdout)), byKey(json));
      const one = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'aggregates', '--db', db, '--port', '7004', '--csv'], { encoding: 'utf8' });
      assert.equal(one.status, 0, one.stderr);
      assert.equal(one.stdout.trim().split('\n').length, 2, one.stdout);
      assert.match(one.stdout, /^interval_start,interval_start_us,interval_s,aggregate,/);
      const q = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'flows', '--db', db, '--json', '--limit', '0', '--proto', 'udp', '--src', ADDR.cli], { encoding: 'utf8' });
      assert.equal(q.status, 0, q.stderr);
      const flows = (JSON.parse(q.stdout) as Flow[]).filter((f) => f.orig.dport >= 7000 && f.orig.dport <= 7005);
      assert.equal(flows.length, 18);
      for (const x of json) {
        const nf = mine.find((m) => Number(m.dst_port) === x.dport)!;
        const of = flows.filter((f) => f.orig.dport === x.dport);
        assert.deepEqual(
          [x.aggregate, x.interval_s, x.interval_start_us, x.family, x.proto, x.src, x.sport, x.dst, x.nat_src, x.nat_sport, x.nat_dst, x.nat_dport],
          ['agg', 10, Math.floor(x.last_us / 10e6) * 10e6, 4, 'udp', nf.src4_addr, null, null, nf.src4_xlt_ip, null, null, null], JSON.stringify(x));
        assert.deepEqual([x.flows, x.packets.orig, x.bytes.orig, x.packets.reply, x.bytes.reply, nfTime(Math.floor(x.first_us / 1000)), nfTime(Math.ceil(x.last_us / 1000))],
          [Number(nf.aggr_flows), Number(nf.in_packets), Number(nf.in_bytes), Number(nf.out_packets), Number(nf.out_bytes), nf.first, nf.last], JSON.stringify([x, nf]));
        assert.deepEqual([x.flows, x.packets.orig, x.bytes.orig, x.first_us, x.last_us],
          [of.length, of.reduce((a, f) => a + f.packets.orig!, 0), of.reduce((a, f) => a + f.bytes.orig!, 0), Math.min(...of.map((f) => f.start_us)), Math.max(...of.map((f) => f.end_us!))], JSON.stringify([x, of]));
      }
    } finally {
      for (const p of [daemon, capRaw, capAgg]) await t.stop(p);
    }
  });
  it('[[aggregate]] across SIGHUP: a stage whose keys change sends what it held to the sinks that named it, the new one starts empty; counts carry on', async () => {
    const out = join(dir, 'reload-agg.jsonl');
    const conf = join(dir, 'reload-agg.toml');
    const config = (keys: string, name = 'r') => `[[source]]\nnetns = "${t.rtr}"\nenable_timestamps = true\nenable_accounting = true\n\n[store]\ntype = "none"\n\n` +
      `[[aggregate]]\nname = "${name}"\nkeys = ${keys}\ninterval = 3600\ndelay = 0\n\n[[sink]]\ntype = "file"\npath = "${out}"\naggregate = "${name}"\n`;
    writeFileSync(conf, config('["dport"]'));
    const { daemon, o } = runDaemon(conf);
    const flows = (n: number, port: number) => {
      const r = spawnSync('ip', ['netns', 'exec', t.cli, '/usr/bin/python3', '-c',
        `import socket\nfor k in range(${n}):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"x" * 10, ("${ADDR.srv}", ${port})); s.close()`],
      { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, r.stderr);
      t.exec(t.rtr, ['conntrack', '-D', '-p', 'udp', '--dport', String(port)], { allowFail: true });
    };
    const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>) : []);
    const counted = (re: RegExp) => { daemon.kill('SIGUSR1'); return re.test(o.err().split('\n').filter((l) => l.includes('counters:')).at(-1) ?? ''); };
    try {
      await started(daemon, o);
      flows(3, 7100);
      // folded, held (the hour is not over)
      assert.ok(await waitFor(() => counted(/aggregate r: flows=3 records=0 late=0 early=0 held=1/), 20_000), o.err());
      assert.deepEqual(lines(), []);
      // the keys change: what the old stage held goes to its sink now, whole
      writeFileSync(conf, config('["dport", "proto"]'));
      daemon.kill('SIGHUP');
      assert.ok(await waitFor(() => lines().length === 1, 20_000), `${o.err()}\n${JSON.stringify(lines())}`);
      assert.deepEqual([lines()[0].dport, lines()[0].proto, lines()[0].flows], [7100, null, 3], JSON.stringify(lines()));
      flows(2, 7101);
      assert.ok(await waitFor(() => counted(/aggregate r: flows=5 records=1 late=0 early=0 held=1/), 20_000), o.err());
      // renamed (the sink with it): what "r" held goes to the sink that named it, before that one closes
      writeFileSync(conf, config('["dport", "proto"]', 'r2'));
      daemon.kill('SIGHUP');
      assert.ok(await waitFor(() => lines().length === 2, 20_000), `${o.err()}\n${JSON.stringify(lines())}`);
      assert.deepEqual(lines().map((x) => [x.aggregate, x.dport, x.proto, x.flows]), [['r', 7100, null, 3], ['r', 7101, 'udp', 2]], JSON.stringify(lines()));
      flows(1, 7102);
      assert.ok(await waitFor(() => counted(/aggregate r2: flows=1 records=0 late=0 early=0 held=1/), 20_000), o.err());
      assert.equal(await t.stop(daemon), 0, o.err());
      // at the stop the last stage's record; the counts of the one renamed stay
      assert.deepEqual(lines().map((x) => [x.aggregate, x.dport, x.proto, x.flows]), [['r', 7100, null, 3], ['r', 7101, 'udp', 2], ['r2', 7102, 'udp', 1]], JSON.stringify(lines()));
      assert.match(o.err(), /stopped: .*aggregate r2: flows=1 records=1 late=0 early=0 held=0; aggregate r: flows=5 records=2 late=0 early=0 held=0/, o.err());
    } finally {
      await t.stop(daemon);
    }
  });

});
