// The flow table: follows each conntrack entry from NEW through UPDATE to
// DESTROY and emits one FlowRecord per flow. It keeps only what the DESTROY
// event does not carry (start, when the flow stopped being active, last
// state and status, when it was last seen) in flat typed arrays, so a
// million open flows cost tens of MiB; the tuples of open flows live in the
// store (its "current table"), written when the flow is opened.
//
// A flow's identity is its conntrack id *and* its original tuple: the
// kernel's 32-bit ids collide, and two flows open at once may share one.
// One table serves one network namespace; its flows' store keys come from
// the store writer, so they are unique however many namespaces there are.
import type { FlowEvent } from '../records/event.js';
import { IPPROTO_SCTP, IPPROTO_TCP } from '../records/values.js';
import {
  FLAG_ACTIVE_ESTIMATED, FLAG_END_ESTIMATED, FLAG_NO_NEW, FLAG_START_UNKNOWN, UNBOUNDED, isIcmp, nsToUsCeil,
  nsToUsFloor, recordFromEvent, type FlowRecord,
} from '../records/flow.js';
import { sctpFinished, tcpFinished, type Timeouts } from './timeouts.js';

/** When a flow that ended unseen ended, as far as can be known (µs). */
export interface SettleTimes { end: number; endErr: number; activeEnd: number }

/** A flow settled by a dump, as its row in the store was made: with the
 * DESTROY that came late (same namespace, id and tuple) it finds that row. */
export interface SettledRef { key: number; ns: number; start: number; flags: number }

export interface FlowOutput {
  /** a key for a new open flow, unique in the store's current table */
  newKey(): number;
  /** a flow was opened (or first seen): the store writes it to its current table */
  opened(rec: FlowRecord): void;
  /** a dump read the counters of an open flow (first seen in it, or followed) at `at` (µs) */
  counters?(key: number, ev: FlowEvent, at: number): void;
  /** an open flow stopped carrying packets (TCP or SCTP finished) at `at` (µs) */
  activity(key: number, at: number): void;
  /** a flow ended: its final record */
  closed(rec: FlowRecord): void;
  /** a flow open in the store ended unseen (events were lost): end it there */
  settled(key: number, t: SettleTimes, flags: number): void;
  /** a flow settled earlier did end with a DESTROY after all: `rec` replaces its row */
  corrected(ref: SettledRef, rec: FlowRecord): void;
}

export interface FlowTableStats {
  open: number;
  opened: number;
  closed: number;
  /** DESTROYs of flows whose NEW was not seen */
  partial: number;
  /** flows ended by a table dump because their DESTROY was lost */
  settled: number;
  /** settled flows whose DESTROY came later: their row was corrected */
  corrected: number;
  /** flows missing from a dump, waiting for a late DESTROY before they are settled */
  missing: number;
  /** flows first seen in a dump with no event since (checked by dumps until they end) */
  quiet: number;
}

/** What the table needs to know of its namespace. */
export interface FlowTableOptions {
  /** the store's id of the namespace (every record carries it) */
  ns: number;
  out: FlowOutput;
  /** the namespace's conntrack timeouts (for when expired flows stopped) */
  timeouts?: Timeouts;
  /** the kernel's tick in µs (default 10 ms) */
  jiffyUs?: number;
  /** the source reads NEW events (default true); without them a flow first
   * seen without its NEW may have begun at any time before */
  seesNew?: boolean;
  /** a flow missing from a dump is settled this long after (µs; default 2 s):
   * a DESTROY still on its way in that time completes it properly */
  graceUs?: number;
  /** how long a settled flow is remembered, so a late DESTROY corrects its
   * row instead of adding a second one (µs; default 15 min) */
  rememberUs?: number;
  /** clock (µs) */
  now?: () => number;
  initial?: number;
}

/** An open row from the store (or the spool), to continue a flow of an earlier run. */
export interface AdoptRow {
  key: number; start: number; startErr: number; flags: number; activeEnd: number | null; status: number;
  proto: number; src: string; sport: number | null; dst: string; dport: number | null; zone: number; ctId: number; ns: number;
}

