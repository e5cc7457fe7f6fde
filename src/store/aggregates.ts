// Aggregated flow records in the store: one row per record of a stage with
// `store = true` (pipeline/aggregate.ts), and the query of
// `conntrail aggregates`. Written once for SQLite and PostgreSQL, like
// sql.ts. Every time is in µs since the epoch; `t` is the interval's start
// (retention deletes by it). An address key cut to a prefix is kept as its
// network's address, with the prefix length beside it.
import type { AggregateRecord } from '../records/aggregate.js';
import type { Cidr } from '../util/ip.js';
import { Params, type Built, type Dialect } from './sql.js';
import { addrOrNull, numOrNull } from './rows.js';

export const AGGREGATE_COLUMNS = [
  't', 'name', 'interval_us', 'first', 'last', 'family', 'proto', 'src', 'src_prefix', 'dst', 'dst_prefix', 'sport', 'dport',
  'nat_src', 'nat_sport', 'nat_dst', 'nat_dport', 'flows', 'opkts', 'obytes', 'rpkts', 'rbytes',
] as const;
export const AGGREGATE_COLUMN_LIST = AGGREGATE_COLUMNS.join(', ');
/** PostgreSQL's types of the columns, in order (for unnest) */
export const AGGREGATE_PG_TYPES = ['bigint', 'text', 'bigint', 'bigint', 'bigint', 'smallint', 'smallint', 'inet', 'smallint', 'inet', 'smallint',
  'integer', 'integer', 'inet', 'integer', 'inet', 'integer', 'bigint', 'bigint', 'bigint', 'bigint', 'bigint'];

/** a record's values in AGGREGATE_COLUMNS order, addresses through the dialect */
export function aggregateValues(r: AggregateRecord, addr: (a: string) => unknown): unknown[] {
  const a = (x: string | null) => (x === null ? null : addr(x));
  return [r.intervalStart, r.aggregate, r.intervalUs, r.first, r.last, r.family, r.proto, a(r.src), r.srcPrefix, a(r.dst), r.dstPrefix, r.sport, r.dport,
    a(r.natSrc), r.natSport, a(r.natDst), r.natDport, r.flows, r.origPackets, r.origBytes, r.replyPackets, r.replyBytes];
}

/** A stored aggregated record read back: the record as the stage made it. */
export function rowToAggregate(x: Record<string, unknown>): AggregateRecord {
  const n = numOrNull;
  return {
    aggregate: String(x.name), intervalStart: Number(x.t), intervalUs: Number(x.interval_us), first: Number(x.first), last: Number(x.last),
    family: Number(x.family) as 0 | 4 | 6, proto: n(x.proto), src: addrOrNull(x.src), srcPrefix: n(x.src_prefix), dst: addrOrNull(x.dst), dstPrefix: n(x.dst_prefix),
    sport: n(x.sport), dport: n(x.dport), natSrc: addrOrNull(x.nat_src), natSport: n(x.nat_sport), natDst: addrOrNull(x.nat_dst), natDport: n(x.nat_dport),
    flows: Number(x.flows), origPackets: Number(x.opkts), origBytes: Number(x.obytes), replyPackets: Number(x.rpkts), replyBytes: Number(x.rbytes),
  };
}

export interface AggregateSearch {
  /** records whose interval overlaps [since, until] */
  since: number;
  until: number;
  /** the stages' names (empty: all) */
  names: string[];
  /** any of these, as a source or destination key, before or after NAT (a network key matches by its address) */
  hosts: Cidr[];
  /** any of these, as a port key */
  ports: number[];
  protos: number[];
  limit?: number;
}

/** the newest `limit` matches (by interval, then as written), newest first */
export function aggregateSearchQuery(d: Dialect, s: AggregateSearch): Built {
  const P = new Params(d);
  const { p } = P;
  // (an interval is never longer than a day: the start bound uses the index on t)
  const c = [`t <= ${p(s.until)}`, `t >= ${p(s.since - 86_400_000_000)}`, `t + interval_us > ${p(s.since)}`];
  const any = (parts: string[]) => { if (parts.length) c.push(`(${parts.join(' OR ')})`); };
  if (s.names.length) c.push(`name IN (${s.names.map((x) => p(x)).join(', ')})`);
  any(s.hosts.flatMap((h) => ['src', 'dst', 'nat_src', 'nat_dst'].map((col) => d.inCidr(col, h, p))));
  any(s.ports.flatMap((x) => { const ph = p(x); return ['sport', 'dport', 'nat_sport', 'nat_dport'].map((col) => `${col} = ${ph}`); }));
  if (s.protos.length) c.push(`proto IN (${s.protos.map((x) => p(x)).join(', ')})`);
  const sql = `SELECT ${AGGREGATE_COLUMN_LIST} FROM aggregates WHERE ${c.join(' AND ')} ORDER BY t DESC, id DESC` +
    (s.limit !== undefined ? ` LIMIT ${p(s.limit)}` : '');
  return { sql, values: P.values };
}
