// The flow table: follows each conntrack entry from NEW through UPDATE to
// DESTROY and emits one FlowRecord per flow. It keeps only what the DESTROY
// event does not carry (start time, last state and status) in flat typed
// arrays, so a million open flows cost tens of MiB; the tuples of open flows
// live in the store (its "current table"), written when the flow is opened.
import type { FlowEvent } from '../conntrack/record.js';
import { IPS_CONFIRMED } from '../conntrack/constants.js';
import {
  FLAG_END_ESTIMATED, FLAG_NO_NEW, FLAG_START_UNKNOWN, recordFromEvent, type FlowRecord,
} from './record.js';

export interface FlowOutput {
  /** a flow was opened (or first seen): the store may write it to its current table */
  opened(rec: FlowRecord): void;
  /** a flow ended: its final record */
  closed(rec: FlowRecord): void;
  /** a flow open in the store ended unseen (events were lost): end it there */
  settled(key: number, end: number, flags: number): void;
}

export interface FlowTableStats {
  open: number;
  opened: number;
  closed: number;
  /** DESTROYs of flows whose NEW was not seen */
  partial: number;
  /** flows ended by a table dump because their DESTROY was lost */
  settled: number;
}

/** Key of a conntrack entry: namespace index (0..31), zone, conntrack id. */
export function flowKey(ns: number, zone: number, id: number): number {
  return (ns * 65536 + zone) * 4294967296 + id;
}

/** The namespace index a key was made with. */
export function nsOfKey(key: number): number {
  return Math.floor(key / 281474976710656); // 2^48
}

const NONE = 255; // "no state" in the state array

export class FlowTable {
  private readonly index = new Map<number, number>();
  private cap = 0;
  private startMs = new Float64Array(0);
  private status = new Uint32Array(0);
  private fp = new Int32Array(0);
  private gen = new Uint32Array(0);
  private state = new Uint8Array(0);
  private flags = new Uint8Array(0);
  private free: number[] = [];
  private next = 0;
  private generation = 1;
  private syncing = false;
  private readonly counts = { opened: 0, closed: 0, partial: 0, settled: 0 };

  /** ns: this source's namespace index, part of every key */
  constructor(private readonly ns: number, private readonly out: FlowOutput, initial = 1024) {
    this.grow(initial);
  }

  private grow(n: number): void {
    const cap = Math.max(n, this.cap * 2);
    const copy = <T extends Float64Array | Uint32Array | Int32Array | Uint8Array>(a: T, b: T): T => { b.set(a); return b; };
    this.startMs = copy(this.startMs, new Float64Array(cap));
    this.status = copy(this.status, new Uint32Array(cap));
    this.fp = copy(this.fp, new Int32Array(cap));
    this.gen = copy(this.gen, new Uint32Array(cap));
    this.state = copy(this.state, new Uint8Array(cap));
    this.flags = copy(this.flags, new Uint8Array(cap));
    this.cap = cap;
  }

  private alloc(): number {
    const f = this.free.pop();
    if (f !== undefined) return f;
    if (this.next === this.cap) this.grow(this.cap * 2);
    return this.next++;
  }

  get size(): number { return this.index.size; }

  stats(): FlowTableStats {
    return { open: this.index.size, ...this.counts };
  }