const NONE = 255; // "no state" in the state array
const NO_CLASS = -1;
const ID_SPACE = 4294967296;

/** 2 × 32 bits of the original tuple: protocol, addresses, ports (ICMP: id and type/code). */
function tupleHash(proto: number, src: string, dst: string, sport: number, dport: number, out: Int32Array): void {
  let a = 0x811c9dc5 ^ proto;
  let b = 0x9747b28c ^ (proto * 0x01000193);
  const mix = (c: number) => {
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  };
  for (let i = 0; i < src.length; i++) mix(src.charCodeAt(i));
  mix(0x2f);
  for (let i = 0; i < dst.length; i++) mix(dst.charCodeAt(i));
  mix(sport & 0xff); mix(sport >>> 8); mix(dport & 0xff); mix(dport >>> 8);
  out[0] = a | 0;
  out[1] = b | 0;
}

const fpScratch = new Int32Array(2);
function eventHash(ev: FlowEvent): Int32Array {
  const o = ev.orig;
  if (isIcmp(ev.proto)) tupleHash(ev.proto, o.src, o.dst, o.icmpId ?? 0, (o.icmpType ?? 0) * 256 + (o.icmpCode ?? 0), fpScratch);
  else tupleHash(ev.proto, o.src, o.dst, o.sport ?? 0, o.dport ?? 0, fpScratch);
  return fpScratch;
}

/** When the event happened, at the latest: the kernel's event timestamp, else when it was read (µs). */
function eventTime(ev: FlowEvent): number {
  return ev.eventTime !== undefined ? nsToUsFloor(ev.eventTime) : ev.recvTime;
}

/** When the event happened, at the earliest: the kernel's event timestamp, else
 * when the receive queue was last seen empty before it was read (µs). */
function eventFrom(ev: FlowEvent): number {
  return ev.eventTime !== undefined ? nsToUsFloor(ev.eventTime) : ev.recvFrom > 0 ? Math.min(ev.recvFrom, ev.recvTime) : ev.recvTime;
}

function finished(proto: number, state: number | undefined): boolean {
  if (state === undefined) return false;
  return proto === IPPROTO_TCP ? tcpFinished(state) : proto === IPPROTO_SCTP ? sctpFinished(state) : false;
}

interface Remembered { fpA: number; fpB: number; ref: SettledRef; until: number }

export class FlowTable {
  /** (zone, conntrack id) -> first slot of the flows sharing it */
  private readonly index = new Map<number, number>();
  private cap = 0;
  private startUs = new Float64Array(0);
  private startErr = new Float64Array(0);
  private seenUs = new Float64Array(0);
  /** the last NEW/UPDATE: when it happened at the latest, and at the earliest */
  private eventUs = new Float64Array(0);
  private eventLo = new Float64Array(0);
  private activeUs = new Float64Array(0);
  private keyOf = new Float64Array(0);
  private idOf = new Float64Array(0);
  private missingUntil = new Float64Array(0);
  private settleLo = new Float64Array(0);
  private settleHi = new Float64Array(0);
  private status = new Uint32Array(0);
  private fpA = new Int32Array(0);
  private fpB = new Int32Array(0);
  private next = new Int32Array(0);
  private gen = new Uint32Array(0);
  private obsT = new Uint32Array(0);
  private obsClass = new Int32Array(0);
  private state = new Uint8Array(0);
  private flags = new Uint8Array(0);
  private proto = new Uint8Array(0);
  /** first seen in a dump and no event since: it may be one that never
   * reports (created while no listener ran, with nf_conntrack_events = 2) */
  private quiet = new Uint8Array(0);
  private quietCount = 0;
  private free: number[] = [];
  private used = 0;
  private size_ = 0;
  private generation = 1;
  private syncing = false;
  /** slots missing from a dump, waiting for their grace to pass (slot, key) */
  private pending: Array<[number, number]> = [];
  private missingCount = 0;
  /** settled flows remembered for late DESTROYs, by (zone, id) */
  private readonly recent = new Map<number, Remembered[]>();
  // a FIFO: the live entries are recentOrder[recentHead..] (no O(n) shift)
  private recentOrder: Array<[number, number]> = [];
  private recentHead = 0;
  private readonly counts = { opened: 0, closed: 0, partial: 0, settled: 0, corrected: 0 };
  private readonly ns: number;
  private readonly out: FlowOutput;
  private readonly jiffy: number;
  private readonly grace: number;
  private readonly remember: number;
  private readonly now: () => number;
  /** timeouts of the namespace (replaceable when the sysctls change) */
  timeouts: Timeouts | undefined;
  /** flows first seen without a NEW began after this (µs; undefined: any time) */
  gapFrom: number | undefined;

