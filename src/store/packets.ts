// Packet logs in the store: one row per packet an NFLOG source logged, the
// queries of `conntrail packets --db`, and the join between a stored flow
// and the packets logged for it. Written once for SQLite and PostgreSQL,
// like sql.ts. Every time is in µs since the epoch.
//
// A packet is joined to a flow by what both carry: the protocol, the
// namespace, the time (within the flow's possible extent), and its two
// endpoints. Whatever hook logged it (before or after NAT, either
// direction), one endpoint is the flow's inside source or its public
// (SNAT) address and the other its original destination or the inside
// (DNAT) one. A kernel with conntrack glue would give the flow's id in the
// packet; this one has none, so the join is by tuple and time, and where a
// port was reused within a flow's extent it finds each candidate (the
// answer is ambiguous, never silently one of them).
import type { PacketLog } from '../records/packet.js';
import type { Cidr } from '../util/ip.js';
import type { StoredFlow } from './store.js';
import { Params, type Built, type Dialect } from './sql.js';
import { addrOrNull, numOrNull } from './rows.js';

/** A packet as the store keeps it. */
export interface PacketRow {
  t: number;
  ns: number;
  group: number;
  hook: number;
  family: number;
  prefix: string;
  indev: string | null;
  outdev: string | null;
  proto: number | null;
  src: string | null;
  sport: number | null;
  dst: string | null;
  dport: number | null;
  len: number | null;
  tcpFlags: number | null;
  icmpType: number | null;
  icmpCode: number | null;
  mark: number | null;
  uid: number | null;
  ctId: number | null;
}

export const PACKET_COLUMNS = [
  't', 'ns', 'grp', 'hook', 'family', 'prefix', 'indev', 'outdev', 'proto', 'src', 'sport', 'dst', 'dport', 'len',
  'tcp_flags', 'icmp_type', 'icmp_code', 'mark', 'uid', 'ct_id',
] as const;
export const PACKET_COLUMN_LIST = PACKET_COLUMNS.join(', ');

/** The row of a packet log, in namespace `ns` of the store. */
export function packetRow(p: PacketLog, ns: number): PacketRow {
  const ip = p.ipVersion !== 0;
  const ifname = (idx: number, name: string) => (idx ? name || String(idx) : null);
  return {
    t: p.time, ns, group: p.group, hook: p.hook, family: p.family, prefix: p.prefix,
    indev: ifname(p.indev, p.indevName), outdev: ifname(p.outdev, p.outdevName),
    proto: p.proto >= 0 ? p.proto : null, src: ip ? p.src : null, sport: p.sport ?? null, dst: ip ? p.dst : null, dport: p.dport ?? null,
    len: ip ? p.ipLen : null, tcpFlags: p.tcpFlags ?? null, icmpType: p.icmpType ?? null, icmpCode: p.icmpCode ?? null,
    mark: p.mark ?? null, uid: p.uid ?? null, ctId: p.ct?.id ?? null,
  };
}

/** a row's values in PACKET_COLUMNS order, addresses through the dialect */
export function packetValues(r: PacketRow, addr: (a: string) => unknown): unknown[] {
  return [r.t, r.ns, r.group, r.hook, r.family, r.prefix, r.indev, r.outdev, r.proto, r.src === null ? null : addr(r.src), r.sport,
    r.dst === null ? null : addr(r.dst), r.dport, r.len, r.tcpFlags, r.icmpType, r.icmpCode, r.mark, r.uid, r.ctId];
}

/** A stored packet read back (addresses as text). */
export type StoredPacket = PacketRow;

export function rowToPacket(x: Record<string, unknown>): StoredPacket {
  const n = numOrNull;
  return {
    t: Number(x.t), ns: Number(x.ns), group: Number(x.grp), hook: Number(x.hook), family: Number(x.family), prefix: String(x.prefix),
    indev: x.indev === null ? null : String(x.indev), outdev: x.outdev === null ? null : String(x.outdev), proto: n(x.proto),
    src: addrOrNull(x.src), sport: n(x.sport), dst: addrOrNull(x.dst), dport: n(x.dport), len: n(x.len), tcpFlags: n(x.tcp_flags),
    icmpType: n(x.icmp_type), icmpCode: n(x.icmp_code), mark: n(x.mark), uid: n(x.uid), ctId: n(x.ct_id),
  };
}

export interface PacketSearch {
  since: number;
  until: number;
  /** log prefixes, each matching the prefixes that start with it */
  prefixes: string[];
  hooks: number[];
  /** in or out interface, by name */
  ifaces: string[];
  /** any of these on either side */
  hosts: Cidr[];
  /** and (each list, when given) on its own side */
  srcs: Cidr[];
  dsts: Cidr[];
  /** any of these ports on either side */
  ports: number[];
  protos: number[];
  groups: number[];
  limit?: number;
}

export type PacketTopKey = 'hosts' | 'ports' | 'pairs' | 'prefixes';

