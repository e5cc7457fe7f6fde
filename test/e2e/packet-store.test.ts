// Packet logs in both stores (SQLite and a real PostgreSQL), the same
// queries on each: search by time, prefix, hook, interface, CIDR, port and
// protocol; --top; the join from a flow to its packets through SNAT and
// DNAT, on either side of the translation and in both directions (and not
// to a packet of another flow, another namespace or another time);
// retention; a spool written before packets existed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { emptyBatch, normalizeBatch, type FlowStore, type StoredFlow } from '../../src/store/store.js';
import type { PacketRow, PacketSearch } from '../../src/store/packets.js';
import type { FlowRecord } from '../../src/records/flow.js';
import { parseCidr } from '../../src/util/ip.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';

const S = 1_000_000;
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0) * 1000;

const pkt = (o: Partial<PacketRow>): PacketRow => ({
  t: T0, ns: 0, group: 32, hook: 2, family: 2, prefix: 'sg-accept: ', indev: 'eth0', outdev: 'eth1', proto: 6, src: '10.0.0.2', sport: 50000,
  dst: '198.51.100.9', dport: 443, len: 60, tcpFlags: 0x02, icmpType: null, icmpCode: null, mark: null, uid: null, ctId: null, ...o,
});
let key = 1;
const flowRec = (o: Partial<FlowRecord>): FlowRecord => ({
  key: key++, start: T0, startErr: 0, end: T0 + 10 * S, endErr: 0, activeEnd: T0 + 10 * S, family: 4, proto: 6, src: '10.0.0.2', sport: 50000,
  dst: '198.51.100.9', dport: 443, natSrc: '203.0.113.1', natSport: 40001, natDst: null, natDport: null, origPackets: 5, origBytes: 500,
  replyPackets: 4, replyBytes: 4000, state: 7, mark: 0, zone: 0, status: 0x18e, ctId: 1, flags: 0, ns: 0, ...o,
});
const stored = (r: FlowRecord): StoredFlow => { const { key: _k, family: _f, ...rest } = r; return rest; };
const search = (o: Partial<PacketSearch>): PacketSearch => ({
  since: 0, until: T0 * 2, prefixes: [], hooks: [], ifaces: [], hosts: [], srcs: [], dsts: [], ports: [], protos: [], groups: [], ...o,
});

// the SNAT flow 10.0.0.2:50000 -> 198.51.100.9:443, public 203.0.113.1:40001
const PACKETS: PacketRow[] = [
  // forward, original direction (after DNAT, before SNAT): inside -> remote
  pkt({ t: T0 + 1000 }),
  // postrouting, after SNAT: public -> remote
  pkt({ t: T0 + 2000, hook: 4, src: '203.0.113.1', sport: 40001, prefix: 'post: ' }),
  // reply before de-SNAT (prerouting): remote -> public
  pkt({ t: T0 + 3000, hook: 0, src: '198.51.100.9', sport: 443, dst: '203.0.113.1', dport: 40001, prefix: 'pre: ', tcpFlags: 0x12 }),
  // reply in forward (after de-SNAT): remote -> inside
  pkt({ t: T0 + 4000, src: '198.51.100.9', sport: 443, dst: '10.0.0.2', dport: 50000, prefix: 'sg-accept: ', tcpFlags: 0x10 }),
  // the first packet, timestamped 40 µs before its entry was confirmed (the flow's start)
  pkt({ t: T0 - 40, prefix: 'first: ' }),
  // not this flow: another source port, another namespace, long after it ended, another protocol
  pkt({ t: T0 + 5000, sport: 50001, prefix: 'sg-drop: ' }),
  pkt({ t: T0 + 5000, ns: 1, prefix: 'other-ns: ' }),
  pkt({ t: T0 + 60 * S, prefix: 'later: ' }),
  pkt({ t: T0 + 5000, proto: 17, prefix: 'udp: ', tcpFlags: null }),
  // IPv6 and ICMP
  pkt({ t: T0 + 6000, family: 10, src: 'fd00::2', dst: '2001:db8::9', sport: 1234, dport: 22, prefix: 'v6: ' }),
  pkt({ t: T0 + 7000, proto: 1, sport: null, dport: null, tcpFlags: null, icmpType: 8, icmpCode: 0, prefix: 'ping: ', indev: 'wg0' }),
];

