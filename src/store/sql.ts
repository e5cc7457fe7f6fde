// The flow store's logical schema and every query, written once for SQLite
// and PostgreSQL. Values always travel as parameters; a Dialect only says how
// a placeholder, an address and a CIDR test are spelled.
//
// Tables (same columns in both stores); every time is in µs since the epoch:
//   flows       one row per ended flow: start, dur (to the latest possible
//               end), adur (to the latest possible end of activity), serr
//               (how much earlier it may have begun), eerr (how much
//               earlier it may have ended)
//   long_flows  a copy of the flows whose possible extent (serr + dur) is
//               LONG_FLOW_US or more, so a question about an instant needs
//               to look only that far around it in `flows`
//   open_flows  the current table: flows open now (dur is NULL), keyed by
//               the daemon's flow key
//   runs        each run of the daemon: when it started, was last known
//               alive, stopped (what the trail covers)
//   gaps        times events were lost (an overrun): flows may be missing
//   batches     the batches applied (each once)
//   packets     packet logs of NFLOG sources (store/packets.ts)
//   tcp_states  TCP state changes of tcpstates sources (store/tcpstates.ts)
//   aggregates  aggregated flow records of stages with store = true (store/aggregates.ts)
import type { Cidr } from '../util/ip.js';

export const SCHEMA_VERSION = 7;
/** flows whose possible extent is at least this long are also kept in long_flows */
export const LONG_FLOW_US = 600_000_000;
/**
 * Every index on `flows` leads with the minute the flow started
 * (start / BUCKET_US): new rows land in a small, hot part of each index
 * instead of all over it, which keeps ingest fast as the store grows. A
 * query lists the minutes it covers (a recursive CTE) and seeks each.
 */
export const BUCKET_US = 60_000_000;
export const BUCKET = `start / ${BUCKET_US}`;

/**
 * The indexes of the three flow tables, the same in both stores; `expr`
 * spells an expression as an index key (PostgreSQL wants it in parentheses).
 */
export function indexDdl(expr: (e: string) => string): string {
  const b = expr(BUCKET);
  return `CREATE INDEX flows_src ON flows (${b}, src);
   CREATE INDEX flows_dst ON flows (${b}, dst, dport);
   CREATE INDEX flows_nat_src ON flows (${b}, nat_src, nat_sport) WHERE nat_src IS NOT NULL;
   CREATE INDEX flows_nat_dst ON flows (${b}, nat_dst) WHERE nat_dst IS NOT NULL;
   CREATE INDEX long_flows_end ON long_flows (${expr('start + dur')});
   CREATE INDEX long_flows_src ON long_flows (src, start);
   CREATE INDEX long_flows_dst ON long_flows (dst, dport, start);
   CREATE INDEX long_flows_nat_src ON long_flows (nat_src, nat_sport, start) WHERE nat_src IS NOT NULL;
   CREATE INDEX long_flows_nat_dst ON long_flows (nat_dst, start) WHERE nat_dst IS NOT NULL;
   CREATE INDEX open_flows_src ON open_flows (src);
   CREATE INDEX open_flows_dst ON open_flows (dst, dport);
   CREATE INDEX open_flows_nat_src ON open_flows (nat_src, nat_sport);
   CREATE INDEX open_flows_nat_dst ON open_flows (nat_dst);`;
}

/** The minutes a query must visit, clamped to those that hold flows. */
export interface Buckets { lo: number; hi: number }

/** the stored columns, in insert order */
export const COLUMNS = [
  'start', 'dur', 'adur', 'serr', 'eerr', 'proto', 'src', 'sport', 'dst', 'dport', 'nat_src', 'nat_sport', 'nat_dst', 'nat_dport',
  'opkts', 'obytes', 'rpkts', 'rbytes', 'state', 'mark', 'zone', 'status', 'ct_id', 'flags', 'ns',
] as const;
export const COLUMN_LIST = COLUMNS.join(', ');

/** Does a flow of this possible extent belong in long_flows too? */
export function isLong(r: { start: number; startErr: number; end: number | null }): boolean {
  return r.end !== null && r.end - r.start + r.startErr >= LONG_FLOW_US;
}

export interface Dialect {
  name: 'sqlite' | 'postgres';
  /** placeholder for the n-th parameter (1-based) */
  ph(n: number): string;
  /** an address value as a parameter */
  addr(text: string): unknown;
  /** SQL testing `col` for being in the CIDR, with parameters added through `p` */
  inCidr(col: string, c: Cidr, p: (v: unknown) => string): string;
  /** SQL testing `col` for equality with an address parameter */
  addrEq(col: string, param: string): string;
}

/** Collects parameters and hands out placeholders. */
export class Params {
  readonly values: unknown[] = [];
  constructor(private readonly d: Dialect) {}
  p = (v: unknown): string => { this.values.push(v); return this.d.ph(this.values.length); };
}