  private readonly seesNew: boolean;

  constructor(o: FlowTableOptions) {
    this.ns = o.ns;
    this.out = o.out;
    this.timeouts = o.timeouts;
    this.jiffy = o.jiffyUs ?? 10_000;
    this.seesNew = o.seesNew !== false;
    this.grace = o.graceUs ?? 2_000_000;
    this.remember = o.rememberUs ?? 900_000_000;
    this.now = o.now ?? (() => Date.now() * 1000);
    this.grow(o.initial ?? 1024);
  }

  private grow(n: number): void {
    const cap = Math.max(n, this.cap * 2);
    const copy = <T extends Float64Array | Uint32Array | Int32Array | Uint8Array>(a: T, b: T): T => { b.set(a); return b; };
    this.startUs = copy(this.startUs, new Float64Array(cap));
    this.startErr = copy(this.startErr, new Float64Array(cap));
    this.seenUs = copy(this.seenUs, new Float64Array(cap));
    this.eventUs = copy(this.eventUs, new Float64Array(cap));
    this.eventLo = copy(this.eventLo, new Float64Array(cap));
    this.activeUs = copy(this.activeUs, new Float64Array(cap));
    this.keyOf = copy(this.keyOf, new Float64Array(cap));
    this.idOf = copy(this.idOf, new Float64Array(cap));
    this.missingUntil = copy(this.missingUntil, new Float64Array(cap));
    this.settleLo = copy(this.settleLo, new Float64Array(cap));
    this.settleHi = copy(this.settleHi, new Float64Array(cap));
    this.status = copy(this.status, new Uint32Array(cap));
    this.fpA = copy(this.fpA, new Int32Array(cap));
    this.fpB = copy(this.fpB, new Int32Array(cap));
    this.next = copy(this.next, new Int32Array(cap));
    this.gen = copy(this.gen, new Uint32Array(cap));
    this.obsT = copy(this.obsT, new Uint32Array(cap));
    this.obsClass = copy(this.obsClass, new Int32Array(cap));
    this.state = copy(this.state, new Uint8Array(cap));
    this.flags = copy(this.flags, new Uint8Array(cap));
    this.proto = copy(this.proto, new Uint8Array(cap));
    this.quiet = copy(this.quiet, new Uint8Array(cap));
    this.cap = cap;
  }

  private alloc(): number {
    const f = this.free.pop();
    if (f !== undefined) return f;
    if (this.used === this.cap) this.grow(this.cap * 2);
    return this.used++;
  }

  get size(): number { return this.size_; }

  stats(): FlowTableStats {
    return { open: this.size_, ...this.counts, missing: this.missingCount, quiet: this.quietCount };
  }

  /** Are there flows only a dump can tell the end of? */
  get hasQuiet(): boolean {
    return this.quietCount > 0;
  }

  private find(idKey: number, a: number, b: number): number {
    let s = this.index.get(idKey);
    while (s !== undefined && s >= 0) {
      if (this.fpA[s] === a && this.fpB[s] === b) return s;
      s = this.next[s];
    }
    return -1;
  }

  private link(idKey: number, slot: number): void {
    const head = this.index.get(idKey);
    this.next[slot] = head ?? -1;
    this.idOf[slot] = idKey;
    this.index.set(idKey, slot);
    this.size_++;
  }