  /** Passes one event (NEW, UPDATE, DESTROY or a DUMP entry) through the table. */
  handle(ev: FlowEvent): void {
    if (ev.id === undefined) return; // every kernel since 2.6.x sends one
    const key = flowKey(this.ns, ev.zone ?? 0, ev.id);
    const fp = fingerprint(ev);
    let slot = this.index.get(key);
    if (slot !== undefined && this.fp[slot] !== fp) {
      // the id was reused by a different connection: the old one's DESTROY was lost
      this.settle(key, slot, Math.floor(ev.recvTime / 1000));
      slot = undefined;
    }
    const state = ev.tcpState ?? ev.sctpState ?? ev.dccpState;
    if (ev.type === 'DESTROY') {
      const end = ev.stop !== undefined ? Number(ev.stop / 1000000n) : Math.floor(ev.recvTime / 1000);
      // the kernel's start timestamp is exact; the NEW event's receive time is a little late
      const kstart = ev.start !== undefined ? Number(ev.start / 1000000n) : undefined;
      let start: number;
      let flags: number;
      let st: number | null = null;
      let status = IPS_CONFIRMED;
      if (slot !== undefined) {
        start = kstart ?? this.startMs[slot];
        flags = kstart !== undefined ? this.flags[slot] & ~FLAG_START_UNKNOWN : this.flags[slot];
        st = this.state[slot] === NONE ? null : this.state[slot];
        status = this.status[slot];
        this.index.delete(key);
        this.free.push(slot);
      } else {
        this.counts.partial++;
        start = kstart ?? end;
        flags = kstart !== undefined ? FLAG_NO_NEW : FLAG_NO_NEW | FLAG_START_UNKNOWN;
      }
      this.counts.closed++;
      this.out.closed(recordFromEvent(ev, key, this.ns, start, end, st, ev.status ?? status, flags));
      return;
    }
    if (slot !== undefined) {
      if (state !== undefined) this.state[slot] = state;
      if (ev.status !== undefined) this.status[slot] = ev.status;
      this.gen[slot] = this.generation;
      return;
    }
    // NEW, or an UPDATE / dump entry of a flow not seen before
    slot = this.alloc();
    let flags = 0;
    let start: number;
    if (ev.type === 'NEW') start = ev.start !== undefined ? Number(ev.start / 1000000n) : Math.floor(ev.recvTime / 1000);
    else {
      flags = FLAG_NO_NEW;
      if (ev.start !== undefined) start = Number(ev.start / 1000000n);
      else { start = Math.floor(ev.recvTime / 1000); flags |= FLAG_START_UNKNOWN; }
    }
    this.index.set(key, slot);
    this.startMs[slot] = start;
    this.flags[slot] = flags;
    this.state[slot] = state ?? NONE;
    this.status[slot] = ev.status ?? 0;
    this.fp[slot] = fp;
    this.gen[slot] = this.generation;
    this.counts.opened++;
    this.out.opened(recordFromEvent(ev, key, this.ns, start, null, state ?? null, ev.status ?? 0, flags));
  }

  private settle(key: number, slot: number, end: number): void {
    this.index.delete(key);
    this.free.push(slot);
    this.counts.settled++;
    this.out.settled(key, end, this.flags[slot] | FLAG_END_ESTIMATED);
  }

  /**
   * A table dump begins: entries passed to handle() from now on are marked
   * seen; endSync() then ends every flow the dump did not have.
   */
  beginSync(): void {
    this.generation++;
    this.syncing = true;
  }

  /** The dump is complete: flows it did not contain ended unseen at `endMs`. Returns how many. */
  endSync(endMs: number): number {
    if (!this.syncing) return 0;
    this.syncing = false;
    const g = this.generation;
    let n = 0;
    for (const [key, slot] of this.index) {
      if (this.gen[slot] !== g) { this.settle(key, slot, endMs); n++; }
    }
    return n;
  }

  /**
   * Adopts a flow left open in the store by an earlier run, if it is this
   * table's (settled by the next sync if it is gone). The row has ICMP's id
   * in `sport` and type/code in `dport`, as stored.
   */
  adopt(row: { key: number; start: number; flags: number; proto: number; sport: number | null; dport: number | null }): void {
    const { key } = row;
    if (nsOfKey(key) !== this.ns || this.index.has(key)) return;
    const icmp = row.proto === 1 || row.proto === 58;
    const fp = fingerprint({ proto: row.proto, orig: icmp ? { icmpId: row.sport ?? 0 } : { sport: row.sport ?? undefined, dport: row.dport ?? undefined } });
    const slot = this.alloc();
    this.index.set(key, slot);
    this.startMs[slot] = row.start;
    this.flags[slot] = row.flags;
    this.state[slot] = NONE;
    this.status[slot] = 0;
    this.fp[slot] = fp;
    this.gen[slot] = 0;
  }
}

/** A cheap check that an id still names the same connection: protocol and ports. */
export function fingerprint(ev: { proto: number; orig: { sport?: number; dport?: number; icmpId?: number } }): number {
  const o = ev.orig;
  return ((ev.proto << 24) ^ ((o.sport ?? o.icmpId ?? 0) << 8) ^ (o.dport ?? 0)) | 0;
}
