// The bounded queue every sink shares: its policy when full (block: the
// pipeline pauses the sources; drop: new records are dropped and counted),
// the counters, one warning per streak of failures, one retry timer with
// backoff (never two), and the drain signal (when a full queue is down to
// half). A sink keeps only its transport: what it holds, and how it writes.
import type { SinkStats } from './sink.js';

/** A first-in first-out queue: taking from the front moves an index (no
 * O(n) Array.shift), and what a lost connection gives back goes in front. */
export class Fifo<T> {
  private a: (T | undefined)[] = [];
  private h = 0;
  get length(): number { return this.a.length - this.h; }
  push(x: T): void { this.a.push(x); }
  peek(): T { return this.a[this.h] as T; }
  shift(): T {
    const x = this.a[this.h] as T;
    this.a[this.h++] = undefined; // not kept alive by the queue
    if (this.h === this.a.length) { this.a = []; this.h = 0; }
    else if (this.h >= 4096 && this.h * 2 >= this.a.length) { this.a = this.a.slice(this.h); this.h = 0; }
    return x;
  }
  /** everything, in order; the queue is left empty */
  take(): T[] {
    const all = this.a.slice(this.h) as T[];
    this.a = [];
    this.h = 0;
    return all;
  }
  /** puts xs in front, in their order */
  prepend(xs: T[]): void {
    if (xs.length <= this.h) {
      this.h -= xs.length;
      for (let i = 0; i < xs.length; i++) this.a[this.h + i] = xs[i];
    } else {
      this.a = (xs as (T | undefined)[]).concat(this.a.slice(this.h));
      this.h = 0;
    }
  }
}

export interface QueueOptions {
  name: string;
  /** records the sink may hold */
  size: number;
  whenFull: 'block' | 'drop';
  warn: (msg: string) => void;
  /** first retry after a failure, and the longest wait between retries (ms) */
  retryMs?: number;
  retryMaxMs?: number;
  /** the retry timer does not keep the process alive */
  unrefRetry?: boolean;
}

export class SinkQueue {
  readonly blocking: boolean;
  readonly size: number;
  readonly st: SinkStats;
  private wasFull = false;
  private drainCb: (() => void) | undefined;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private wait: number;

  constructor(private readonly o: QueueOptions) {
    this.blocking = o.whenFull === 'block';
    this.size = o.size;
    this.wait = o.retryMs ?? 1000;
    this.st = { name: o.name, written: 0, dropped: 0, queued: 0, errors: 0 };
  }

  /**
   * May a record join a sink holding `held`? With `drop`, not when full (it
   * is counted). With `block` always: the pipeline pauses the sources after
   * this batch, and what the batch still carries is kept (the queue may
   * exceed its size by one batch).
   */
  admit(held: number): boolean {
    if (held >= this.size && !this.blocking) { this.st.dropped++; return false; }
    return true;
  }

  /** A record joined: the sink holds `held` now. */
  added(held: number): void {
    if (held >= this.size) this.wasFull = true;
  }

  /** Counts `n` records dropped for another reason (a datagram the network refused). */
  dropped(n = 1): void { this.st.dropped += n; }

  full(held: number): boolean { return held >= this.size; }

  onDrain(cb: () => void): void { this.drainCb = cb; }

  /** `n` records are written; the sink holds `held` now (a full queue down to half: drained). */
  written(n: number, held: number): void {
    this.st.written += n;
    if (this.wasFull && held < this.size / 2) {
      this.wasFull = false;
      this.drainCb?.();
    }
  }

  /** A write failed: counted; warned once per streak (`what` says how; `then` what happens now). */
  failed(what: string, then = 'records are kept, retrying'): void {
    this.st.errors++;
    if (!this.failing) this.o.warn(`sink ${this.o.name}: ${what}; ${then}`);
    this.failing = true;
  }

  /** Writing works again: the end of a streak is said once. */
  recovered(msg = 'writing again'): void {
    if (this.failing) { this.o.warn(`sink ${this.o.name}: ${msg}`); this.failing = false; }
    this.wait = this.o.retryMs ?? 1000;
  }

  get isFailing(): boolean { return this.failing; }

  /** Is a retry scheduled (then it is the one that writes)? */
  get retrying(): boolean { return this.timer !== undefined; }

  /**
   * Runs `fn` later, once: a retry already scheduled stays the only one.
   * The wait doubles up to retryMaxMs while failures go on.
   */
  retry(fn: () => void): void {
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; fn(); }, this.wait);
    if (this.o.unrefRetry) this.timer.unref();
    this.wait = Math.min(this.wait * 2, this.o.retryMaxMs ?? this.wait);
  }

  /** Cancels the scheduled retry (closing: one more try now instead). */
  cancelRetry(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
  }

  stats(queued: number): SinkStats {
    return { ...this.st, queued };
  }
}