  private unlink(idKey: number, slot: number): void {
    let s = this.index.get(idKey);
    let prev = -1;
    while (s !== undefined && s >= 0 && s !== slot) { prev = s; s = this.next[s]; }
    if (s === slot) {
      if (prev < 0) {
        if (this.next[slot] >= 0) this.index.set(idKey, this.next[slot]); else this.index.delete(idKey);
      } else this.next[prev] = this.next[slot];
    }
    if (this.missingUntil[slot] > 0) { this.missingUntil[slot] = 0; this.missingCount--; }
    if (this.quiet[slot]) { this.quiet[slot] = 0; this.quietCount--; }
    this.free.push(slot);
    this.size_--;
  }

  /** Passes one event (NEW, UPDATE, DESTROY or a DUMP entry) through the table. */
  handle(ev: FlowEvent): void {
    if (ev.id === undefined) return; // every kernel since 2.6.x sends one
    const idKey = (ev.zone ?? 0) * ID_SPACE + ev.id;
    const fp = eventHash(ev);
    const a = fp[0];
    const b = fp[1];
    let slot = this.find(idKey, a, b);
    const state = ev.tcpState ?? ev.sctpState ?? ev.dccpState;
    const t = eventTime(ev);
    // it was there at `lo` for sure (seen lower bounds the end of a flow a dump later misses)
    const lo = eventFrom(ev);
    if (ev.type === 'DESTROY') { this.destroy(ev, idKey, slot, a, b, state); return; }
    if (slot >= 0) {
      if (state !== undefined) {
        if (!(this.activeUs[slot] > 0) && finished(ev.proto, state)) {
          this.activeUs[slot] = t;
          this.out.activity(this.keyOf[slot], t);
        }
        this.state[slot] = state;
      }
      if (ev.status !== undefined) this.status[slot] = ev.status;
      this.seenUs[slot] = Math.max(this.seenUs[slot], lo);
      if (ev.type !== 'DUMP') {
        this.eventUs[slot] = t;
        this.eventLo[slot] = lo;
        this.observe(slot, ev, state);
        if (this.quiet[slot]) { this.quiet[slot] = 0; this.quietCount--; } // it reports: its DESTROY will come
      }
      this.gen[slot] = this.generation;
      if (this.missingUntil[slot] > 0) { this.missingUntil[slot] = 0; this.missingCount--; } // alive after all
      if (ev.type === 'DUMP' && ev.origPackets !== undefined) this.out.counters?.(this.keyOf[slot], ev, t);
      return;
    }
    // NEW, or an UPDATE / dump entry of a flow not seen before
    slot = this.alloc();
    let flags = 0;
    let start: number;
    let startErr = 0;
    if (ev.start !== undefined) start = nsToUsFloor(ev.start);
    else if (ev.type === 'NEW') { start = t; startErr = t - lo; } // read late: it began between
    else { start = t; flags |= FLAG_START_UNKNOWN; startErr = this.startBound(t); }
    if (ev.type !== 'NEW') flags |= FLAG_NO_NEW;
    const key = this.out.newKey();
    this.link(idKey, slot);
    this.startUs[slot] = start;
    this.startErr[slot] = startErr;
    this.seenUs[slot] = Math.max(lo, start);
    this.eventUs[slot] = ev.type === 'DUMP' ? start : t;
    this.eventLo[slot] = ev.type === 'DUMP' ? start : lo;
    this.activeUs[slot] = finished(ev.proto, state) ? t : 0;
    this.keyOf[slot] = key;
    this.missingUntil[slot] = 0;
    this.flags[slot] = flags;
    this.state[slot] = state ?? NONE;
    this.status[slot] = ev.status ?? 0;
    this.proto[slot] = ev.proto;
    this.quiet[slot] = ev.type === 'DUMP' ? 1 : 0;
    if (ev.type === 'DUMP') this.quietCount++;
    this.fpA[slot] = a;
    this.fpB[slot] = b;
    this.gen[slot] = this.generation;
    this.obsClass[slot] = NO_CLASS;
    if (ev.type !== 'DUMP') this.observe(slot, ev, state);
    this.counts.opened++;
    this.out.opened(recordFromEvent(ev, key, this.ns, {
      start, startErr, end: null, endErr: 0, activeEnd: this.activeUs[slot] > 0 ? this.activeUs[slot] : null,
    }, state ?? null, ev.status ?? 0, flags));
    if (ev.type === 'DUMP' && ev.origPackets !== undefined) this.out.counters?.(key, ev, t);
  }

