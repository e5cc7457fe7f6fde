// Between a flow table and where its records go: the flow store (if there
// is one) and the sinks that take flow records (`records = "flows"`). The
// table tells only what the store needs (a settled flow by its key: its
// tuple is in the store's current table), so while a sink takes flow
// records the open flows are also kept here, to send a settled one whole.
// With no such sink nothing is kept: the store alone costs no memory here.
import type { EndedFlow, FlowRecord } from '../records/flow.js';
import type { FlowOutput, SettleTimes, SettledRef } from './flow-table.js';

/** where a namespace's ended flows go: one function per sink route */
export type FlowRoute = (f: EndedFlow) => void;

export interface FlowFanoutOptions {
  /** the flow store's writer (undefined: no store) */
  store: FlowOutput | undefined;
  /** the namespace every record of this table is from */
  netns: string;
  netnsInode: number;
  /** keys for new flows when there is no store (unique in the process) */
  nextKey: () => number;
}

export class FlowFanout implements FlowOutput {
  private routes_: readonly FlowRoute[] = [];
  /** routes that take each translated flow when it opens too (with end null: an IPFIX sink's NAT session create) */
  openRoutes: readonly FlowRoute[] = [];
  /** open flows by key, while there are routes */
  private readonly open = new Map<number, FlowRecord>();
  /** ended flows no sink could be sent whole: settled ones opened before a flow sink was there (or adopted from an earlier run) */
  unsent = 0;
  /** ended flows sent to the routes */
  sent = 0;

  constructor(private readonly o: FlowFanoutOptions) {}

  /** the sink routes of flow records (set at start and on reload); none: the open flows are forgotten */
  set routes(r: readonly FlowRoute[]) {
    this.routes_ = r;
    if (!r.length) { this.open.clear(); this.openRoutes = []; }
  }
  get routes(): readonly FlowRoute[] { return this.routes_; }

  /** open flows kept for the routes */
  get kept(): number { return this.open.size; }

  newKey(): number {
    return this.o.store ? this.o.store.newKey() : this.o.nextKey();
  }

  opened(rec: FlowRecord): void {
    this.o.store?.opened(rec);
    // (a copy: the store's writer may change its own until it writes it)
    if (this.routes_.length) this.open.set(rec.key, { ...rec });
    // (only a translated flow has a NAT session to open)
    if (this.openRoutes.length && (rec.natSrc !== null || rec.natDst !== null)) {
      const f = this.ended(rec, false);
      for (const r of this.openRoutes) r(f);
    }
  }

  activity(key: number, at: number): void {
    this.o.store?.activity(key, at);
    const r = this.open.get(key);
    if (r && r.activeEnd === null) r.activeEnd = at;
  }

  closed(rec: FlowRecord): void {
    this.o.store?.closed(rec);
    this.open.delete(rec.key);
    this.send(rec, false);
  }

  settled(key: number, t: SettleTimes, flags: number): void {
    this.o.store?.settled(key, t, flags);
    const r = this.open.get(key);
    if (!r) {
      if (this.routes_.length) this.unsent++;
      return;
    }
    this.open.delete(key);
    this.send({ ...r, end: t.end, endErr: t.endErr, activeEnd: t.activeEnd, flags }, false);
  }

  corrected(ref: SettledRef, rec: FlowRecord): void {
    this.o.store?.corrected(ref, rec);
    this.send(rec, true);
  }

  private send(rec: FlowRecord, corrects: boolean): void {
    if (!this.routes_.length) return;
    const f = this.ended(rec, corrects);
    for (const r of this.routes_) r(f);
    this.sent++;
  }

  private ended(rec: FlowRecord, corrects: boolean): EndedFlow {
    // (every field written out: one object shape, cheaper than a spread of the record)
    return {
      key: rec.key, start: rec.start, startErr: rec.startErr, end: rec.end, endErr: rec.endErr, activeEnd: rec.activeEnd,
      family: rec.family, proto: rec.proto, src: rec.src, sport: rec.sport, dst: rec.dst, dport: rec.dport,
      natSrc: rec.natSrc, natSport: rec.natSport, natDst: rec.natDst, natDport: rec.natDport,
      origPackets: rec.origPackets, origBytes: rec.origBytes, replyPackets: rec.replyPackets, replyBytes: rec.replyBytes,
      state: rec.state, mark: rec.mark, zone: rec.zone, status: rec.status, ctId: rec.ctId, flags: rec.flags, ns: rec.ns,
      netns: this.o.netns, netnsInode: this.o.netnsInode, corrects,
    };
  }
}
