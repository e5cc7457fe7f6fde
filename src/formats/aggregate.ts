// Aggregated flow records (pipeline/aggregate.ts) as a JSON line, for the
// line sinks that take a stage's records (`aggregate = "NAME"`), and as
// journal fields. One shape for every stage: a key the stage does not fold
// by is null; an address cut to a prefix is written as its network
// (`10.1.2.0/24`).
import type { AggregateRecord } from '../records/aggregate.js';
import { isoTime } from '../util/time.js';
import { asciiJson } from '../util/json.js';
import { protoName } from './flow.js';

export const AGGREGATE_FORMATS = ['json'] as const;
export type AggregateFormatName = (typeof AGGREGATE_FORMATS)[number];

/** an address key as written: null when not a key, `NET/LEN` when cut to a prefix shorter than its family's */
function addr(a: string | null, prefix: number | null, family: 0 | 4 | 6): string | null {
  if (a === null) return null;
  return prefix !== null && prefix < (family === 6 ? 128 : 32) ? `${a}/${prefix}` : a;
}

/**
 * One aggregated record as JSON: the stage, its interval (the flows' ends
 * were in [interval_start, interval_start + interval_s)), the earliest
 * start and latest end of its flows, the keys, the count and the sums.
 */
export function aggregateJson(r: AggregateRecord): Record<string, unknown> {
  return {
    aggregate: r.aggregate, interval_start: isoTime(r.intervalStart), interval_start_us: r.intervalStart, interval_s: r.intervalUs / 1e6,
    first: isoTime(r.first), first_us: r.first, last: isoTime(r.last), last_us: r.last,
    family: r.family === 0 ? null : r.family, proto: r.proto === null ? null : protoName(r.proto),
    src: addr(r.src, r.srcPrefix, r.family), sport: r.sport, dst: addr(r.dst, r.dstPrefix, r.family), dport: r.dport,
    nat_src: addr(r.natSrc, r.srcPrefix, r.family), nat_sport: r.natSport, nat_dst: addr(r.natDst, r.dstPrefix, r.family), nat_dport: r.natDport,
    flows: r.flows, packets: { orig: r.origPackets, reply: r.replyPackets }, bytes: { orig: r.origBytes, reply: r.replyBytes },
  };
}

/** the record as a JSON line, in ASCII as every JSON line the sinks write (a few per interval: no hand-written fast path) */
export const aggregateJsonLine = (r: AggregateRecord): string => asciiJson(aggregateJson(r));

export function makeAggregateFormatter(name: AggregateFormatName): (r: AggregateRecord) => string {
  switch (name) {
    case 'json':
      return aggregateJsonLine;
  }
}

/** An aggregated record's journal fields (AGG_*): every key of the JSON line, flat, times in µs; keys it is not folded by are left out. */
export function aggregateJournalFields(r: AggregateRecord): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const put = (k: string, v: string | number | null) => { if (v !== null) out.push([k, String(v)]); };
  put('AGG_NAME', r.aggregate);
  put('AGG_INTERVAL_START_US', r.intervalStart);
  put('AGG_INTERVAL_S', r.intervalUs / 1e6);
  put('AGG_FIRST_US', r.first);
  put('AGG_LAST_US', r.last);
  put('AGG_FAMILY', r.family === 0 ? null : r.family);
  put('AGG_PROTO', r.proto === null ? null : protoName(r.proto));
  put('AGG_PROTO_NUM', r.proto);
  put('AGG_SRC', addr(r.src, r.srcPrefix, r.family)); put('AGG_SPORT', r.sport);
  put('AGG_DST', addr(r.dst, r.dstPrefix, r.family)); put('AGG_DPORT', r.dport);
  put('AGG_NAT_SRC', addr(r.natSrc, r.srcPrefix, r.family)); put('AGG_NAT_SPORT', r.natSport);
  put('AGG_NAT_DST', addr(r.natDst, r.dstPrefix, r.family)); put('AGG_NAT_DPORT', r.natDport);
  put('AGG_FLOWS', r.flows);
  put('AGG_ORIG_PACKETS', r.origPackets); put('AGG_ORIG_BYTES', r.origBytes);
  put('AGG_REPLY_PACKETS', r.replyPackets); put('AGG_REPLY_BYTES', r.replyBytes);
  return out;
}
