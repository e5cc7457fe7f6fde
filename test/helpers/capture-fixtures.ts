// Captures ctnetlink messages from the real kernel, together with what the
// real `conntrack -E` / `conntrack -L` printed for them, into test/fixtures/.
// Run as root: node dist/test/helpers/capture-fixtures.js [scenario...]
// The unit tests replay these files; re-run this to refresh them.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../../src/netlink/native.js';
import { NETLINK_NETFILTER } from '../../src/netlink/constants.js';
import { dumpRequest } from '../../src/sources/conntrack/socket.js';
import { nowMicros } from '../../src/util/time.js';
import { ADDR, collect, Topology, waitFor, waitSubscribed, writeFileOnce } from './netns.js';
import { splitMessages, writeFixture, type RawMessage } from './fixtures.js';
import { gre, ping, reapExpired, sctp, shortTimeouts, tcp, udp } from './traffic.js';

const FIXTURES = join(process.cwd(), 'test', 'fixtures');
export const FIXTURE_OUTPUT = 'extended,id,ktimestamp,labels';

interface Scenario {
  name: string;
  acct?: boolean;
  timestamp?: boolean;
  nft?: (t: Topology) => string;
  traffic: (t: Topology) => Promise<void>;
  dump?: boolean;
  /** a connlabel.conf to put in place while capturing (conntrack prints label names only with one) */
  labels?: string;
}

export const LABEL_CONF = '/etc/xtables/connlabel.conf';

const natRules = (t: Topology, extra = '') => `table inet ctt {
  chain prerouting { type nat hook prerouting priority -100; ${extra} }
  chain forward { type filter hook forward priority 0; policy accept; }
  chain postrouting { type nat hook postrouting priority 100; oifname "${t.prefix}r1" masquerade; }
}`;

export const SCENARIOS: Scenario[] = [
  {
    name: 'ipv4-masq-acct-ts',
    traffic: async (t) => { await tcp(t, 8080); await udp(t, 5353); ping(t); },
  },
  {
    name: 'ipv6-masq-acct-ts',
    traffic: async (t) => { await tcp(t, 8080, true); await udp(t, 5353, true); ping(t, true); },
  },
  {
    name: 'ipv4-no-acct-no-ts',
    acct: false,
    timestamp: false,
    traffic: async (t) => { await tcp(t, 8080); await udp(t, 5353, false, false); ping(t); },
  },
  {
    name: 'snat-dnat',
    nft: (t) => `table ip ctt {
  chain prerouting { type nat hook prerouting priority -100; ip daddr ${ADDR.rtrIn} tcp dport 80 dnat to ${ADDR.srv}:8080; }
  chain postrouting { type nat hook postrouting priority 100; oifname "${t.prefix}r1" udp dport 5353 snat to ${ADDR.rtrOut}:40000-40009; }
}`,
    traffic: async (t) => { await tcp(t, 8080, false, 'x\n', ADDR.rtrIn, 80); await udp(t, 5353); },
  },
  {
    name: 'sctp-gre-zone-mark-labels',
    nft: (t) => `${natRules(t)}
table ip ctz {
  chain pre { type filter hook prerouting priority -300; udp dport 7777 ct zone set 5; }
  chain fw { type filter hook forward priority 0; udp dport 7777 ct mark set 0x10 ct label set 3; }
}`,
    labels: '# test labels\n3 blue\n4 green\n',
    traffic: async (t) => { gre(t); sctp(t, 5000, 6000); await udp(t, 7777, false, false); },
  },
  {
    name: 'dump',
    timestamp: false,
    dump: true,
    traffic: async (t) => { ping(t, true); await tcp(t, 8080); await udp(t, 5353); ping(t); ping(t, true); },
  },
];

function rawCapture(ns: string, groups: number[]) {
  const sock = new (native().NetlinkSocket)({ protocol: NETLINK_NETFILTER, netns: ns });
  sock.setRcvbuf(8 << 20);
  for (const g of groups) sock.addMembership(g);
  const msgs: RawMessage[] = [];
  let buf: Buffer;
  buf = sock.start((len) => {
    const t = nowMicros();
    for (const m of splitMessages(buf, len)) msgs.push({ bytes: m, recvTime: t });
  }, (e) => { throw e; });
  return { sock, msgs };
}

async function rawDump(ns: string): Promise<RawMessage[]> {
  const sock = new (native().NetlinkSocket)({ protocol: NETLINK_NETFILTER, netns: ns });
  const msgs: RawMessage[] = [];
  await new Promise<void>((resolve) => {
    let buf: Buffer;
    buf = sock.start((len) => {
      const t = nowMicros();
      for (const m of splitMessages(buf, len)) {
        if (m.readUInt16LE(4) === 3) { resolve(); return; }
        msgs.push({ bytes: m, recvTime: t });
      }
    }, () => resolve());
    sock.send(dumpRequest());
  });
  sock.close();
  return msgs;
}

export async function capture(s: Scenario): Promise<void> {
  const t = new Topology('fx');
  const env = { ...process.env, TZ: 'UTC' };
  let wroteLabels = false;
  try {
    if (s.labels) {
      mkdirSync('/etc/xtables', { recursive: true });
      wroteLabels = writeFileOnce(LABEL_CONF, s.labels);
      if (!wroteLabels) throw new Error(`${LABEL_CONF} exists: move it away to capture ${s.name}`);
      writeFileSync(join(FIXTURES, `${s.name}.labels`), s.labels);
    }
    t.up({ acct: s.acct, timestamp: s.timestamp, nft: s.nft?.(t) });
    shortTimeouts(t);
    if (s.dump) t.sysctl(t.rtr, { 'net.netfilter.nf_conntrack_udp_timeout': '30', 'net.netfilter.nf_conntrack_icmp_timeout': '30', 'net.netfilter.nf_conntrack_icmpv6_timeout': '30', 'net.netfilter.nf_conntrack_tcp_timeout_time_wait': '30' });
    const ref = t.spawn(t.rtr, ['conntrack', '-E', '-o', FIXTURE_OUTPUT], { env });
    const refOut = collect(ref);
    await waitSubscribed(ref.pid!);
    const cap = rawCapture(t.rtr, [1, 2, 3]);
    await s.traffic(t);
    if (s.dump) {
      const msgs = await rawDump(t.rtr);
      const list = t.exec(t.rtr, ['env', 'TZ=UTC', 'conntrack', '-L', '-o', 'extended,id']);
      writeFixture(join(FIXTURES, `${s.name}.bin`), msgs);
      writeFileSync(join(FIXTURES, `${s.name}.txt`), list);
    } else {
      await reapExpired(t);
      await waitFor(() => {
        const n = refOut.out().split('\n').filter(Boolean).length;
        return n > 0 && n === cap.msgs.length;
      });
      await new Promise((r) => setTimeout(r, 300));
      writeFixture(join(FIXTURES, `${s.name}.bin`), cap.msgs);
      writeFileSync(join(FIXTURES, `${s.name}.txt`), refOut.out());
    }
    cap.sock.close();
    await t.stop(ref);
    console.log(`${s.name}: ${cap.msgs.length} event messages`);
  } finally {
    if (wroteLabels) rmSync(LABEL_CONF);
    t.down();
  }
}

if (process.argv[1]?.endsWith('capture-fixtures.js')) {
  mkdirSync(FIXTURES, { recursive: true });
  const want = process.argv.slice(2);
  for (const s of SCENARIOS) if (!want.length || want.includes(s.name)) await capture(s);
}