export interface AddrPort { addr: string; port?: number }

/** A time window, µs: flows that may have existed at some instant in [since, until]. */
export interface Window {
  since: number;
  until: number;
  /** the first and last start minute in the store (from FlowReader.bounds), to clamp the minutes visited */
  bounds?: Buckets;
}

export type Side = 'src' | 'dst' | 'nat_src' | 'nat_dst';
export const ALL_SIDES: Side[] = ['src', 'dst', 'nat_src', 'nat_dst'];
const PORT_OF: Record<Side, string> = { src: 'sport', dst: 'dport', nat_src: 'nat_sport', nat_dst: 'nat_dport' };

export interface FlowSearch {
  window: Window;
  /** any of these (address or CIDR) on any of `sides` */
  hosts: Cidr[];
  sides: Side[];
  /** more host conditions that must hold too, each like `hosts`/`sides`
   * (`--src A --dst B`: the first is searched by index, these filter) */
  also?: Array<{ hosts: Cidr[]; sides: Side[] }>;
  /** any of these ports on any side (after the host sides when hosts are given) */
  ports: number[];
  protos: number[];
  /** only flows of these namespaces (the store's ids) */
  nsIds?: number[];
  nat: Array<'none' | 'snat' | 'dnat' | 'both'>;
  minBytes?: number;
  limit?: number;
}

type FlowSet = 'main' | 'long' | 'open';

/**
 * The three places a flow can be, each searched with the same conditions.
 * `cond(range)` gets the set's start-time range and must include it: once,
 * or inside each branch of an OR (each branch then seeks its own index).
 * A flow may have existed in the window when it may have begun before its
 * end (start - serr <= until) and may have ended after its start
 * (start + dur >= since).
 */
function threeSets(cols: string, cond: (range: string) => string, w: Window, p: (v: unknown) => string): string {
  // ended flows whose possible extent is shorter than LONG_FLOW_US started
  // within that of the window; the rest come from long_flows
  const lo = w.since - LONG_FLOW_US;
  const hi = w.until + LONG_FLOW_US;
  const parts: string[] = [];
  for (const set of ['main', 'long', 'open'] as FlowSet[]) {
    const range = set === 'main' ? `${BUCKET} IN (SELECT x FROM buckets) AND start >= ${p(lo)} AND start <= ${p(hi)}`
      : set === 'long' ? `(start < ${p(lo)} OR start > ${p(hi)})` : `start - serr <= ${p(w.until)}`;
    const table = set === 'main' ? 'flows' : set === 'long' ? 'long_flows' : 'open_flows';
    const extent = set === 'open' ? '' : ` AND start - serr <= ${p(w.until)} AND start + dur >= ${p(w.since)}`;
    parts.push(`SELECT ${cols} FROM ${table} WHERE ${cond(range)}${extent}`);
  }
  return parts.join(' UNION ALL ');
}

/** The WITH clause listing the minutes the main set visits. */
function bucketsCte(w: Window, p: (v: unknown) => string): string {
  let lo = Math.floor((w.since - LONG_FLOW_US) / BUCKET_US);
  let hi = Math.floor((w.until + LONG_FLOW_US) / BUCKET_US);
  if (w.bounds) { lo = Math.max(lo, w.bounds.lo); hi = Math.min(hi, w.bounds.hi); }
  // (a plain "$n + 0": a CAST would give the list an affinity that keeps
  // SQLite from seeking the index with it)
  return `WITH RECURSIVE buckets(x) AS (SELECT ${p(lo)} + 0 UNION ALL SELECT x + 1 FROM buckets WHERE x < ${p(hi)} + 0) `;
}

export const OUT_COLS = `${COLUMN_LIST}`;

export interface Built { sql: string; values: unknown[] }

/**
 * `who`: flows in which ADDR[:PORT] was the public side of a translation
 * (SNAT: the translated source; DNAT: the original destination) that may
 * have existed at some instant of the window (the caller judges which were
 * active when).
 */
/** the most rows `who` reads; more (a busy address over a wide window) and it says it could not judge */
export const WHO_LIMIT = 100_000;

