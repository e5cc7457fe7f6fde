// Between the flow tables and a store: collects what the tables emit and
// writes it in batches, one transaction each, in order. When the store
// cannot take a batch (a database server down or unreachable), the batch
// goes to an on-disk spool and every later batch follows it there until
// the spool has been replayed, in order: nothing is lost and nothing
// overtakes. With no spool directory a failed batch is retried in memory.
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, fsyncSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { FlowOutput } from '../flow/table.js';
import type { FlowRecord } from '../flow/record.js';
import { batchSize, type FlowStore, type StoreBatch } from './store.js';

export interface WriterOptions {
  /** flush at least this often */
  flushMs: number;
  /** flush when this many records wait */
  maxBatch: number;
  /** keep flows this long (ms); 0: forever */
  retentionMs: number;
  /** spool directory for batches the store could not take; '' for none */
  spoolDir: string;
  warn: (msg: string) => void;
  info: (msg: string) => void;
}

export interface WriterStats {
  store: string;
  /** flow records written (ended flows) */
  written: number;
  /** current-table rows written */
  openWritten: number;
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
}

function emptyBatch(): StoreBatch {
  return { opened: [], closed: [], unopen: [], settled: [] };
}

export class StoreWriter implements FlowOutput {
  private pendingOpen = new Map<number, FlowRecord>();
  private cur = emptyBatch();
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
  private idle: Array<() => void> = [];
  private readonly s: WriterStats;

  constructor(readonly store: FlowStore, private readonly o: WriterOptions) {
    this.s = { store: store.kind, written: 0, openWritten: 0, batches: 0, errors: 0, spooled: 0, spoolPending: 0, replayed: 0, expired: 0, queued: 0 };
    if (o.spoolDir) {
      mkdirSync(o.spoolDir, { recursive: true, mode: 0o750 });
      this.spoolFiles = readdirSync(o.spoolDir).filter((f) => /^\d{12}\.batch$/.test(f)).sort();
      if (this.spoolFiles.length) {
        this.spoolSeq = Number(this.spoolFiles[this.spoolFiles.length - 1].slice(0, 12)) + 1;
        this.s.spoolPending = this.spoolFiles.reduce((n, f) => n + this.countSpooled(f), 0);
        o.info(`store ${store.kind}: ${this.spoolFiles.length} spooled batch(es) (${this.s.spoolPending} records) from an earlier run will be replayed first`);
      }
    }
    this.timer = setInterval(() => this.flush(), o.flushMs);
    this.timer.unref();
    if (o.retentionMs > 0) {
      this.expireTimer = setInterval(() => { void this.expire(); }, Math.min(60000, Math.max(1000, o.retentionMs / 100)));
      this.expireTimer.unref();
      void this.expire();
    }
    if (this.spoolFiles.length) this.pump();
  }

  opened(rec: FlowRecord): void {
    this.pendingOpen.set(rec.key, rec);
    if (this.pendingOpen.size >= this.o.maxBatch) this.flush();
  }

  closed(rec: FlowRecord): void {
    if (!this.pendingOpen.delete(rec.key)) this.cur.unopen.push(rec.key);
    this.cur.closed.push(rec);
    if (this.cur.closed.length >= this.o.maxBatch) this.flush();
  }

  settled(key: number, end: number, flags: number): void {
    // a flow opened since the last flush is written first, then settled
    this.cur.settled.push({ key, end, flags });
  }

  stats(): WriterStats {
    let q = batchSize(this.cur) + this.pendingOpen.size;
    for (const b of this.queue) q += batchSize(b);
    return { ...this.s, queued: q };
  }

  /** Hands what has accumulated to the store (in the background). */
  flush(): void {
    if (!this.pendingOpen.size && !batchSize(this.cur) && !this.cur.unopen.length) return;
    const b = this.cur;
    b.opened = [...this.pendingOpen.values()];
    this.pendingOpen.clear();
    this.cur = emptyBatch();
    this.queue.push(b);
    this.pump();
  }

  private countSpooled(file: string): number {
    try { return batchSize(JSON.parse(readFileSync(join(this.o.spoolDir, file), 'utf8')) as StoreBatch); } catch { return 0; }
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
    const started = this.store.write(batch);
    started.then(() => {
      this.busy = false;
      this.s.batches++;
      this.s.written += batch.closed.length + batch.settled.length;
      this.s.openWritten += batch.opened.length;
      if (file) {
        unlinkSync(join(this.o.spoolDir, file));
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
      if (this.closing) { this.finishIdle(); return; }
      this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.pump(); }, this.retryMs);
      this.retryTimer.unref(); // the sources keep the daemon alive, not a retry
      this.retryMs = Math.min(this.retryMs * 2, 10000);
    });
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
        this.o.warn(`store ${this.store.kind}: cannot spool (${(e as Error).message}); keeping ${this.queue.length} batch(es) in memory`);
        return;
      }
      this.queue.shift();
    }
  }

  private finishIdle(): void {
    const w = this.idle;
    this.idle = [];
    for (const f of w) f();
  }

  private nextBatch(): { batch: StoreBatch; file?: string } | undefined {
    if (this.spoolFiles.length) {
      // new batches queue behind the spool
      this.spill();
      const file = this.spoolFiles[0];
      let batch: StoreBatch;
      try { batch = JSON.parse(readFileSync(join(this.o.spoolDir, file), 'utf8')) as StoreBatch; } catch (e) {
        this.o.warn(`store ${this.store.kind}: spooled batch ${file} is unreadable (${(e as Error).message}); moved aside`);
        renameSync(join(this.o.spoolDir, file), join(this.o.spoolDir, file + '.bad'));
        this.spoolFiles.shift();
        return this.nextBatch();
      }
      return { batch, file };
    }
    const batch = this.queue.shift();
    return batch ? { batch } : undefined;
  }

  private async expire(): Promise<void> {
    if (this.down) return;
    try {
      const cutoff = Date.now() - this.o.retentionMs;
      // small steps, so ingest never waits long behind a delete
      for (let i = 0; i < 100; i++) {
        const n = await this.store.expire(cutoff, 20000);
        this.s.expired += n;
        if (n < 20000) break;
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      this.o.warn(`store ${this.store.kind}: retention failed: ${(e as Error).message}`);
    }
  }

  /**
   * Flushes and waits until everything is written or spooled. With a store
   * that stays down and no spool, gives up after `maxWaitMs` and says how
   * many records were not written.
   */
  async close(maxWaitMs = 10000): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    if (this.expireTimer) clearInterval(this.expireTimer);
    this.flush();
    const done = new Promise<void>((r) => { this.idle.push(r); });
    if (!this.busy) this.pump();
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((r) => { timeout = setTimeout(r, maxWaitMs); })]);
    if (timeout) clearTimeout(timeout);
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = undefined; }
    // a store still down: what is queued goes to the spool, if there is one
    if (this.down && this.o.spoolDir) this.spill();
    const left = this.stats().queued;
    if (left) this.o.warn(`store ${this.store.kind}: ${left} records could not be written before stopping`);
    await this.store.close();
  }
}
