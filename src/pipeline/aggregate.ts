// Aggregation of flow records (the storage problem of a carrier-grade NAT
// with millions of short connections): a stage that folds the flows that
// ended in the same interval (aligned to the epoch: 1 min is each whole
// minute) and share the configured keys (addresses or their prefixes,
// ports, protocol, the addresses and ports after NAT) into one record with
// the sums of their counters, how many they were, the earliest start and
// the latest end. An interval is sent `delay` seconds after it ended (a
// flow's record comes a little after its end: its DESTROY read, or a dump
// that no longer had it); a flow that comes later still is folded into a
// record of its own for its interval (counted `late`), so the sums per
// interval and key stay right at the collector, which adds them up. Memory
// is bounded: at `max_keys` records held, the oldest interval is sent early
// (`early`). Long flows count at their end, whole.
import { isIcmp, type EndedFlow } from '../records/flow.js';
import { ipv6ToString, parseIp } from '../util/ip.js';
import { AGGREGATE_KEYS, type AggregateKey, type AggregateRecord } from '../records/aggregate.js';

export interface AggregatorOptions {
  name: string;
  keys: readonly AggregateKey[];
  /** prefix lengths applied to the source and destination addresses (and after NAT), per family */
  srcPrefix4: number; srcPrefix6: number; dstPrefix4: number; dstPrefix6: number;
  /** s */
  interval: number;
  /** s after an interval's end before it is sent */
  delay: number;
  maxKeys: number;
  /** where the records go */
  emit: (r: AggregateRecord) => void;
}

export interface AggregatorStats {
  name: string;
  /** flow records folded in */
  flows: number;
  /** aggregated records sent */
  records: number;
  /** flows that came after their interval was sent (a record of their own for it) */
  late: number;
  /** records sent before their interval's delay had passed (max_keys reached) */
  early: number;
  /** records held */
  held: number;
}

/** `text` masked to `bits` (a family's full length: as it is) */
export function maskAddress(text: string, bits: number): string {
  const full = text.includes(':') ? 128 : 32;
  if (bits >= full) return text;
  const a = parseIp(text);
  if (!a) return text;
  for (let i = 0; i < a.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    a[i] &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return a.length === 4 ? [...a].join('.') : ipv6ToString(a, 0);
}

interface Bucket { rec: AggregateRecord; due: number }

export class Aggregator {
  private readonly buckets = new Map<string, Bucket>();
  private readonly st = { flows: 0, records: 0, late: 0, early: 0 };
  private readonly has: Record<AggregateKey, boolean>;
  private readonly intervalUs: number;
  /** the last tick (µs): a flow whose interval was due by then is late */
  private lastTick = -Infinity;

  constructor(private readonly o: AggregatorOptions) {
    this.has = Object.fromEntries(AGGREGATE_KEYS.map((k) => [k, o.keys.includes(k)])) as Record<AggregateKey, boolean>;
    this.intervalUs = o.interval * 1e6;
  }

  get name(): string { return this.o.name; }

  /** One ended flow (an open one, or an interim report, is not taken). */
  push(f: EndedFlow): void {
    if (f.end === null || f.report !== 0 || f.corrects) return;
    const h = this.has;
    const v6 = f.family === 6;
    const start = Math.floor(f.end / this.intervalUs) * this.intervalUs;
    const sp = this.prefix('src', v6);
    const dp = this.prefix('dst', v6);
    const icmp = isIcmp(f.proto);
    const src = h.src ? maskAddress(f.src, sp) : null;
    const dst = h.dst ? maskAddress(f.dst, dp) : null;
    const natSrc = h.nat_src ? maskAddress(f.natSrc ?? f.src, sp) : null;
    const natDst = h.nat_dst ? maskAddress(f.natDst ?? f.dst, dp) : null;
    // (ICMP: no ports; its id is no port)
    const sport = h.sport ? (icmp ? 0 : f.sport ?? 0) : null;
    const dport = h.dport ? (icmp ? 0 : f.dport ?? 0) : null;
    const natSport = h.nat_sport ? (icmp ? 0 : f.natSrc !== null ? f.natSport ?? f.sport ?? 0 : f.sport ?? 0) : null;
    const natDport = h.nat_dport ? (icmp ? 0 : f.natDst !== null ? f.natDport ?? f.dport ?? 0 : f.dport ?? 0) : null;
    const proto = h.proto ? f.proto : null;
    const family: 0 | 4 | 6 = h.src || h.dst || h.nat_src || h.nat_dst ? f.family : 0;
    const due = start + this.intervalUs + this.o.delay * 1e6;
    // (its interval's records were sent: this one goes with the next tick, a record of its own)
    if (due <= this.lastTick) this.st.late++;
    const key = `${start}|${family}|${proto}|${src}|${dst}|${sport}|${dport}|${natSrc}|${natSport}|${natDst}|${natDport}`;
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.o.maxKeys) this.sendEarly();
      b = {
        rec: {
          aggregate: this.o.name, intervalStart: start, intervalUs: this.intervalUs, first: f.start, last: f.end, family, proto,
          src, srcPrefix: src !== null || natSrc !== null ? sp : null, dst, dstPrefix: dst !== null || natDst !== null ? dp : null,
          sport, dport, natSrc, natSport, natDst, natDport, flows: 0, origPackets: 0, origBytes: 0, replyPackets: 0, replyBytes: 0,
        },
        due,
      };
      this.buckets.set(key, b);
    }
    const r = b.rec;
    r.flows++;
    if (f.start < r.first) r.first = f.start;
    if (f.end > r.last) r.last = f.end;
    r.origPackets += f.origPackets ?? 0;
    r.origBytes += f.origBytes ?? 0;
    r.replyPackets += f.replyPackets ?? 0;
    r.replyBytes += f.replyBytes ?? 0;
    this.st.flows++;
  }

  private prefix(side: 'src' | 'dst', v6: boolean): number {
    return side === 'src' ? (v6 ? this.o.srcPrefix6 : this.o.srcPrefix4) : (v6 ? this.o.dstPrefix6 : this.o.dstPrefix4);
  }

  /** Sends every record whose interval's delay has passed at `nowUs` (all with `all`: stopping). Returns how many. */
  tick(nowUs: number, all = false): number {
    let n = 0;
    if (nowUs > this.lastTick) this.lastTick = nowUs;
    for (const [key, b] of this.buckets) {
      if (!all && b.due > nowUs) continue;
      this.buckets.delete(key);
      this.o.emit(b.rec);
      n++;
    }
    this.st.records += n;
    return n;
  }

  /** max_keys reached: the oldest interval's records go now */
  private sendEarly(): void {
    let oldest = Infinity;
    for (const b of this.buckets.values()) if (b.rec.intervalStart < oldest) oldest = b.rec.intervalStart;
    for (const [key, b] of this.buckets) {
      if (b.rec.intervalStart !== oldest) continue;
      this.buckets.delete(key);
      this.o.emit(b.rec);
      this.st.records++;
      this.st.early++;
    }
  }

  stats(): AggregatorStats {
    return { name: this.o.name, ...this.st, held: this.buckets.size };
  }
}