function suite(name: string, open: () => Promise<FlowStore>): void {
  describe(`packet logs in ${name}`, () => {
    let s: FlowStore;
    const snat = flowRec({});
    before(async () => {
      s = await open();
      await s.namespaceId('');
      const w = await s.write({ ...emptyBatch(), id: `${name}-1`, packets: PACKETS, closed: [snat] });
      assert.equal(w.packets, PACKETS.length);
      // a batch spooled by a version before packets (no `packets` list) still applies
      const old = JSON.parse(JSON.stringify({ ...emptyBatch(), id: `${name}-2` })) as Record<string, unknown>;
      delete old.packets;
      assert.equal((await s.write(normalizeBatch(old))).packets, undefined);
    });
    after(async () => { await s.close(); });

    it('searches by time, prefix, hook, interface, CIDR, port and protocol, newest first', async () => {
      const prefixes = async (o: Partial<PacketSearch>) => (await s.packets(search(o))).map((p) => p.prefix);
      assert.equal((await s.packets(search({}))).length, PACKETS.length);
      assert.deepEqual(await prefixes({ prefixes: ['sg-'] }), ['sg-drop: ', 'sg-accept: ', 'sg-accept: ']);
      // LIKE's own characters are literal in a prefix
      assert.deepEqual(await prefixes({ prefixes: ['sg_'] }), []);
      assert.deepEqual(await prefixes({ hooks: [0, 4] }), ['pre: ', 'post: ']);
      assert.deepEqual(await prefixes({ ifaces: ['wg0'] }), ['ping: ']);
      assert.deepEqual(await prefixes({ hosts: [parseCidr('203.0.113.0/24')] }), ['pre: ', 'post: ']);
      assert.deepEqual(await prefixes({ srcs: [parseCidr('fd00::/64')] }), ['v6: ']);
      assert.deepEqual(await prefixes({ dsts: [parseCidr('2001:db8::9')], ports: [22] }), ['v6: ']);
      assert.deepEqual(await prefixes({ protos: [17, 1] }), ['ping: ', 'udp: ']);
      assert.deepEqual(await prefixes({ since: T0 + 59 * S }), ['later: ']);
      assert.deepEqual(await prefixes({ until: T0, groups: [32] }), ['first: ']);
      assert.equal((await s.packets(search({ limit: 2 }))).length, 2);
      const p = (await s.packets(search({ prefixes: ['pre'] })))[0];
      assert.deepEqual(p, { ...PACKETS[2], ns: 0 });
    });

    it('--top prefixes, hosts and ports', async () => {
      const top = await s.packetTop(search({}), 'prefixes', 3);
      assert.deepEqual(top[0], { key: '"sg-accept: "', packets: 2, bytes: 120 });
      const hosts = await s.packetTop(search({ prefixes: ['pre', 'post'] }), 'hosts', 10);
      assert.deepEqual(hosts.map((h) => h.key).sort(), ['198.51.100.9', '203.0.113.1']);
      const ports = await s.packetTop(search({ protos: [6], since: T0 + 1, until: T0 + 5000 }), 'ports', 10);
      assert.deepEqual(ports.map((x) => `${x.key}=${x.packets}`).sort(), ['40001/tcp=1', '443/tcp=4', '50000/tcp=1']);
    });

    it('a flow finds its packets on both sides of the translation, in both directions, and no other flow\'s', async () => {
      const got = (await s.flowPackets(stored(snat))).map((p) => p.prefix);
      assert.deepEqual(got, ['first: ', 'sg-accept: ', 'post: ', 'pre: ', 'sg-accept: ']);
      // a DNAT flow (a port forward): public 203.0.113.1:443 -> inside 10.0.0.7:8443
      const dnat = flowRec({ src: '198.51.100.20', sport: 3333, dst: '203.0.113.1', dport: 443, natSrc: null, natSport: null, natDst: '10.0.0.7', natDport: 8443 });
      await s.write({
        ...emptyBatch(), id: `${name}-3`, closed: [dnat], packets: [
          pkt({ t: T0 + 100, hook: 0, src: '198.51.100.20', sport: 3333, dst: '203.0.113.1', dport: 443, prefix: 'fwd-pre: ' }),
          pkt({ t: T0 + 200, src: '198.51.100.20', sport: 3333, dst: '10.0.0.7', dport: 8443, prefix: 'fwd: ' }),
          pkt({ t: T0 + 300, src: '10.0.0.7', sport: 8443, dst: '198.51.100.20', dport: 3333, prefix: 'fwd-reply: ' }),
          pkt({ t: T0 + 400, src: '10.0.0.7', sport: 8444, dst: '198.51.100.20', dport: 3333, prefix: 'not-it: ' }),
        ],
      });
      assert.deepEqual((await s.flowPackets(stored(dnat))).map((p) => p.prefix), ['fwd-pre: ', 'fwd: ', 'fwd-reply: ']);
      // an ICMP flow matches by addresses
      const icmp = flowRec({ proto: 1, sport: null, dport: null, natSrc: null, natSport: null });
      assert.deepEqual((await s.flowPackets(stored(icmp))).map((p) => p.prefix), ['ping: ']);
    });

    it('retention deletes packets older than the cutoff, in steps', async () => {
      // older: the first packet, the forward one at +1000, the four of the port forward
      assert.equal(await s.expirePackets(T0 + 1500, 2), 2);
      assert.equal(await s.expirePackets(T0 + 1500, 2), 2);
      assert.equal(await s.expirePackets(T0 + 1500, 2), 2);
      assert.equal(await s.expirePackets(T0 + 1500, 2), 0);
      assert.deepEqual(await s.packets(search({ until: T0 + 1499 })), []);
      assert.ok((await s.packets(search({}))).length > 0);
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'conntrail-pstore-'));
after(() => rmSync(dir, { recursive: true, force: true }));
suite('SQLite', async () => new SqliteStore({ path: join(dir, 'p.db') }));

let pg: Postgres | undefined;
after(async () => { await pg?.stop(); });
suite('PostgreSQL', async () => {
  pg = await startPostgres();
  return new PostgresStore({ url: pg.url });
});