/** LIKE pattern for "starts with `s`" (with \ as the escape character) */
const likePrefix = (s: string) => s.replace(/[\\%_]/g, (c) => '\\' + c) + '%';

function packetCond(d: Dialect, s: PacketSearch, p: (v: unknown) => string): string {
  const c = [`t >= ${p(s.since)}`, `t <= ${p(s.until)}`];
  const any = (parts: string[]) => { if (parts.length) c.push(`(${parts.join(' OR ')})`); };
  any(s.prefixes.map((x) => `prefix LIKE ${p(likePrefix(x))} ESCAPE '\\'`));
  if (s.hooks.length) c.push(`hook IN (${s.hooks.map((h) => p(h)).join(', ')})`);
  if (s.groups.length) c.push(`grp IN (${s.groups.map((g) => p(g)).join(', ')})`);
  any(s.ifaces.flatMap((i) => { const ph = p(i); return [`indev = ${ph}`, `outdev = ${ph}`]; }));
  any(s.hosts.flatMap((h) => [d.inCidr('src', h, p), d.inCidr('dst', h, p)]));
  any(s.srcs.map((h) => d.inCidr('src', h, p)));
  any(s.dsts.map((h) => d.inCidr('dst', h, p)));
  any(s.ports.flatMap((x) => { const ph = p(x); return [`sport = ${ph}`, `dport = ${ph}`]; }));
  if (s.protos.length) c.push(`proto IN (${s.protos.map((x) => p(x)).join(', ')})`);
  return c.join(' AND ');
}

/** the newest `limit` matches, newest first */
export function packetSearchQuery(d: Dialect, s: PacketSearch): Built {
  const P = new Params(d);
  const sql = `SELECT ${PACKET_COLUMN_LIST} FROM packets WHERE ${packetCond(d, s, P.p)} ORDER BY t DESC, id DESC` +
    (s.limit !== undefined ? ` LIMIT ${P.p(s.limit)}` : '');
  return { sql, values: P.values };
}

export interface PacketTopRow { key: string; packets: number; bytes: number }

export function packetTopQuery(d: Dialect, s: PacketSearch, key: PacketTopKey, limit: number): Built {
  const P = new Params(d);
  const group = key === 'hosts' ? 'src' : key === 'ports' ? 'proto, dport' : key === 'pairs' ? 'src, dst' : 'prefix';
  const sql = `SELECT ${group}, COUNT(*) AS packets, SUM(COALESCE(len, 0)) AS bytes FROM packets WHERE ${packetCond(d, s, P.p)} ` +
    `GROUP BY ${group} ORDER BY packets DESC, bytes DESC LIMIT ${P.p(limit)}`;
  return { sql, values: P.values };
}

/**
 * A flow's first packet is logged before its conntrack entry is confirmed
 * (the flow's start, which is later), and its timestamp is when it arrived:
 * measured here, 40 µs before the start of a forwarded UDP flow. Packets
 * this long before a flow's start still count as its own.
 */
export const JOIN_BEFORE_US = 1_000_000;

/** the most packets shown for one flow */
export const FLOW_PACKETS_LIMIT = 10_000;

/**
 * The packets logged for a stored flow: same namespace and protocol, within
 * its possible extent, endpoints as described at the top of this file.
 */
export function flowPacketsQuery(d: Dialect, f: StoredFlow, now: number): Built {
  const P = new Params(d);
  const { p } = P;
  const withPort = f.proto !== 1 && f.proto !== 58;
  const ends = (pairs: Array<[string | null, number | null]>) => pairs.filter(([a]) => a !== null) as Array<[string, number | null]>;
  const A = ends([[f.src, f.sport], [f.natSrc, f.natSport]]);
  const B = ends([[f.dst, f.dport], [f.natDst, f.natDport]]);
  const is = (side: 'src' | 'dst', [a, port]: [string, number | null]) => {
    const c = [d.addrEq(side, p(d.addr(a)))];
    if (withPort && port !== null) c.push(`${side === 'src' ? 'sport' : 'dport'} = ${p(port)}`);
    return c.join(' AND ');
  };
  const branches: string[] = [];
  for (const a of A) for (const b of B) branches.push(`(${is('src', a)} AND ${is('dst', b)})`, `(${is('src', b)} AND ${is('dst', a)})`);
  const lo = f.startErr >= Number.MAX_SAFE_INTEGER ? 0 : f.start - f.startErr - JOIN_BEFORE_US;
  const hi = f.end ?? now;
  const sql = `SELECT ${PACKET_COLUMN_LIST} FROM packets WHERE t >= ${p(lo)} AND t <= ${p(hi)} AND ns = ${p(f.ns)} AND proto = ${p(f.proto)} ` +
    `AND (${branches.join(' OR ')}) ORDER BY t, id LIMIT ${p(FLOW_PACKETS_LIMIT)}`;
  return { sql, values: P.values };
}