  /** how much earlier than `t` a flow first seen now may have begun */
  private startBound(t: number): number {
    return this.gapFrom === undefined || !this.seesNew ? UNBOUNDED : Math.max(0, t - this.gapFrom);
  }

  /** The timeout an event reports (seconds left, right after the packet that caused it). */
  private observe(slot: number, ev: FlowEvent, state: number | undefined): void {
    if (ev.timeout === undefined) return;
    this.obsT[slot] = ev.timeout;
    this.obsClass[slot] = timeoutClass(state ?? this.state[slot], ev.status ?? this.status[slot]);
  }

  private destroy(ev: FlowEvent, idKey: number, slot: number, a: number, b: number, state: number | undefined): void {
    const end = ev.stop !== undefined ? nsToUsCeil(ev.stop) : ev.recvTime;
    // without the kernel's stop: read at `end`, it ended after the queue was last seen empty
    const endErr = ev.stop !== undefined ? 0 : Math.max(0, end - eventFrom(ev));
    // the kernel's start timestamp is exact; the NEW event's receive time is a little late
    const kstart = ev.start !== undefined ? nsToUsFloor(ev.start) : undefined;
    let start: number;
    let startErr: number;
    let flags: number;
    let st: number | null = state ?? null;
    let status = ev.status ?? 0;
    let key: number;
    let active: { at: number; estimated: boolean };
    if (slot >= 0) {
      start = kstart ?? this.startUs[slot];
      startErr = kstart !== undefined ? 0 : this.startErr[slot];
      flags = kstart !== undefined ? this.flags[slot] & ~FLAG_START_UNKNOWN : this.flags[slot];
      if (st === null && this.state[slot] !== NONE) st = this.state[slot];
      if (ev.status === undefined) status = this.status[slot];
      key = this.keyOf[slot];
      active = this.activeEnd(ev, slot, st ?? undefined, status, start, end);
      this.unlink(idKey, slot);
    } else {
      const ref = this.takeRemembered(idKey, a, b);
      active = this.activeEnd(ev, -1, st ?? undefined, status, kstart ?? end, end);
      if (ref) {
        // settled by a dump, but its DESTROY came after all: correct that row
        start = kstart ?? ref.start;
        flags = ref.flags & ~FLAG_END_ESTIMATED;
        if (kstart !== undefined) flags &= ~FLAG_START_UNKNOWN;
        if (active.estimated) flags |= FLAG_ACTIVE_ESTIMATED;
        const e = Math.max(end, start);
        this.counts.corrected++;
        this.out.corrected(ref, recordFromEvent(ev, ref.key, this.ns, {
          start, startErr: flags & FLAG_START_UNKNOWN ? this.startBound(start) : 0,
          end: e, endErr: Math.min(endErr, e - start), activeEnd: Math.max(Math.min(active.at, e), start),
        }, st, status, flags));
        return;
      }
      this.counts.partial++;
      start = kstart ?? end;
      startErr = kstart !== undefined ? 0 : this.startBound(end);
      flags = kstart !== undefined ? FLAG_NO_NEW : FLAG_NO_NEW | FLAG_START_UNKNOWN;
      key = this.out.newKey();
    }
    if (active.estimated) flags |= FLAG_ACTIVE_ESTIMATED;
    this.counts.closed++;
    const e = Math.max(end, start);
    this.out.closed(recordFromEvent(ev, key, this.ns, {
      start, startErr, end: e, endErr: Math.min(endErr, e - start), activeEnd: Math.max(Math.min(active.at, e), start),
    }, st, status, flags));
  }

