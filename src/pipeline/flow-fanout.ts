// Between a flow table and where its records go: the flow store (if there
// is one) and the sinks that take flow records (`records = "flows"`). The
// table tells only what the store needs (a settled flow by its key: its
// tuple is in the store's current table), so while a sink takes flow
// records the open flows are also kept here, to send a settled one whole.
// With no such sink nothing is kept: the store alone costs no memory here.
//
// Sinks with an active or inactive timeout (IPFIX) also hear of flows still
// open: the table's dumps bring each open flow's counters (the kernel's,
// never zeroed), and after each dump a flow that carried packets since its
// last report is reported again, with what it carried since, when the
// active timeout has passed since that report or it has carried nothing for
// the inactive timeout; its end then counts only the rest.
import type { FlowEvent } from '../records/event.js';
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

/** when open flows are reported to the interim routes (µs; 0: never for that reason) */
export interface InterimTimeouts { activeUs: number; inactiveUs: number }

/** what was reported of an open flow: until when, its counters then, and when its counters last changed */
interface Reported {
  at: number; op: number; ob: number; rp: number; rb: number;
  /** its packets (both directions) as last dumped, and when that was (µs) */
  pk: number; changed: number;
  n: number;
}

export class FlowFanout implements FlowOutput {
  private routes_: readonly FlowRoute[] = [];
  /** routes that take each translated flow when it opens too (with end null: an IPFIX sink's NAT session create) */
  openRoutes: readonly FlowRoute[] = [];
  /** routes that take open flows' interim reports, and their ends as deltas after them */
  private interimRoutes_: readonly FlowRoute[] = [];
  private timeouts: InterimTimeouts = { activeUs: 0, inactiveUs: 0 };
  /** open flows by key, while there are routes */
  private readonly open = new Map<number, FlowRecord>();
  /** open flows whose counters a dump brought, while there are interim routes */
  private readonly reports = new Map<number, Reported>();
  /** interim reports sent */
  interimSent = 0;
  /** ended flows no sink could be sent whole: settled ones opened before a flow sink was there (or adopted from an earlier run) */
  unsent = 0;
  /** ended flows sent to the routes */
  sent = 0;

  constructor(private readonly o: FlowFanoutOptions) {}

  /** the sink routes of flow records (set at start and on reload); none: the open flows are forgotten */
  set routes(r: readonly FlowRoute[]) {
    this.setRoutes(r, r.length || this.interimRoutes_.length ? this.openRoutes : [], this.interimRoutes_, this.interim);
  }
  get routes(): readonly FlowRoute[] { return this.routes_; }

  /**
   * Every route at once: `whole` take each flow whole when it ends; `interim`
   * its interim reports and then the rest (by `t`); `open`, of either, the
   * translated flows as they open too.
   */
  setRoutes(whole: readonly FlowRoute[], open: readonly FlowRoute[], interim: readonly FlowRoute[], t: InterimTimeouts | undefined): void {
    this.routes_ = whole;
    this.openRoutes = open;
    this.interimRoutes_ = interim;
    this.timeouts = t ?? { activeUs: 0, inactiveUs: 0 };
    // (what was reported stays while there are routes: interim routes that
    // come back, after a reload or once accounting is seen on, go on from it
    // instead of counting again what their collector has)
    if (!whole.length && !interim.length) { this.open.clear(); this.reports.clear(); this.openRoutes = []; }
  }

  /** the interim routes' timeouts, if there are any */
  get interim(): InterimTimeouts | undefined { return this.interimRoutes_.length ? this.timeouts : undefined; }

  private get anyRoute(): boolean { return this.routes_.length > 0 || this.interimRoutes_.length > 0; }

  /** open flows kept for the routes */
  get kept(): number { return this.open.size; }

  newKey(): number {
    return this.o.store ? this.o.store.newKey() : this.o.nextKey();
  }

