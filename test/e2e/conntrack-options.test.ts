// conntrack's own options, spelled as scripts spell them, side by side with
// conntrack: for each option set, `conntrack -E ARGS` and `conntrail events
// ARGS` watch the same router while the same traffic passes, and print the
// same lines (the ground truth is conntrack's output, not a predicate of
// ours). Options conntrack refuses, conntrail refuses too (exit 2), and
// what it takes, conntrail takes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { mixedRules, mixedTraffic, reapExpired, shortTimeouts } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';

// (who caused an event, [USERSPACE] portid=N progname=NAME, is compared elsewhere: the name is looked up racily by both)
const lines = (s: string) => s.split('\n').filter(Boolean).map((l) => l.replace(/ \[USERSPACE\].*$/, ''));

const CASES: string[][] = [
  [],
  ['-e', 'upd'],
  ['-e', 'new,DESTROY'],
  ['--event-mask', 'DESTROY', '-p', 'gre'],
  ['-o', 'ID,e'],
  // the XML document: the head before the first event, the end at exit
  ['-o', 'xml'],
  ['-o', 'XML,ktimestamp,id', '-p', 'udp'],
  // the options that would make each entry again
  ['-o', 'save'],
  ['-o', 'sa', '-p', 'tcp'],
  ['-p', 'tcp', '--dport', '8080'],
  ['-p', 'tcp', '--orig-port-dst', '8080', '-o', 'id'],
  ['-p', 'tcp', '--reply-port-src', '8080'],
  ['-p', 'udp', '--sport', '5000'],
  ['-p', 'udp', '--dport', '5353', '--reply-port-src', '5353'],
  ['-r', ADDR.srv],
  ['-q', ADDR.rtrOut],
  ['--orig-src', ADDR.cli, '--orig-dst', ADDR.rtrIn],
  ['-p', 'tcp', '--state', 'ESTABLISHED'],
  ['-p', 'tcp', '--state', 'TIME_WAIT'],
  ['-p', 'icmp', '--icmp-type', '8'],
  ['-p', 'icmpv6', '--icmpv6-type', '128'],
  ['-p', 'icmp', '--icmp-code', '0', '--icmp-type', '8'],
  ['--protonum', 'sctp'],
  ['-p', 'ipv6-icmp'],
  ['--src-nat'],
  ['--src-nat', ADDR.rtrOut],
  ['-n', ADDR.rtrOut, '-p', 'udp'],
  ['--dst-nat'],
  ['--dst-nat', ADDR.srv],
  ['-g', `${ADDR.srv}:8080`],
  ['--src-nat', '--dst-nat'],
  ['--any-nat'],
  ['-s', '10.99.1.0', '--mask-src', '255.255.255.0'],
  ['-d', '10.99.0.2', '--mask-dst', '255.255.0.255'],
  // an event without a mark (or zone) does not match, whatever the value
  ['-m', '0'],
  ['-m', '0/0xf0'],
  ['-m', '16'],
  ['-w', '5'],
];