  /**
   * When a flow that just ended last carried packets. A finished TCP/SCTP
   * flow: when it finished. One deleted by a program (conntrack -D, -F):
   * its end. One that expired: its end less the timeout that was running,
   * plus a tick (the kernel counts timeouts in ticks), unless the events
   * show it cannot have expired that way (then it was evicted early and was
   * active to its end). Without a known timeout: its end.
   */
  private activeEnd(ev: FlowEvent, slot: number, state: number | undefined, status: number, start: number, end: number): { at: number; estimated: boolean } {
    if (slot >= 0 && this.activeUs[slot] > 0) return { at: this.activeUs[slot], estimated: false };
    if (ev.portid !== 0) return { at: end, estimated: false };
    const secs = this.timeouts?.seconds(ev.proto, state, status);
    if (secs === undefined) return { at: end, estimated: false };
    let timeoutUs = secs * 1e6;
    // a shorter timeout in effect (an nft ct timeout policy) shows in the events
    if (slot >= 0 && this.obsClass[slot] === timeoutClass(state ?? NONE, status) && (this.obsT[slot] + 2) * 1e6 < timeoutUs) {
      timeoutUs = this.obsT[slot] * 1e6;
    }
    const est = end - timeoutUs + this.jiffy;
    const lastEvent = slot >= 0 ? this.eventUs[slot] : start;
    if (est + 2 * this.jiffy < lastEvent) return { at: end, estimated: false };
    return { at: Math.max(est, start), estimated: true };
  }

  /**
   * A table dump begins: entries passed to handle() from now on are marked
   * seen; endSync() then marks every flow the dump did not have as missing.
   */
  beginSync(): void {
    this.generation++;
    this.syncing = true;
  }

  /**
   * The dump is complete (`doneUs`). A flow it did not have ended unseen,
   * after it was last seen and after `lossFrom` (µs: when events may first
   * have been lost; undefined: any time after it was last seen), and
   * before `doneUs`. It is settled once the grace period has passed, unless
   * a late DESTROY completes it first. Returns how many are missing.
   */
  endSync(doneUs: number, lossFrom?: number): number {
    if (!this.syncing) return 0;
    this.syncing = false;
    const g = this.generation;
    const deadline = this.now() + this.grace;
    let n = 0;
    for (const slot of this.index.values()) {
      for (let s = slot; s >= 0; s = this.next[s]) {
        if (this.gen[s] === g || this.missingUntil[s] > 0) continue;
        this.missingUntil[s] = deadline;
        this.settleHi[s] = Math.max(doneUs, this.seenUs[s]);
        this.settleLo[s] = this.endBound(s, lossFrom);
        this.pending.push([s, this.keyOf[s]]);
        this.missingCount++;
        n++;
      }
    }
    return n;
  }

  /**
   * The earliest a flow missing from a dump may have ended. After it was
   * last seen; and after the loss began, if its end was a deletion (that
   * reports at once) — but an entry that expired reports only when it is
   * reaped, which can be a while after its expiry: then no earlier than its
   * last event plus the timeout running then.
   */
  private endBound(s: number, lossFrom: number | undefined): number {
    const seen = Math.max(this.seenUs[s], this.startUs[s]);
    if (lossFrom === undefined) return seen;
    const state = this.state[s] === NONE ? undefined : this.state[s];
    const secs = this.timeouts?.seconds(this.proto[s], state, this.status[s]);
    const expiry = secs === undefined ? seen : this.eventLo[s] + secs * 1e6 - this.jiffy;
    return Math.max(seen, Math.min(lossFrom, expiry));
  }

  /** Settles the missing flows whose grace has passed (all of them with `all`). Returns how many. */
  sweep(all = false): number {
    if (!this.pending.length) { this.expireRemembered(); return 0; }
    const now = this.now();
    const keep: Array<[number, number]> = [];
    let n = 0;
    for (const [s, key] of this.pending) {
      if (this.keyOf[s] !== key || !(this.missingUntil[s] > 0)) continue; // completed or seen again
      if (!all && this.missingUntil[s] > now) { keep.push([s, key]); continue; }
      this.settle(s);
      n++;
    }
    this.pending = keep;
    this.expireRemembered();
    return n;
  }

  /**
   * The table's namespace is no longer followed (it was deleted): every
   * flow still open ended after it was last seen and by `atUs`, as far as
   * can be known (end-estimated). Returns how many were ended.
   */
  endAll(atUs: number): number {
    let n = this.sweep(true);
    const open: number[] = [];
    for (const slot of this.index.values()) for (let s = slot; s >= 0; s = this.next[s]) open.push(s);
    for (const s of open) {
      this.settleHi[s] = Math.max(atUs, this.seenUs[s]);
      this.settleLo[s] = this.endBound(s, undefined);
      this.settle(s);
      n++;
    }
    this.pending = [];
    return n;
  }

