// Between the flow tables and a store: collects what the tables emit and
// writes it in batches, one transaction each, in order. When the store
// cannot take a batch (a database server down, a full disk), the batch goes
// to an on-disk spool and every later batch follows it there until the
// spool has been replayed, in order: nothing is lost and nothing overtakes.
// Memory is bounded: when neither the store nor the spool takes batches and
// `maxQueued` records wait, the writer is full and the daemon pauses its
// sources (the kernel then counts what it cannot deliver, and a resync
// recovers what it can), exactly as for a blocking sink.
import { readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, fsyncSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { FlowOutput, SettleTimes, SettledRef } from '../pipeline/flow-table.js';
import type { FlowRecord } from '../records/flow.js';
import { batchSize, emptyBatch, normalizeBatch, type StoreTarget, type Gap, type OpenRow, type Run, type StoreBatch, type WriteResult } from './store.js';
import { ensureDir } from '../util/fs.js';
import type { PacketRow } from './packets.js';
import type { AggregateRecord } from '../records/aggregate.js';
import { kernelBoot } from '../util/boot.js';
import type { TcpStateRow } from './tcpstates.js';

export interface WriterOptions {
  /** flush at least this often */
  flushMs: number;
  /** flush when this many records wait */
  maxBatch: number;
  /** keep flows this long (ms); 0: forever */
  retentionMs: number;
  /** spool directory for batches the store could not take; '' for none */
  spoolDir: string;
  /** records that may wait in memory before the writer is full */
  maxQueued?: number;
  /** a batch (if only the heartbeat of this run) at least this often, so the store knows the daemon was running */
  heartbeatMs?: number;
  warn: (msg: string) => void;
  info: (msg: string) => void;
  /** clock, µs */
  now?: () => number;
}

export interface WriterStats {
  store: string;
  /** flow records written (rows added to flows: ended and settled flows) */
  written: number;
  /** current-table rows written */
  openWritten: number;
  /** settled rows replaced by the record of their late DESTROY */
  corrected: number;
  batches: number;
  errors: number;
  /** records that went through the spool */
  spooled: number;
  /** records waiting in the spool now */
  spoolPending: number;
  replayed: number;
  expired: number;
  /** records in memory, not yet handed to the store */
  queued: number;
  /** times the writer was full (the sources were paused) */
  full: number;
  /** packet logs written, and deleted by retention */
  packetsWritten: number;
  packetsExpired: number;
  /** TCP state changes written, and deleted by retention */
  tcpStatesWritten: number;
  tcpStatesExpired: number;
  /** aggregated records written, and deleted by retention */
  aggregatesWritten: number;
  aggregatesExpired: number;
}

/** The spool's file names: a sequence number, in order. */
const SPOOL_FILE = /^\d{12}\.batch$/;

export class StoreWriter implements FlowOutput {
  private pendingOpen = new Map<number, FlowRecord>();
  private cur = emptyBatch();
  private batchSeq = 0;
  private queue: StoreBatch[] = [];
  private busy = false;
  private timer: NodeJS.Timeout | undefined;
  private expireTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = 500;
  private spoolSeq = 0;
  private spoolFiles: string[] = [];
  private down = false;
  private closing = false;
  private wasFull = false;
  private drainCb: (() => void) | undefined;
  private idle: Array<() => void> = [];
  private lastBatchAt = 0;
  private nextKey = 1;
  private readonly now: () => number;
  private readonly maxQueued: number;
  private readonly s: WriterStats;
  /** this run, stamped on every batch */
  readonly run: Run;

  constructor(readonly store: StoreTarget, private readonly o: WriterOptions) {
    this.now = o.now ?? (() => Date.now() * 1000);
    this.maxQueued = o.maxQueued ?? 200_000;
    const t = this.now();
    this.run = { id: t, started: t, alive: t, stopped: null, boot: kernelBoot() };
    this.s = {
      store: store.kind, written: 0, openWritten: 0, corrected: 0, batches: 0, errors: 0, spooled: 0, spoolPending: 0,
      replayed: 0, expired: 0, queued: 0, full: 0, packetsWritten: 0, packetsExpired: 0, tcpStatesWritten: 0, tcpStatesExpired: 0, aggregatesWritten: 0, aggregatesExpired: 0,
    };
    if (o.spoolDir) {
      ensureDir(o.spoolDir, 0o750);
      this.spoolFiles = readdirSync(o.spoolDir).filter((f) => SPOOL_FILE.test(f)).sort();
      if (this.spoolFiles.length) this.spoolSeq = Number(this.spoolFiles[this.spoolFiles.length - 1].slice(0, 12)) + 1;
    }
  }

  /**
   * Reads what an earlier run left: the current table, as the store has it
   * and as the spooled batches (not yet in the store) change it, and the
   * earlier runs. Then starts writing (the spool first). Keys of new flows
   * are above every key there.
   */
  async start(): Promise<{ open: OpenRow[]; previous: Run | undefined; readError?: Error }> {
    const open = new Map<number, OpenRow>();
    let previous: Run | undefined;
    let readError: Error | undefined;
    try {
      for (const r of await this.store.openFlows()) open.set(r.key, r);
      for (const r of await this.store.runs()) if (!previous || r.started > previous.started) previous = r;
    } catch (e) {
      readError = e as Error;
    }
    let maxKey = 0;
    for (const k of open.keys()) maxKey = Math.max(maxKey, k);
    for (const f of this.spoolFiles) {
      const b = this.readSpool(f);
      if (!b) continue;
      this.s.spoolPending += batchSize(b);
      for (const r of b.opened) {
        open.set(r.key, {
          key: r.key, start: r.start, startErr: r.startErr, flags: r.flags, activeEnd: r.activeEnd, status: r.status, proto: r.proto,
          src: r.src, sport: r.sport, dst: r.dst, dport: r.dport, zone: r.zone, ctId: r.ctId, ns: r.ns,
        });
        maxKey = Math.max(maxKey, r.key);
      }
      for (const a of b.activity) { const r = open.get(a.key); if (r && r.activeEnd === null) r.activeEnd = a.at; }
      for (const r of b.closed) open.delete(r.key);
      for (const k of b.unopen) open.delete(k);
      for (const x of b.settled) open.delete(x.key);
      if (b.run && b.run.id !== this.run.id && (!previous || b.run.started >= previous.started)) {
        previous = previous && previous.id === b.run.id ? { ...previous, alive: Math.max(previous.alive, b.run.alive), stopped: b.run.stopped ?? previous.stopped } : { ...b.run };
      }
    }
    // keys grow from here: above every key in use, and (should the store be
    // unreadable) above any key an earlier run can have handed out
    this.nextKey = Math.max(maxKey + 1, this.now());
    if (this.spoolFiles.length) {
      this.o.info(`store ${this.store.kind}: ${this.spoolFiles.length} spooled batch(es) (${this.s.spoolPending} records) from an earlier run will be replayed first`);
    }
    this.timer = setInterval(() => this.tick(), this.o.flushMs);
    this.timer.unref();
    if (this.o.retentionMs > 0) {
      this.expireTimer = setInterval(() => { void this.expire(); }, Math.min(60000, Math.max(1000, this.o.retentionMs / 100)));
      this.expireTimer.unref();
      void this.expire();
    }
    this.flush(true); // this run's first stamp
    return { open: [...open.values()], previous, readError };
  }

  private tick(): void {
    const hb = this.o.heartbeatMs ?? 10_000;
    this.flush(this.now() - this.lastBatchAt >= hb * 1000);
  }

  newKey(): number {
    return this.nextKey++;
  }

  /**
   * The store's id of a namespace name. When the store cannot be asked (a
   * server down at start), an id derived from the name, declared to the
   * store with the next batch.
   */
  async namespaceId(name: string, inode = 0): Promise<number> {
    try {
      return await this.store.namespaceId(name, inode);
    } catch {
      let h = 0x811c9dc5;
      const key = `${name}\0${inode}`;
      for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
      const id = 1024 + ((h >>> 0) % 2_000_000_000);
      (this.cur.namespaces ??= []).push({ id, name, inode });
      return id;
    }
  }

  opened(rec: FlowRecord): void {
    this.pendingOpen.set(rec.key, rec);
    if (this.pendingOpen.size >= this.o.maxBatch) this.flush();
  }

  activity(key: number, at: number): void {
    const p = this.pendingOpen.get(key);
    if (p) { if (p.activeEnd === null) p.activeEnd = at; return; }
    this.cur.activity.push({ key, at });
  }

  closed(rec: FlowRecord): void {
    if (!this.pendingOpen.delete(rec.key)) this.cur.unopen.push(rec.key);
    this.cur.closed.push(rec);
    if (this.cur.closed.length >= this.o.maxBatch) this.flush();
  }

  settled(key: number, t: SettleTimes, flags: number): void {
    // a flow opened since the last flush is written first, then settled
    this.cur.settled.push({ key, end: t.end, endErr: t.endErr, activeEnd: t.activeEnd, flags });
  }

  corrected(ref: SettledRef, rec: FlowRecord): void {
    const i = this.cur.settled.findIndex((x) => x.key === ref.key);
    if (i >= 0) {
      // the settle has not been written yet: the record simply ends the flow
      this.cur.settled.splice(i, 1);
      this.closed(rec);
      return;
    }
    this.cur.corrections.push({ ref, rec });
  }

  /** A packet log (an NFLOG source's). */
  packet(row: PacketRow): void {
    this.cur.packets.push(row);
    if (this.cur.packets.length >= this.o.maxBatch) this.flush();
  }

  /** An aggregated flow record (a stage's with store = true). */
  aggregate(r: AggregateRecord): void {
    this.cur.aggregates.push(r);
    if (this.cur.aggregates.length >= this.o.maxBatch) this.flush();
  }

  /** A TCP state change (a tcpstates source's). */
  tcpState(row: TcpStateRow): void {
    this.cur.tcpStates.push(row);
    if (this.cur.tcpStates.length >= this.o.maxBatch) this.flush();
  }

  /** Records of a namespace were lost in [since, until] (µs). */
  gap(g: Gap): void {
    this.cur.gaps.push(g);
  }

  stats(): WriterStats {
    let q = batchSize(this.cur) + this.pendingOpen.size;
    for (const b of this.queue) q += batchSize(b);
    return { ...this.s, queued: q };
  }

  /** Is memory at its bound (the store and the spool both refusing)? */
  full(): boolean {
    const f = this.stats().queued >= this.maxQueued;
    if (f && !this.wasFull) { this.wasFull = true; this.s.full++; }
    return f;
  }

  /** Called when a full writer has room again. */
  onDrain(cb: () => void): void {
    this.drainCb = cb;
  }

  /** Hands what has accumulated to the store (in the background); `stamp`: even if nothing has. */
  flush(stamp = false): void {
    if (!stamp && !this.pendingOpen.size && !batchSize(this.cur) && !this.cur.unopen.length) return;
    const b = this.cur;
    b.opened = [...this.pendingOpen.values()];
    this.pendingOpen.clear();
    this.cur = emptyBatch();
    this.run.alive = this.now();
    b.run = { ...this.run };
    b.id = `${this.run.id}-${this.batchSeq++}`;
    this.lastBatchAt = this.run.alive;
    this.queue.push(b);
    // while the store is down, batches go straight behind the spooled ones
    if (this.down && this.o.spoolDir) this.spill();
    this.pump();
  }

  private readSpool(file: string): StoreBatch | undefined {
    try {
      return normalizeBatch(JSON.parse(readFileSync(join(this.o.spoolDir, file), 'utf8')) as Partial<StoreBatch>);
    } catch {
      return undefined;
    }
  }

  private toSpool(b: StoreBatch): void {
    const name = String(this.spoolSeq++).padStart(12, '0') + '.batch';
    const tmp = join(this.o.spoolDir, name + '.tmp');
    try {
      const fd = openSync(tmp, 'w', 0o640);
      try {
        writeFileSync(fd, JSON.stringify(b));
        fsyncSync(fd);
      } finally { closeSync(fd); }
      renameSync(tmp, join(this.o.spoolDir, name));
      // the rename itself is durable only once the directory is synced
      const dfd = openSync(this.o.spoolDir, 'r');
      try { fsyncSync(dfd); } finally { closeSync(dfd); }
    } catch (e) {
      try { unlinkSync(tmp); } catch { /* never created */ }
      throw e;
    }
    this.spoolFiles.push(name);
    const n = batchSize(b);
    this.s.spooled += n;
    this.s.spoolPending += n;
  }

  /** Writes queued batches one at a time; spooled ones first. */
  private pump(): void {
    if (this.busy || this.retryTimer) return;
    const next = this.nextBatch();
    if (!next) { this.finishIdle(); return; }
    this.busy = true;
    const { batch, file } = next;
    let started: Promise<WriteResult>;
    try {
      started = this.store.write(batch);
    } catch (e) {
      started = Promise.reject(e as Error);
    }
    started.then((res) => {
      this.busy = false;
      this.s.batches++;
      this.s.written += res.flows;
      this.s.openWritten += res.open;
      this.s.corrected += res.corrected;
      this.s.packetsWritten += res.packets ?? 0;
      this.s.tcpStatesWritten += res.tcpStates ?? 0;
      this.s.aggregatesWritten += res.aggregates ?? 0;
      if (file) {
        try { unlinkSync(join(this.o.spoolDir, file)); } catch { /* gone already */ }
        this.spoolFiles.shift();
        const n = batchSize(batch);
        this.s.replayed += n;
        this.s.spoolPending -= n;
        if (!this.spoolFiles.length) this.o.info(`store ${this.store.kind}: spool replayed, writing directly again`);
      }
      if (this.down) {
        this.down = false;
        this.retryMs = 500;
        this.o.info(`store ${this.store.kind}: writing again`);
      }
      this.checkDrained();
      this.pump();
    }, (e: Error) => {
      this.busy = false;
      this.s.errors++;
      if (!this.down) {
        this.down = true;
        this.o.warn(`store ${this.store.kind}: write failed (${e.message}); ${this.o.spoolDir ? `spooling to ${this.o.spoolDir}` : 'keeping records in memory'} and retrying`);
      }
      // a batch from memory goes back to the front of the queue, and with a
      // spool the whole queue goes to disk behind what is already there
      if (!file) {
        this.queue.unshift(batch);
        if (this.o.spoolDir) this.spill();
      }
      this.checkDrained();
      if (this.closing) { this.finishIdle(); return; }
      this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.pump(); }, this.retryMs);
      this.retryTimer.unref(); // the sources keep the daemon alive, not a retry
      this.retryMs = Math.min(this.retryMs * 2, 10000);
    });
  }

  private checkDrained(): void {
    if (this.wasFull && this.stats().queued < this.maxQueued / 2) {
      this.wasFull = false;
      this.drainCb?.();
    }
  }

  /**
   * Moves the batches waiting in memory to the spool, oldest first. A batch
   * leaves memory only once it is on disk: if the disk refuses, it and those
   * behind it stay queued (and are written from memory, after the spool).
   */
  private spill(): void {
    while (this.queue.length) {
      try {
        this.toSpool(this.queue[0]);
      } catch (e) {
        if (!this.spillFailing) this.o.warn(`store ${this.store.kind}: cannot spool (${(e as Error).message}); keeping ${this.queue.length} batch(es) in memory`);
        this.spillFailing = true;
        return;
      }
      this.spillFailing = false;
      this.queue.shift();
    }
  }

  private spillFailing = false;

  private finishIdle(): void {
    const w = this.idle;
    this.idle = [];
    for (const f of w) f();
  }

  private nextBatch(): { batch: StoreBatch; file?: string } | undefined {
    while (this.spoolFiles.length) {
      // new batches queue behind the spool
      this.spill();
      const file = this.spoolFiles[0];
      const batch = this.readSpool(file);
      if (batch) return { batch, file };
      this.o.warn(`store ${this.store.kind}: spooled batch ${file} is unreadable; moved aside as ${file}.bad`);
      try { renameSync(join(this.o.spoolDir, file), join(this.o.spoolDir, file + '.bad')); } catch { /* gone */ }
      this.spoolFiles.shift();
    }
    const batch = this.queue.shift();
    return batch ? { batch } : undefined;
  }

  private async expire(): Promise<void> {
    if (this.down) return;
    try {
      const cutoff = (Date.now() - this.o.retentionMs) * 1000;
      // small steps, so ingest never waits long behind a delete
      for (let i = 0; i < 100; i++) {
        const n = await this.store.expire(cutoff, 20000);
        const k = await this.store.expirePackets(cutoff, 20000);
        const m = await this.store.expireTcpStates(cutoff, 20000);
        const g = await this.store.expireAggregates(cutoff, 20000);
        this.s.expired += n;
        this.s.packetsExpired += k;
        this.s.tcpStatesExpired += m;
        this.s.aggregatesExpired += g;
        if (n < 20000 && k < 20000 && m < 20000 && g < 20000) break;
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      this.o.warn(`store ${this.store.kind}: retention failed: ${(e as Error).message}`);
    }
  }

  /**
   * Flushes (with this run's stop time) and waits until everything is
   * written or spooled. With a store that stays down and no spool, gives up
   * after `maxWaitMs` and says how many records were not written.
   */
  async close(maxWaitMs = 10000): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    if (this.expireTimer) clearInterval(this.expireTimer);
    this.run.stopped = this.now();
    this.flush(true);
    const done = new Promise<void>((r) => { this.idle.push(r); });
    if (!this.busy) this.pump();
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((r) => { timeout = setTimeout(r, maxWaitMs); })]);
    if (timeout) clearTimeout(timeout);
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = undefined; }
    // a store still down or too slow: what is queued goes to the spool, if there is one
    if (this.o.spoolDir) this.spill();
    const left = this.stats().queued;
    if (left) this.o.warn(`store ${this.store.kind}: ${left} records could not be written before stopping`);
    await this.store.close();
  }
}