describe('conntrack\'s options, side by side with conntrack -E', { timeout: 180_000 }, () => {
  const t = new Topology('co');
  before(() => {
    t.up({ nft: mixedRules(t) });
    shortTimeouts(t);
  });
  after(() => t.down());

  it('each option set prints what conntrack -E prints with it', async () => {
    const pairs: Array<{ args: string[]; ref: ReturnType<typeof collect>; ours: ReturnType<typeof collect>; procs: ChildProcess[] }> = [];
    try {
      for (const args of CASES) {
        const a = t.spawn(t.rtr, ['conntrack', '-E', ...args]);
        const b = t.spawn(t.rtr, [...CONNTRAIL, 'events', ...args]);
        pairs.push({ args, ref: collect(a), ours: collect(b), procs: [a, b] });
      }
      // (about 40 Node processes start at once on two cores: the first may take well over 10 s to subscribe)
      for (const p of pairs) {
        for (const [i, c] of p.procs.entries()) {
          assert.ok(await waitSubscribed(c.pid!, 90_000), `${i ? 'conntrail events' : 'conntrack -E'} ${p.args.join(' ')}: not subscribed (${p.ref.err()} ${p.ours.err()})`);
        }
      }
      await mixedTraffic(t);
      // the client's UDP from a fixed port (--sport), to the server and to the router itself (a flow without NAT)
      t.exec(t.cli, ['python3', '-c', `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(("0.0.0.0", 5000))\ns.sendto(b"x", ("${ADDR.srv}", 5001))\ns.sendto(b"x", ("${ADDR.rtrIn}", 9))`]);
      // an entry made with mark 0: its NEW carries CTA_MARK (0), its DESTROY none (-m 0 keeps the one, not the other)
      t.exec(t.rtr, ['conntrack', '-I', '-p', 'udp', '-s', ADDR.cli, '-d', ADDR.srv, '--sport', '1', '--dport', '2', '-t', '30', '-m', '0']);
      t.exec(t.rtr, ['conntrack', '-D', '-p', 'udp', '-s', ADDR.cli, '-d', ADDR.srv, '--sport', '1', '--dport', '2']);
      await reapExpired(t);
      // each conntrail has printed as many lines as its conntrack, and every conntrack has printed something
      const settled = () => pairs.every((p) => lines(p.ref.out()).length > 0 && lines(p.ours.out()).length >= lines(p.ref.out()).length);
      assert.ok(await waitFor(settled, 20000), pairs.map((p) => `${p.args.join(' ')}: conntrack ${lines(p.ref.out()).length}, conntrail ${lines(p.ours.out()).length}`).join('\n'));
    } finally {
      for (const p of pairs) for (const c of p.procs) await t.stop(c);
    }
    const total = lines(pairs[0].ref.out()).length;
    for (const p of pairs) {
      assert.deepEqual(lines(p.ours.out()), lines(p.ref.out()), `${p.args.join(' ')}\n${p.ours.err()}`);
      // each filter is exercised: it keeps some of the events, not all
      if (p.args.length && p.args[0] !== '-o') assert.ok(lines(p.ref.out()).length < total, `${p.args.join(' ')}: ${lines(p.ref.out()).length} of ${total}`);
    }
  });

  it('what conntrack refuses (exit 2), conntrail refuses, in one line; what it takes, conntrail takes', async () => {
    const refused: string[][] = [
      ['--sport', '80'], ['-p', 'udp', '--state', 'ESTABLISHED'], ['-p', 'tcp', '--state', 'established'],
      ['-s', ADDR.cli, '-d', ADDR.srv6], ['-s', ADDR.cli, '-r', ADDR.srv6], ['-f', 'ipv6', '-s', ADDR.cli], ['-r', '10.99.2.0/24'],
      ['-e', 'x'], ['-e', ','], ['-o', 'foo'], ['-p', 'icmpv6', '--icmp-type', '128'], ['--mask-src', '255.255.255.0'],
    ];
    for (const args of refused) {
      const ref = spawnSync('ip', ['netns', 'exec', t.rtr, 'conntrack', '-E', ...args], { encoding: 'utf8', timeout: 10000 });
      assert.equal(ref.status, 2, `conntrack refuses ${args.join(' ')}: ${ref.stderr}`);
      const ours = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'events', '--netns', t.rtr, ...args], { encoding: 'utf8', timeout: 10000 });
      assert.equal(ours.status, 2, `conntrail refuses ${args.join(' ')}: ${ours.stderr}`);
      assert.equal(ours.stderr.trim().split('\n').length, 1, ours.stderr);
      assert.doesNotMatch(ours.stderr, /\n\s+at /);
    }
    assert.match(spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'events', '-s', ADDR.cli, '-d', ADDR.srv6], { encoding: 'utf8' }).stderr, /mismatched address family/);
    const taken: string[][] = [['-e', 'UPDATE'], ['-e', 'n,de'], ['-o', 'userspace'], ['-o', 'e,I'], ['-p', 'igmp'], ['-p', 'esp'], ['-p', 'tcp', '--state', 'LISTEN'], ['-p', 'tcp', '--state', 'SYN_SENT2']];
    for (const args of taken) {
      for (const cmd of [['conntrack', '-E', ...args], [...CONNTRAIL, 'events', ...args]]) {
        const p = t.spawn(t.rtr, cmd);
        const o = collect(p);
        try {
          assert.ok(await waitSubscribed(p.pid!), `${cmd.join(' ')} takes it: ${o.err()}`);
        } finally {
          await t.stop(p);
        }
      }
    }
  });
  it('conntrail dump with conntrack -L\'s options prints the entries conntrack -L prints with them (-u status, zones by direction, mark, tuple)', async () => {
    const mk = (args: string[]) => t.exec(t.rtr, ['conntrack', '-I', '-s', ADDR.cli, '-d', ADDR.srv, '-t', '120', ...args]);
    mk(['-p', 'udp', '--sport', '1001', '--dport', '2001', '-u', 'ASSURED', '-m', '7']);
    mk(['-p', 'udp', '--sport', '1002', '--dport', '2002', '--orig-zone', '3']);
    mk(['-p', 'udp', '--sport', '1003', '--dport', '2003', '-u', 'SEEN_REPLY', '--reply-zone', '4']);
    mk(['-p', 'tcp', '--sport', '1004', '--dport', '80', '--state', 'ESTABLISHED', '-u', 'SEEN_REPLY,ASSURED']);
    // an SCTP entry: the XML names its state from TCP's table (SHUTDOWN_SENT prints CLOSE_WAIT), as libnetfilter_conntrack does
    mk(['-p', 'sctp', '--sport', '1005', '--dport', '80', '--state', 'SHUTDOWN_SENT', '--orig-vtag', '1', '--reply-vtag', '2']);
    try {
      const cases: string[][] = [
        ['-u', 'ASSURED'], ['-u', 'seen,ASS'], ['--orig-zone', '3'], ['--reply-zone', '4'], ['-m', '7'],
        ['-p', 'udp', '--sport', '1002'], ['-r', ADDR.srv, '-p', 'tcp'], ['-p', 'tcp', '--state', 'ESTABLISHED'], ['-o', 'id,EXT', '-s', ADDR.cli],
        ['-o', 'xml'], ['-o', 'xml,ktimestamp,extended', '-p', 'udp'], ['-o', 'xml', '-p', 'sctp'], ['-o', 'save'], ['-o', 'save,userspace', '-p', 'sctp'],
      ];
      // (the timeout column counts down, delta-time up, between the two dumps)
      const norm = (out: string) => out.split('\n').filter(Boolean).map((l) => l.replace(/^((?:ipv[46]\s+\d+\s+)?\S+\s+\d+\s+)\d+ /, '$1T ').replace(/ delta-time=\d+/, ' delta-time=D')
        .replace(/<timeout>\d+</, '<timeout>T<').replace(/<deltatime>\d+</, '<deltatime>D<').replace(/^-A -t \d+ /, '-A -t T ')).sort();
      const all = norm(t.exec(t.rtr, ['conntrack', '-L']));
      for (const args of cases) {
        const ref = norm(t.exec(t.rtr, ['conntrack', '-L', ...args]));
        const ours = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--netns', t.rtr, ...args], { encoding: 'utf8' });
        assert.equal(ours.status, 0, ours.stderr);
        assert.ok(ref.length > 0 && (args[0] === '-o' || ref.length < all.length), `${args.join(' ')}: conntrack -L shows ${ref.length} of ${all.length}`);
        assert.deepEqual(norm(ours.stdout), ref, args.join(' '));
      }
      // as conntrack: --status with -E is not an option
      const ev = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'events', '-u', 'ASSURED'], { encoding: 'utf8' });
      assert.equal(ev.status, 2, ev.stderr);
    } finally {
      t.exec(t.rtr, ['conntrack', '-F'], { allowFail: true });
    }
  });
  it('labels named by a connlabel.conf as libnetfilter_conntrack reads it (several maps; -o labels, -l), with --labelmap as conntrack\'s', async () => {
    // conntrack 1.4.7 reads /etc/xtables/connlabel.conf only: it is given each
    // map in a mount namespace of its own (a bind mount over that path)
    const dir = mkdtempSync(join(tmpdir(), 'ct-labels-'));
    const madeDir = !existsSync('/etc/xtables');
    if (madeDir) mkdirSync('/etc/xtables');
    const madeFile = !existsSync('/etc/xtables/connlabel.conf');
    if (madeFile) writeFileSync('/etc/xtables/connlabel.conf', '');
    const maps: Record<string, string> = {
      plain: '0 zero\n1 one\n2 two\n8 eight\n40 forty\n127 last\n5 five\n',
      // hex and octal bits, no blank after the number, names with spaces, a
      // bit or a name given twice (the first wins), names it takes as not sane,
      // a '#' that is not at the line's start
      corners: '# a comment\n0x1 hex one\n  02 octal two\n010 eight by octal\n2 twice\n40one\n40 again\n5 bad;name\n127 \u00fcnicode\n   # indented\n0 0 zero  \n3 # not a comment\n0x7f\n',
      dups: '1 same\n2 same\n3 other\n\t127\tlast one\t\n',
      none: '# no label here\n\n',
      // names of 600 bytes: an entry with eight of them is longer than conntrack's line buffers
      long: Array.from({ length: 9 }, (_, i) => `${i} ${String(i).repeat(3)} ${'x'.repeat(596)}\n`).join(''),
    };
    const paths: Record<string, string> = {};
    for (const [k, v] of Object.entries(maps)) writeFileSync((paths[k] = join(dir, `${k}.conf`)), v);
    const ref = (map: string, args: string[]): string[] => ['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/xtables/connlabel.conf && exec ip netns exec "$1" conntrack "$@"', paths[map], t.rtr, ...args];
    // (the labels extension exists once a rule uses labels; bits set by number)
    t.nft(t.rtr, ['table inet lbl {', ' chain setlabels {', '  type filter hook forward priority 10;',
      ...['6001 ct label set 1', '6002 ct label set 0 ct label set 2 ct label set 8', '6003 ct label set 127 ct label set 40', '6004 ct label set 5', '6006 ct label set 3 ct label set 1', `6007${[0, 1, 2, 3, 4, 5, 6, 7].map((b) => ` ct label set ${b}`).join('')}`].map((r) => `  udp dport ${r}`),
      ' }', '}', ''].join('\n'));
    // (the entries stay for the dumps after the events)
    t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '120' });
    const procs: Array<{ what: string; ref: ReturnType<typeof collect>; ours: ReturnType<typeof collect>; p: ChildProcess[] }> = [];
    try {
      for (const map of Object.keys(maps)) {
        const a = t.spawn('', ref(map, ['-E', '-o', 'labels', '-p', 'udp']));
        const b = t.spawn(t.rtr, [...CONNTRAIL, 'events', '-o', 'labels', '-p', 'udp', '--labelmap', paths[map]]);
        procs.push({ what: map, ref: collect(a), ours: collect(b), p: [a, b] });
      }
      for (const x of procs) for (const c of x.p) assert.ok(await waitSubscribed(c.pid!, 90_000), `${x.what}: not subscribed (${x.ref.err()} ${x.ours.err()})`);
      t.exec(t.cli, ['python3', '-c', `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor p in range(6001, 6008): s.sendto(b"x", ("${ADDR.srv}", p))`]);
      assert.ok(await waitFor(() => procs.every((x) => lines(x.ref.out()).length >= 7 && lines(x.ours.out()).length >= lines(x.ref.out()).length), 20000),
        procs.map((x) => `${x.what}: conntrack ${lines(x.ref.out()).length}, conntrail ${lines(x.ours.out()).length} ${x.ours.err()}`).join('\n'));
    } finally {
      for (const x of procs) for (const c of x.p) await t.stop(c);
    }
    try {
      // where conntrack cuts a line (its event buffer: 1,024 bytes), conntrail prints it whole
      const cut = (ls: string[], n: number) => ls.map((l) => l.slice(0, n));
      for (const x of procs) {
        const ours = lines(x.ours.out());
        if (x.what !== 'long') assert.deepEqual(ours, lines(x.ref.out()), `events -o labels, map ${x.what}`);
        else {
          assert.deepEqual(cut(ours, 1023), lines(x.ref.out()), 'events -o labels, long names: conntrack\'s lines are the first 1,023 bytes of conntrail\'s');
          assert.ok(ours.some((l) => l.length > 4800 && l.endsWith(`777 ${'x'.repeat(596)}`)), ours.join('\n'));
        }
      }
      // each map names differently: the lines differ between maps
      assert.notDeepEqual(lines(procs[0].ref.out()), lines(procs[1].ref.out()));
      assert.ok(lines(procs[0].ref.out()).some((l) => / labels=zero,two,eight$/.test(l)), procs[0].ref.out());
      const norm = (out: string) => out.split('\n').filter(Boolean).map((l) => l.replace(/^(\S+\s+\d+\s+)\d+ /, '$1T ').replace(/ delta-time=\d+/, ' delta-time=D')).sort();
      const dumps: Array<[string, string[]]> = [
        ['plain', ['-o', 'labels']], ['corners', ['-o', 'labels', '-p', 'udp']], ['dups', ['-o', 'labels']], ['none', ['-o', 'labels', '-p', 'udp']],
        ['plain', ['-l', 'one']], ['plain', ['-l', 'two,eight', '-o', 'labels']], ['corners', ['-l', 'hex one']], ['corners', ['-l', 'octal two', '-l', '0 zero', '-o', 'labels']],
        ['dups', ['-l', 'same', '-o', 'labels']], ['corners', ['-l', '0 zero']],
      ];
      for (const [map, args] of dumps) {
        const r = spawnSync(ref(map, ['-L', ...args])[0], ref(map, ['-L', ...args]).slice(1), { encoding: 'utf8' });
        assert.equal(r.status, 0, `conntrack -L ${args.join(' ')} (${map}): ${r.stderr}`);
        const ours = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--netns', t.rtr, '--labelmap', paths[map], ...args], { encoding: 'utf8' });
        assert.equal(ours.status, 0, ours.stderr);
        assert.ok(norm(r.stdout).length > 0, `conntrack -L ${args.join(' ')} (${map}) shows nothing`);
        assert.deepEqual(norm(ours.stdout), norm(r.stdout), `dump ${args.join(' ')}, map ${map}`);
      }
      // (and its -L buffer, 4,096 bytes: the entry with eight long names is cut there)
      const longRef = spawnSync(ref('long', ['-L', '-o', 'labels', '-p', 'udp', '--dport', '6007'])[0], ref('long', ['-L', '-o', 'labels', '-p', 'udp', '--dport', '6007']).slice(1), { encoding: 'utf8' });
      const longOurs = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--netns', t.rtr, '--labelmap', paths.long, '-o', 'labels', '-p', 'udp', '--dport', '6007'], { encoding: 'utf8' });
      assert.equal(norm(longOurs.stdout).length, 1);
      assert.ok(norm(longOurs.stdout)[0].length > 4800 && longOurs.stdout.trimEnd().endsWith(`777 ${'x'.repeat(596)}`), longOurs.stdout);
      assert.equal(longRef.stdout.split('\n')[0].length, 4095, longRef.stdout);
      assert.ok(norm(longOurs.stdout)[0].startsWith(norm(longRef.stdout)[0]), `conntrack's line is the beginning of conntrail's\n${longRef.stdout}`);
      // names it does not take are unknown to both (exit 2), in one line for conntrail
      for (const [map, name] of [['corners', 'bad;name'], ['corners', 'twice'], ['none', 'zero'], ['plain', 'nope'], ['corners', 'not a comment']]) {
        const r = spawnSync(ref(map, ['-L', '-l', name])[0], ref(map, ['-L', '-l', name]).slice(1), { encoding: 'utf8' });
        assert.equal(r.status, 2, `conntrack -l '${name}' with map ${map}: ${r.stdout}${r.stderr}`);
        const ours = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--netns', t.rtr, '--labelmap', paths[map], '-l', name], { encoding: 'utf8' });
        assert.equal(ours.status, 2, ours.stderr);
        assert.match(ours.stderr, /^conntrail: --label: unknown label '[^\n]*\n$/);
      }
      // as conntrack --labelmap: once only; a file it cannot read is named
      const twice = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--labelmap', paths.plain, '--labelmap', paths.dups], { encoding: 'utf8' });
      assert.equal(twice.status, 2);
      assert.match(twice.stderr, /can only be specified once/);
      const absent = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '-o', 'labels', '--labelmap', join(dir, 'absent.conf')], { encoding: 'utf8' });
      assert.equal(absent.status, 2);
      assert.match(absent.stderr, /--labelmap: cannot read ".*absent\.conf" \(ENOENT\)/);
    } finally {
      t.exec(t.rtr, ['nft', 'delete', 'table', 'inet', 'lbl'], { allowFail: true });
      t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '1' });
      t.exec(t.rtr, ['conntrack', '-F'], { allowFail: true });
      if (madeFile) rmSync('/etc/xtables/connlabel.conf', { force: true });
      if (madeDir) rmdirSync('/etc/xtables');
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('[USERSPACE] portid=N progname=NAME as conntrack finds it (the name up to the first \')\' of /proc/PID/stat), with --netns too', async () => {
    // a process that makes and deletes entries and holds its socket open meanwhile:
    // the name is no race here (how often a short-lived process is named is measured, see the README)
    const dir = mkdtempSync(join(tmpdir(), 'ct-prog-'));
    const go = join(dir, 'go');
    const maker = (name: string, sport: number) => ['/usr/bin/python3', '-c', [
      'import ctypes, os, time',
      'from pyroute2 import NFCTSocket',
      'from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple',
      `ctypes.CDLL(None).prctl(15, ${JSON.stringify(name)}.encode(), 0, 0, 0)`,
      'ct = NFCTSocket()',
      `o = NFCTAttrTuple(saddr="${ADDR.cli}", daddr="${ADDR.srv}", proto=17, sport=${sport}, dport=53)`,
      `r = NFCTAttrTuple(saddr="${ADDR.srv}", daddr="${ADDR.cli}", proto=17, sport=53, dport=${sport})`,
      'ct.entry("add", timeout=60, tuple_orig=o, tuple_reply=r)',
      'end = time.time() + 60',
      `while not os.path.exists(${JSON.stringify(go)}) and time.time() < end: time.sleep(0.05)`,
      'ct.entry("del", tuple_orig=o)',
      `while os.path.exists(${JSON.stringify(go)}) and time.time() < end: time.sleep(0.05)`,
    ].join('\n')];
    const procs = [
      t.spawn(t.rtr, ['conntrack', '-E', '-p', 'udp', '--dport', '53']),
      t.spawn(t.rtr, [...CONNTRAIL, 'events', '-p', 'udp', '--dport', '53']),
      t.spawn('', [...CONNTRAIL, 'events', '--netns', t.rtr, '-p', 'udp', '--dport', '53']),
    ];
    const outs = procs.map(collect);
    const makers: ChildProcess[] = [];
    try {
      for (const [i, c] of procs.entries()) assert.ok(await waitSubscribed(c.pid!, 90_000, i === 2 ? t.rtr : undefined), `${i}: not subscribed (${outs[i].err()})`);
      makers.push(t.spawn(t.rtr, maker('ct maker)x', 4001)), t.spawn(t.rtr, maker('two  spaces ', 4002)));
      assert.ok(await waitFor(() => outs.every((o) => lines(o.out()).length >= 2), 30_000), outs.map((o) => o.out() + o.err()).join('\n'));
      writeFileSync(go, '');
      assert.ok(await waitFor(() => outs.every((o) => lines(o.out()).length >= 4), 30_000), outs.map((o) => o.out() + o.err()).join('\n'));
      rmSync(go);
    } finally {
      for (const c of [...makers, ...procs]) await t.stop(c);
      rmSync(dir, { recursive: true, force: true });
    }
    const all = (o: ReturnType<typeof collect>) => o.out().split('\n').filter(Boolean);
    const ref = all(outs[0]);
    assert.equal(ref.length, 4, outs[0].out());
    assert.equal(ref.filter((l) => / \[USERSPACE\] portid=\d+ progname=ct maker$/.test(l)).length, 2, outs[0].out());
    assert.equal(ref.filter((l) => / \[USERSPACE\] portid=\d+ progname=two {2}spaces $/.test(l)).length, 2, outs[0].out());
    assert.deepEqual(all(outs[1]).sort(), [...ref].sort(), 'conntrail events in the namespace');
    assert.deepEqual(all(outs[2]).sort(), [...ref].sort(), 'conntrail events --netns');
  });
  it('the expect, dying and unconfirmed tables: dump and events print what conntrack -L / -E with them print', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ct-tables-'));
    const hold = join(dir, 'hold');
    writeFileSync(hold, '');
    // an FTP control connection on the router's loopback, through the kernel's FTP helper: its EPRT makes an expectation
    t.nft(t.rtr, ['table inet ftph {', ' ct helper ftp-std {', '  type "ftp" protocol tcp', ' }', ' chain out {', '  type filter hook output priority 0;', '  tcp dport 21 ct helper set "ftp-std"', ' }', '}', ''].join('\n'));
    const ftp = ['/usr/bin/python3', '-c', [
      'import os, socket, time',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 21)); s.listen(1)',
      'c = socket.create_connection(("127.0.0.1", 21)); a, _ = s.accept()',
      'a.sendall(b"220 hi\\r\\n"); c.recv(100)',
      'for cmd in (b"PORT 127,0,0,1,200,10\\r\\n", b"EPRT |1|127.0.0.1|6000|\\r\\n"): c.sendall(cmd); a.recv(100); a.sendall(b"200 ok\\r\\n"); c.recv(100)',
      'end = time.time() + 60',
      `while os.path.exists(${JSON.stringify(hold)}) and time.time() < end: time.sleep(0.05)`,
    ].join('\n')];
    const evCases: string[][] = [[], ['-o', 'xml'], ['-o', 'timestamp'], ['-o', 'xml,timestamp,id']];
    const pairs: Array<{ args: string[]; ref: ReturnType<typeof collect>; ours: ReturnType<typeof collect>; p: ChildProcess[] }> = [];
    // (the receipt time and the seconds left differ between the two readers)
    const norm = (out: string) => out.split('\n').filter(Boolean).map((l) => l.replace(/^\[\d+\s*\.\d+\s*\]\t/, '[T]\t').replace(/^((?:\[T\]\t)?(?:\s*\[\w+\] )?)\d+ proto=/, '$1N proto=')
      .replace(/<timeout>\d+</, '<timeout>N<').replace(/<when>.*<\/when>/, '<when/>').replace(/^((?:ipv[46]\s+\d+\s+)?[a-z0-9-]+\s+\d+\s+)\d+ /, '$1T '));
    let server: ChildProcess | undefined;
    try {
      for (const args of evCases) {
        const a = t.spawn(t.rtr, ['conntrack', '-E', 'expect', ...args]);
        const b = t.spawn(t.rtr, [...CONNTRAIL, 'events', 'expect', ...args]);
        pairs.push({ args, ref: collect(a), ours: collect(b), p: [a, b] });
      }
      for (const x of pairs) for (const c of x.p) assert.ok(await waitSubscribed(c.pid!, 90_000), `${x.args.join(' ')}: not subscribed (${x.ref.err()} ${x.ours.err()})`);
      server = t.spawn(t.rtr, ftp);
      assert.ok(await waitFor(() => t.exec(t.rtr, ['conntrack', '-L', 'expect'], { allowFail: true }).includes('helper=ftp'), 20_000), 'the FTP helper made no expectation');
      // (the helper keeps one expectation per connection: EPRT's replaces PORT's, a DESTROY between two NEWs;
      // the readers are compared once each has printed EPRT's, the last event until the end)
      const last = (x: (typeof pairs)[number]) => norm(x.ref.out()).some((l) => /dport=6000|<dport>6000</.test(l));
      assert.ok(await waitFor(() => pairs.every((x) => last(x) && norm(x.ours.out()).length >= norm(x.ref.out()).length), 20_000),
        pairs.map((x) => `${x.args.join(' ')}: conntrack ${lines(x.ref.out()).length}, conntrail ${lines(x.ours.out()).length} ${x.ours.err()}`).join('\n'));
      // the expectation table, as -L expect prints it (-f and -o only)
      for (const args of [[], ['-o', 'xml'], ['-o', 'timestamp'], ['-o', 'xml,timestamp'], ['-f', 'ipv4', '-o', 'extended'], ['-f', 'ipv6']]) {
        const ref = spawnSync('ip', ['netns', 'exec', t.rtr, 'conntrack', '-L', 'expect', ...args], { encoding: 'utf8' });
        const ours = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', 'expect', '--netns', t.rtr, ...args], { encoding: 'utf8' });
        assert.equal(ours.status, 0, ours.stderr);
        assert.equal(ref.status, 0, ref.stderr);
        if (!args.includes('ipv6')) assert.ok(norm(ref.stdout).length > 0, `conntrack -L expect ${args.join(' ')}: nothing`);
        assert.deepEqual(norm(ours.stdout), norm(ref.stdout), `dump expect ${args.join(' ')}`);
        assert.equal(ours.stderr.replace(/^conntrail: /, ''), ref.stderr.replace(/^conntrack v[\d.]+ \(conntrack-tools\): /, ''));
      }
    } finally {
      rmSync(hold, { force: true });
      if (server) await t.stop(server);
      for (const x of pairs) for (const c of x.p) await t.stop(c);
    }
    try {
      for (const x of pairs) {
        assert.ok(norm(x.ref.out()).some((l) => /dport=6000|<dport>6000</.test(l)), x.ref.out());
        assert.deepEqual(norm(x.ours.out()), norm(x.ref.out()), `events expect ${x.args.join(' ')}`);
      }
      // the dying table: entries whose DESTROY a listener that asked for reliable delivery
      // (NETLINK_BROADCAST_ERROR) could not take stay there until it is delivered
      const ready = join(dir, 'stuck');
      const stuck = t.spawn(t.rtr, ['/usr/bin/python3', '-c', [
        'import os, socket, time',
        's = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)',
        's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)',
        's.setsockopt(270, 4, 1)',
        's.bind((0, 4))',
        `open(${JSON.stringify(ready)}, "w").close()`,
        'end = time.time() + 60',
        `while os.path.exists(${JSON.stringify(ready)}) and time.time() < end: time.sleep(0.05)`,
      ].join('\n')]);
      try {
        assert.ok(await waitFor(() => existsSync(ready), 20_000), 'the stuck listener did not start');
        for (let i = 1; i <= 5; i++) {
          const tuple = ['-p', 'udp', '-s', ADDR.cli, '-d', ADDR.srv, '--sport', String(7000 + i), '--dport', '9'];
          t.exec(t.rtr, ['conntrack', '-I', ...tuple, '-t', '60']);
          t.exec(t.rtr, ['conntrack', '-D', ...tuple]);
        }
        for (const args of [['dying'], ['dying', '-p', 'udp', '--sport', '7003'], ['dy', '-o', 'xml'], ['dying', '-o', 'extended,id'], ['unconfirmed'], ['u', '-p', 'tcp']]) {
          const ref = spawnSync('ip', ['netns', 'exec', t.rtr, 'conntrack', '-L', ...args], { encoding: 'utf8' });
          const ours = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--netns', t.rtr, ...args], { encoding: 'utf8' });
          assert.equal(ours.status, 0, ours.stderr);
          if (args[0].startsWith('d')) assert.ok(norm(ref.stdout).length > 0, `conntrack -L ${args.join(' ')}: nothing`);
          // (conntrack 1.4.7 ends no XML document of these tables; conntrail ends it as for the table)
          const want = norm(ref.stdout);
          if (args.includes('xml') && want.length) want.push('</conntrack>');
          assert.deepEqual(norm(ours.stdout).sort(), want.sort(), `dump ${args.join(' ')}`);
        }
      } finally {
        rmSync(ready, { force: true });
        await t.stop(stuck);
      }
      // what conntrack refuses with these tables, conntrail refuses (exit 2, one line)
      for (const [ref, ours] of [
        [['-L', 'expect', '-s', ADDR.cli], ['dump', 'expect', '-s', ADDR.cli]], [['-L', 'expect', '-p', 'tcp'], ['dump', 'ex', '-p', 'tcp']],
        [['-L', 'expect', '-m', '1'], ['dump', 'expect', '-m', '1']], [['-E', 'expect', '-e', 'NEW'], ['events', 'expect', '-e', 'NEW']],
        [['-E', 'dying'], ['events', 'dying']], [['-L', 'nosuch'], ['dump', 'nosuch']], [['-E', 'unconfirmed'], ['events', 'un']],
      ]) {
        const r = spawnSync('ip', ['netns', 'exec', t.rtr, 'conntrack', ...ref], { encoding: 'utf8', timeout: 10_000 });
        assert.equal(r.status, 2, `conntrack ${ref.join(' ')}: ${r.stderr}`);
        const o = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), ...ours, '--netns', t.rtr], { encoding: 'utf8', timeout: 10_000 });
        assert.equal(o.status, 2, `conntrail ${ours.join(' ')}: ${o.stderr}`);
        assert.equal(o.stderr.trim().split('\n').length, 1, o.stderr);
      }
    } finally {
      t.exec(t.rtr, ['nft', 'delete', 'table', 'inet', 'ftph'], { allowFail: true });
      t.exec(t.rtr, ['conntrack', '-F'], { allowFail: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('dump -z zeroes the counters as it reads them, as conntrack -L -z (the peer\'s next dump shows them zeroed), and takes no filter, as conntrack', async () => {
    t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '120' });
    const send = (n: number) => t.exec(t.cli, ['python3', '-c', `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(("0.0.0.0", 6201))\nfor i in range(${n}): s.sendto(b"x", ("${ADDR.srv}", 6200))`]);
    const entry = (out: string) => out.split('\n').find((l) => l.includes('sport=6201 dport=6200')) ?? '';
    const packets = (l: string) => Number(/ dport=6200 packets=(\d+) /.exec(l)?.[1] ?? NaN);
    try {
      send(3);
      const ours = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--netns', t.rtr, '-z'], { encoding: 'utf8' });
      assert.equal(ours.status, 0, ours.stderr);
      assert.equal(packets(entry(ours.stdout)), 3, ours.stdout);
      // zeroed: conntrack reads 0, then 2 after two more packets, and zeroes them itself
      assert.equal(packets(entry(t.exec(t.rtr, ['conntrack', '-L']))), 0);
      send(2);
      assert.equal(packets(entry(t.exec(t.rtr, ['conntrack', '-L', '-z']))), 2);
      const after = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--netns', t.rtr, '-o', 'extended'], { encoding: 'utf8' });
      assert.match(entry(after.stdout), / dport=6200 packets=0 bytes=0 /, after.stdout);
      for (const args of [['-p', 'udp'], ['-s', ADDR.cli], ['-m', '1'], ['-u', 'ASSURED'], ['-w', '1']]) {
        const r = spawnSync('ip', ['netns', 'exec', t.rtr, 'conntrack', '-L', '-z', ...args], { encoding: 'utf8' });
        assert.equal(r.status, 2, `conntrack -L -z ${args.join(' ')}: ${r.stderr}`);
        const o = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--netns', t.rtr, '-z', ...args], { encoding: 'utf8' });
        assert.equal(o.status, 2, o.stderr);
        assert.match(o.stderr, /^conntrail: [^\n]*Can't use -z with filtering parameters[^\n]*\n$/);
      }
      // what it takes with -z, conntrack takes
      for (const args of [['-f', 'ipv4'], ['-o', 'extended'], ['--src-nat']]) {
        assert.equal(spawnSync('ip', ['netns', 'exec', t.rtr, 'conntrack', '-L', '-z', ...args], { encoding: 'utf8' }).status, 0, args.join(' '));
        assert.equal(spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), 'dump', '--netns', t.rtr, '-z', ...args], { encoding: 'utf8' }).status, 0, args.join(' '));
      }
    } finally {
      t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '1' });
      t.exec(t.rtr, ['conntrack', '-F'], { allowFail: true });
    }
  });
});