export function whoQuery(d: Dialect, pub: AddrPort, w: Window, proto: number | undefined, remote: AddrPort | undefined, nsIds?: number[]): Built {
  const P = new Params(d);
  const { p } = P;
  const branch = (kind: 'snat' | 'dnat'): string => {
    const c: string[] = [];
    if (kind === 'snat') {
      c.push(d.addrEq('nat_src', p(d.addr(pub.addr))));
      if (pub.port !== undefined) c.push(`nat_sport = ${p(pub.port)}`);
      if (remote) {
        c.push(d.addrEq('dst', p(d.addr(remote.addr))));
        if (remote.port !== undefined) c.push(`dport = ${p(remote.port)}`);
      }
    } else {
      c.push(d.addrEq('dst', p(d.addr(pub.addr))));
      if (pub.port !== undefined) c.push(`dport = ${p(pub.port)}`);
      c.push('nat_dst IS NOT NULL');
      if (remote) {
        c.push(d.addrEq('src', p(d.addr(remote.addr))));
        if (remote.port !== undefined) c.push(`sport = ${p(remote.port)}`);
      }
    }
    if (proto !== undefined) c.push(`proto = ${p(proto)}`);
    if (nsIds) c.push(`ns IN (${nsIds.map((x) => p(x)).join(', ')})`);
    return threeSets(OUT_COLS, (range) => [...c, range].join(' AND '), w, p);
  };
  const cte = bucketsCte(w, p);
  return { sql: `${cte}${branch('snat')} UNION ALL ${branch('dnat')} ORDER BY start LIMIT ${WHO_LIMIT}`, values: P.values };
}

/** conditions of a flow search, without the time window */
function searchCond(d: Dialect, s: FlowSearch, p: (v: unknown) => string, range: string): string {
  const c: string[] = [];
  if (s.hosts.length) {
    const any: string[] = [];
    for (const h of s.hosts) for (const side of s.sides) any.push(`(${d.inCidr(side, h, p)} AND ${range})`);
    c.push(`(${any.join(' OR ')})`);
  }
  for (const g of s.also ?? []) {
    c.push(`(${g.hosts.flatMap((h) => g.sides.map((side) => d.inCidr(side, h, p))).join(' OR ')})`);
  }
  if (s.ports.length) {
    const any: string[] = [];
    const sides = s.hosts.length ? s.sides : ALL_SIDES;
    for (const port of s.ports) {
      const ph = p(port);
      for (const side of sides) any.push(`${PORT_OF[side]} = ${ph}`);
    }
    c.push(`(${any.join(' OR ')})`);
  }
  if (s.protos.length) c.push(`proto IN (${s.protos.map((x) => p(x)).join(', ')})`);
  if (s.nsIds) c.push(`ns IN (${s.nsIds.map((x) => p(x)).join(', ')})`);
  if (s.nat.length) {
    const k: string[] = [];
    for (const n of s.nat) {
      if (n === 'none') k.push('(nat_src IS NULL AND nat_dst IS NULL)');
      if (n === 'snat') k.push('(nat_src IS NOT NULL AND nat_dst IS NULL)');
      if (n === 'dnat') k.push('(nat_src IS NULL AND nat_dst IS NOT NULL)');
      if (n === 'both') k.push('(nat_src IS NOT NULL AND nat_dst IS NOT NULL)');
    }
    c.push(`(${k.join(' OR ')})`);
  }
  if (s.minBytes !== undefined) c.push(`COALESCE(obytes, 0) + COALESCE(rbytes, 0) >= ${p(s.minBytes)}`);
  if (!s.hosts.length) c.push(range);
  return c.join(' AND ');
}

/** the newest `limit` matches, newest first */
export function searchQuery(d: Dialect, s: FlowSearch): Built {
  const P = new Params(d);
  const sql = `${bucketsCte(s.window, P.p)}${threeSets(OUT_COLS, (range) => searchCond(d, s, P.p, range), s.window, P.p)} ORDER BY start DESC` +
    (s.limit !== undefined ? ` LIMIT ${P.p(s.limit)}` : '');
  return { sql, values: P.values };
}

export type TopKey = 'hosts' | 'ports' | 'pairs';

/**
 * `--top`: the biggest inside/outside hosts, destination ports or host
 * pairs by bytes or flows. A host is the original source (who opened the
 * flow); a pair is source and destination; a port is the original
 * destination port.
 */
export function topQuery(d: Dialect, s: FlowSearch, key: TopKey, by: 'bytes' | 'flows', limit: number): Built {
  const P = new Params(d);
  const inner = threeSets(OUT_COLS, (range) => searchCond(d, s, P.p, range), s.window, P.p);
  // (a host is an address in a namespace: 10.0.0.5 of two routers is two rows)
  const group = key === 'hosts' ? 'ns, src' : key === 'ports' ? 'proto, dport' : 'ns, src, dst';
  const order = by === 'bytes' ? 'bytes DESC, flows DESC' : 'flows DESC, bytes DESC';
  const sql = `${bucketsCte(s.window, P.p)}SELECT ${group}, COUNT(*) AS flows, SUM(COALESCE(obytes, 0) + COALESCE(rbytes, 0)) AS bytes, ` +
    `SUM(COALESCE(opkts, 0) + COALESCE(rpkts, 0)) AS packets FROM (${inner}) AS m GROUP BY ${group} ORDER BY ${order} LIMIT ${P.p(limit)}`;
  return { sql, values: P.values };
}
