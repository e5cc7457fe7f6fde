// The aggregated record: what the flows that ended in one interval and
// share the keys of an aggregation stage did together (pipeline/aggregate.ts).
export const AGGREGATE_KEYS = ['src', 'dst', 'sport', 'dport', 'proto', 'nat_src', 'nat_sport', 'nat_dst', 'nat_dport'] as const;
export type AggregateKey = typeof AGGREGATE_KEYS[number];

/** One aggregated record: what the flows that ended in an interval with these keys did. */
export interface AggregateRecord {
  /** the stage's name */
  aggregate: string;
  /** µs: the interval, [start, start + length) of the flows' ends */
  intervalStart: number;
  intervalUs: number;
  /** µs: the earliest start and the latest end of its flows */
  first: number;
  last: number;
  /** 4 or 6 when an address is a key; 0: flows of both families */
  family: 0 | 4 | 6;
  /** the keys (null: not a key); an address with a prefix shorter than its family's is the network, with `srcPrefix`/`dstPrefix` */
  proto: number | null;
  src: string | null;
  srcPrefix: number | null;
  dst: string | null;
  dstPrefix: number | null;
  sport: number | null;
  dport: number | null;
  /** the public source after SNAT (the flow's source when it had none), and the inside destination after DNAT */
  natSrc: string | null;
  natSport: number | null;
  natDst: string | null;
  natDport: number | null;
  flows: number;
  origPackets: number;
  origBytes: number;
  replyPackets: number;
  replyBytes: number;
}