  opened(rec: FlowRecord): void {
    this.o.store?.opened(rec);
    // (a copy: the store's writer may change its own until it writes it)
    if (this.anyRoute) this.open.set(rec.key, { ...rec });
    // (only a translated flow has a NAT session to open)
    if (this.openRoutes.length && (rec.natSrc !== null || rec.natDst !== null)) {
      const f = this.ended(rec, false, 0, 0);
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

  /**
   * A dump read an open flow's counters at `at` (µs): kept for its
   * interim reports (only while there are interim routes).
   */
  counters(key: number, ev: FlowEvent, at: number): void {
    if (!this.interimRoutes_.length || ev.origPackets === undefined) return;
    const r = this.open.get(key);
    if (!r) return;
    r.origPackets = ev.origPackets;
    r.origBytes = ev.origBytes ?? 0;
    r.replyPackets = ev.replyPackets ?? 0;
    r.replyBytes = ev.replyBytes ?? 0;
    const pk = r.origPackets + r.replyPackets;
    let p = this.reports.get(key);
    if (!p) {
      p = { at: r.start, op: 0, ob: 0, rp: 0, rb: 0, pk: 0, changed: r.start, n: 0 };
      this.reports.set(key, p);
    }
    if (pk !== p.pk) { p.pk = pk; p.changed = Math.max(at, r.start); }
  }

  /**
   * After a dump (at `now`, µs): each open flow with packets not yet
   * reported whose active timeout has passed since its last report (or its
   * start), or which carried nothing for the inactive timeout, is reported
   * to the interim routes: what it carried since, from the end of its last
   * report to when its counters last changed. Returns how many.
   */
  interimCheck(now: number): number {
    if (!this.interimRoutes_.length) return 0;
    const { activeUs, inactiveUs } = this.timeouts;
    let n = 0;
    for (const [key, p] of this.reports) {
      const r = this.open.get(key);
      if (!r) { this.reports.delete(key); continue; }
      // counters that went down (`conntrack -Z`, zeroed by a tool): what they count is since then
      if (r.origPackets! < p.op || r.origBytes! < p.ob || r.replyPackets! < p.rp || r.replyBytes! < p.rb) { p.op = 0; p.ob = 0; p.rp = 0; p.rb = 0; }
      if (r.origPackets! + r.replyPackets! === p.op + p.rp) continue;
      const why = activeUs > 0 && now - p.at >= activeUs ? 2 : inactiveUs > 0 && now - p.changed >= inactiveUs ? 1 : 0;
      if (!why) continue;
      const end = Math.max(p.changed, p.at);
      const f = this.ended({ ...r, start: p.at, startErr: p.n ? 0 : r.startErr, end, endErr: 0, activeEnd: null,
        origPackets: r.origPackets! - p.op, origBytes: r.origBytes! - p.ob, replyPackets: r.replyPackets! - p.rp, replyBytes: r.replyBytes! - p.rb }, false, why, p.n);
      for (const route of this.interimRoutes_) route(f);
      p.at = end; p.op = r.origPackets!; p.ob = r.origBytes!; p.rp = r.replyPackets!; p.rb = r.replyBytes!;
      p.n++;
      n++;
    }
    this.interimSent += n;
    return n;
  }

  settled(key: number, t: SettleTimes, flags: number): void {
    this.o.store?.settled(key, t, flags);
    const r = this.open.get(key);
    if (!r) {
      if (this.anyRoute) this.unsent++;
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
    if (!this.anyRoute) return;
    const f = this.ended(rec, corrects, 0, 0);
    for (const r of this.routes_) r(f);
    if (this.interimRoutes_.length) {
      // after interim reports, the rest: from the last one's end, what came since
      const p = corrects ? undefined : this.reports.get(rec.key);
      this.reports.delete(rec.key);
      let g = f;
      if (p && p.n) {
        // (counters that went down since the last report count from zero)
        const zeroed = (rec.origPackets ?? p.op) < p.op || (rec.origBytes ?? p.ob) < p.ob || (rec.replyPackets ?? p.rp) < p.rp || (rec.replyBytes ?? p.rb) < p.rb;
        const since = (x: number | null, before: number) => (x === null ? 0 : zeroed ? x : x - before);
        const start = Math.min(p.at, rec.end ?? p.at);
        g = this.ended({
          ...rec, start, startErr: 0,
          // (its end's uncertainty and last activity not before the rest's start)
          endErr: rec.end === null ? rec.endErr : Math.min(rec.endErr, rec.end - start),
          activeEnd: rec.activeEnd === null ? null : Math.max(rec.activeEnd, start),
          origPackets: since(rec.origPackets, p.op), origBytes: since(rec.origBytes, p.ob),
          replyPackets: since(rec.replyPackets, p.rp), replyBytes: since(rec.replyBytes, p.rb),
        }, false, 0, p.n);
      }
      for (const r of this.interimRoutes_) r(g);
    }
    this.sent++;
  }

  private ended(rec: FlowRecord, corrects: boolean, report: 0 | 1 | 2, reported: number): EndedFlow {
    // (every field written out: one object shape, cheaper than a spread of the record)
    return {
      key: rec.key, start: rec.start, startErr: rec.startErr, end: rec.end, endErr: rec.endErr, activeEnd: rec.activeEnd,
      family: rec.family, proto: rec.proto, src: rec.src, sport: rec.sport, dst: rec.dst, dport: rec.dport,
      natSrc: rec.natSrc, natSport: rec.natSport, natDst: rec.natDst, natDport: rec.natDport,
      origPackets: rec.origPackets, origBytes: rec.origBytes, replyPackets: rec.replyPackets, replyBytes: rec.replyBytes,
      state: rec.state, mark: rec.mark, zone: rec.zone, status: rec.status, ctId: rec.ctId, flags: rec.flags, ns: rec.ns,
      netns: this.o.netns, netnsInode: this.o.netnsInode, corrects, report, reported,
    };
  }
}