  private settle(s: number): void {
    const key = this.keyOf[s];
    const end = this.settleHi[s];
    const flags = this.flags[s] | FLAG_END_ESTIMATED;
    const activeEnd = this.activeUs[s] > 0 ? Math.min(this.activeUs[s], end) : end;
    this.remember_(s, { key, ns: this.ns, start: this.startUs[s], flags });
    this.unlink(this.idOf[s], s);
    this.counts.settled++;
    this.out.settled(key, { end, endErr: Math.max(0, end - this.settleLo[s]), activeEnd }, flags);
  }

  private remember_(s: number, ref: SettledRef): void {
    const idKey = this.idOf[s];
    const entry: Remembered = { fpA: this.fpA[s], fpB: this.fpB[s], ref, until: this.now() + this.remember };
    const l = this.recent.get(idKey);
    if (l) l.push(entry); else this.recent.set(idKey, [entry]);
    this.recentOrder.push([idKey, entry.until]);
    // bounded: the oldest go first
    while (this.recentOrder.length - this.recentHead > 200_000) this.forgetOldest();
  }

  private forgetOldest(): void {
    const [idKey, until] = this.recentOrder[this.recentHead++];
    if (this.recentHead >= 4096 && this.recentHead * 2 >= this.recentOrder.length) {
      this.recentOrder = this.recentOrder.slice(this.recentHead);
      this.recentHead = 0;
    }
    const l = this.recent.get(idKey);
    if (!l) return;
    const i = l.findIndex((e) => e.until === until);
    if (i >= 0) l.splice(i, 1);
    if (!l.length) this.recent.delete(idKey);
  }

  private expireRemembered(): void {
    const now = this.now();
    while (this.recentHead < this.recentOrder.length && this.recentOrder[this.recentHead][1] <= now) this.forgetOldest();
  }

  private takeRemembered(idKey: number, a: number, b: number): SettledRef | undefined {
    const l = this.recent.get(idKey);
    if (!l) return undefined;
    const i = l.findIndex((e) => e.fpA === a && e.fpB === b);
    if (i < 0) return undefined;
    const [e] = l.splice(i, 1);
    if (!l.length) this.recent.delete(idKey);
    return e.ref;
  }

  /**
   * Continues a flow left open in the store by an earlier run (or still in
   * the spool); the next sync settles it if it is gone.
   */
  adopt(row: AdoptRow): void {
    if (row.ns !== this.ns) return;
    // (ICMP rows keep the id in sport and type * 256 + code in dport, as the hash has them)
    tupleHash(row.proto, row.src, row.dst, row.sport ?? 0, row.dport ?? 0, fpScratch);
    const idKey = row.zone * ID_SPACE + row.ctId;
    if (this.find(idKey, fpScratch[0], fpScratch[1]) >= 0) return;
    const slot = this.alloc();
    this.link(idKey, slot);
    this.startUs[slot] = row.start;
    this.startErr[slot] = row.startErr;
    this.seenUs[slot] = row.start;
    this.eventUs[slot] = row.start;
    this.eventLo[slot] = row.start;
    this.activeUs[slot] = row.activeEnd ?? 0;
    this.keyOf[slot] = row.key;
    this.missingUntil[slot] = 0;
    this.flags[slot] = row.flags;
    this.state[slot] = NONE;
    this.status[slot] = row.status;
    this.proto[slot] = row.proto;
    // first seen in a dump by an earlier run: it may never report its end
    this.quiet[slot] = row.flags & FLAG_NO_NEW ? 1 : 0;
    if (this.quiet[slot]) this.quietCount++;
    this.fpA[slot] = fpScratch[0];
    this.fpB[slot] = fpScratch[1];
    this.gen[slot] = 0;
    this.obsClass[slot] = NO_CLASS;
  }
}

function timeoutClass(state: number, status: number): number {
  return state * 2 + (status & 4 /* IPS_ASSURED */ ? 1 : 0);
}
