// The file and stdout sinks: lines appended with asynchronous writes, one
// write per batch, a bounded queue, fsync policy, reopen on SIGHUP.
import { close as fsClose, fsync, openSync, write, closeSync } from 'node:fs';
import type { Sink, SinkStats } from './sink.js';

export interface FileSinkOptions {
  name: string;
  /** a path to append to, or a file descriptor (stdout: 1) */
  target: string | number;
  /** permissions for a file the sink creates */
  mode?: number;
  fsync?: 'never' | 'batch';
  queueSize: number;
  whenFull: 'block' | 'drop';
  /** where write errors are reported (once per error streak) */
  warn: (msg: string) => void;
}

export class FileSink implements Sink {
  readonly name: string;
  readonly blocking: boolean;
  private fd: number;
  private queue: string[] = [];
  private writing = false;
  private closing: (() => void) | undefined;
  private drainCb: (() => void) | undefined;
  private wasFull = false;
  private failing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private st: SinkStats;

  constructor(private readonly o: FileSinkOptions) {
    this.name = o.name;
    this.blocking = o.whenFull === 'block';
    this.st = { name: o.name, written: 0, dropped: 0, queued: 0, errors: 0 };
    this.fd = this.open();
  }

  private open(): number {
    if (typeof this.o.target === 'number') return this.o.target;
    return openSync(this.o.target, 'a', this.o.mode ?? 0o640);
  }

  push(line: string): void {
    if (this.queue.length >= this.o.queueSize) {
      if (!this.blocking) { this.st.dropped++; return; }
      // block: the pipeline pauses the sources after this batch; what the
      // batch still carries is kept (the queue may exceed its size by one batch)
      this.wasFull = true;
    }
    this.queue.push(line);
  }

  full(): boolean {
    return this.queue.length >= this.o.queueSize;
  }

  onDrain(cb: () => void): void {
    this.drainCb = cb;
  }

  flush(): void {
    if (this.writing || this.queue.length === 0 || this.retryTimer) return;
    const lines = this.queue;
    this.queue = [];
    this.writing = true;
    // formats write one byte per char (see util/output.ts)
    const data = Buffer.from(lines.join('\n') + '\n', 'latin1');
    this.writeChunk(data, 0, lines);
  }

  private writeChunk(data: Buffer, off: number, lines: string[]): void {
    write(this.fd, data, off, data.length - off, null, (err, n) => {
      if (err) {
        this.st.errors++;
        if (!this.failing) this.o.warn(`sink ${this.name}: write failed (${err.code ?? err.message}); retrying every second, records are kept`);
        this.failing = true;
        this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.writeChunk(data, off, lines); }, 1000);
        return;
      }
      if (off + n < data.length) { this.writeChunk(data, off + n, lines); return; }
      if (this.failing) { this.o.warn(`sink ${this.name}: writing again`); this.failing = false; }
      const done = () => {
        this.st.written += lines.length;
        this.writing = false;
        if (this.wasFull && this.queue.length < this.o.queueSize / 2) {
          this.wasFull = false;
          this.drainCb?.();
        }
        if (this.queue.length) this.flush();
        else if (this.closing) this.closing();
      };
      if (this.o.fsync === 'batch' && typeof this.o.target === 'string') fsync(this.fd, () => done());
      else done();
    });
  }

  reopen(): void {
    if (typeof this.o.target === 'number') return;
    const old = this.fd;
    this.fd = this.open();
    // an in-flight write finishes on the old descriptor first
    const closeOld = () => fsClose(old, () => {});
    if (this.writing) setImmediate(function wait(this: FileSink) { if (this.writing) setTimeout(wait.bind(this), 5); else closeOld(); }.bind(this));
    else closeOld();
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        if (typeof this.o.target === 'string') {
          try { closeSync(this.fd); } catch { /* already closed */ }
        }
        resolve();
      };
      if (!this.writing && this.queue.length === 0) { finish(); return; }
      this.closing = finish;
      this.flush();
    });
  }

  stats(): SinkStats {
    return { ...this.st, queued: this.queue.length };
  }
}
