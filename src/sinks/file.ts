// The file and stdout sinks: lines appended with asynchronous writes. Each
// line is encoded into a reusable buffer as it arrives (no string is kept,
// so the garbage collector has little to do), each batch becomes one queued
// buffer, queued buffers go out in one writev; a bounded queue (in records),
// fsync policy, reopen on SIGHUP.
import { close as fsClose, closeSync, existsSync, fstatSync, fsync, openSync, renameSync, rmSync, writev, writeSync } from 'node:fs';
import type { Sink, SinkStats } from './sink.js';
import { SinkQueue } from './queue.js';

/** The keys of a file sink (the daemon's schema is assembled from each component's own). */
export const FILE_SINK_PROPS = {
  path: { type: 'string', minLength: 1, description: 'file: the file to append to (created with `mode`; reopened on SIGHUP); its directory must exist.' },
  mode: { type: 'string', pattern: '^0?[0-7]{3}$', default: '0640', description: 'file: permissions of a file the sink creates (octal).' },
  fsync: { enum: ['never', 'batch'], default: 'never', description: 'file: `batch` calls fsync after every written batch.' },
  rotate_size: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: 'file: rotate when the file reaches this many bytes (0: never; or rename it and send SIGHUP, as logrotate does).' },
  rotate_keep: { type: 'integer', minimum: 1, maximum: 1000, default: 5, description: 'file: rotated files kept, PATH.1 (newest) to PATH.N.' },
} as const;

export interface FileSinkOptions {
  name: string;
  /** a path to append to, or a file descriptor (stdout: 1) */
  target: string | number;
  /** permissions for a file the sink creates */
  mode?: number;
  fsync?: 'never' | 'batch';
  queueSize: number;
  whenFull: 'block' | 'drop';
  /** rotate when the file reaches this many bytes (0: never; logrotate + SIGHUP works too) */
  rotateSize?: number;
  /** rotated files kept: PATH.1 (newest) .. PATH.N */
  rotateKeep?: number;
  /** where write errors are reported (once per error streak) */
  warn: (msg: string) => void;
  /** written first into a new, empty file (a pcap file header) */
  header?: Buffer;
  /** checks a file that already has content before appending to it (throws to refuse it) */
  checkExisting?: (fd: number, size: number) => void;
}

const CHUNK = 256 * 1024;

export class FileSink implements Sink {
  readonly name: string;
  readonly blocking: boolean;
  private fd: number;
  /** the batch in progress, encoded as lines arrive (no string outlives its push) */
  private cur = Buffer.allocUnsafe(CHUNK);
  private curOff = 0;
  private curLines = 0;
  /** encoded batches waiting to be written (compact, off the JS heap) */
  private chunks: Buffer[] = [];
  private chunkLines: number[] = [];
  private queued = 0;
  private writing = false;
  private closing: (() => void) | undefined;
  private readonly q: SinkQueue;

  constructor(private readonly o: FileSinkOptions) {
    this.name = o.name;
    this.q = new SinkQueue({ name: o.name, size: o.queueSize, whenFull: o.whenFull, warn: o.warn });
    this.blocking = this.q.blocking;
    this.fd = this.open();
  }

  private size = 0;

  private open(): number {
    if (typeof this.o.target === 'number') return this.o.target;
    const fd = openSync(this.o.target, 'a', this.o.mode ?? 0o640);
    try {
      this.size = fstatSync(fd).size;
      if (this.size > 0) this.o.checkExisting?.(fd, this.size);
      else if (this.o.header) this.size += writeSync(fd, this.o.header);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return fd;
  }

  /** PATH -> PATH.1 -> ... -> PATH.keep (the oldest removed), then a new PATH. */
  private rotate(): void {
    const path = this.o.target as string;
    const keep = Math.max(1, this.o.rotateKeep ?? 5);
    try {
      rmSync(`${path}.${keep}`, { force: true });
      for (let i = keep - 1; i >= 1; i--) if (existsSync(`${path}.${i}`)) renameSync(`${path}.${i}`, `${path}.${i + 1}`);
      renameSync(path, `${path}.1`);
      const old = this.fd;
      this.fd = this.open();
      closeSync(old);
    } catch (e) {
      this.o.warn(`sink ${this.name}: rotation failed: ${(e as Error).message}; still writing to ${path}`);
    }
  }

  push(line: string): void {
    if (!this.q.admit(this.queued)) return;
    if (this.curOff + line.length + 1 > this.cur.length) this.seal();
    if (line.length + 1 > this.cur.length) {
      this.chunks.push(Buffer.from(line + '\n', 'latin1'));
      this.chunkLines.push(1);
    } else {
      // formats write one byte per char (see util/output.ts)
      this.curOff += this.cur.write(line, this.curOff, 'latin1');
      this.cur[this.curOff++] = 10;
      this.curLines++;
    }
    this.q.added(++this.queued);
  }

  /** Takes one record already encoded (pcap): its bytes as they are, no newline. */
  pushBytes(b: Uint8Array): void {
    if (!this.q.admit(this.queued)) return;
    if (this.curOff + b.length > this.cur.length) this.seal();
    if (b.length > this.cur.length) {
      this.chunks.push(Buffer.from(b));
      this.chunkLines.push(1);
    } else {
      this.cur.set(b, this.curOff);
      this.curOff += b.length;
      this.curLines++;
    }
    this.q.added(++this.queued);
  }

  /** Moves the batch in progress to the write queue (a compact copy). */
  private seal(): void {
    if (this.curLines === 0) return;
    this.chunks.push(Buffer.from(this.cur.subarray(0, this.curOff)));
    this.chunkLines.push(this.curLines);
    this.curOff = 0;
    this.curLines = 0;
  }

  full(): boolean {
    return this.q.full(this.queued);
  }

  onDrain(cb: () => void): void {
    this.q.onDrain(cb);
  }

  /** Ends the batch: it joins the write queue; writing starts if idle. */
  flush(): void {
    this.seal();
    if (this.writing || this.chunks.length === 0 || this.q.retrying) return;
    const bufs = this.chunks;
    const lines = this.chunkLines.reduce((a, b) => a + b, 0);
    this.chunks = [];
    this.chunkLines = [];
    this.writing = true;
    this.writeBufs(bufs, lines);
  }

  private writeBufs(bufs: Buffer[], lines: number): void {
    writev(this.fd, bufs, (err, n) => {
      if (err) {
        this.q.failed(`write failed (${err.code ?? err.message})`, 'retrying every second, records are kept');
        this.q.retry(() => this.writeBufs(bufs, lines));
        return;
      }
      const total = bufs.reduce((a, b) => a + b.length, 0);
      if (n < total) {
        // a short write: the rest, as one buffer
        this.writeBufs([Buffer.concat(bufs).subarray(n)], lines);
        return;
      }
      this.q.recovered();
      this.size += total;
      const done = () => {
        if (this.o.rotateSize && this.size >= this.o.rotateSize && typeof this.o.target === 'string') this.rotate();
        this.queued -= lines;
        this.writing = false;
        this.q.written(lines, this.queued);
        if (this.chunks.length || this.curLines) this.flush();
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
    const wait = () => { if (this.writing) setTimeout(wait, 5); else closeOld(); };
    wait();
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        if (typeof this.o.target === 'string') {
          try { closeSync(this.fd); } catch { /* already closed */ }
        }
        resolve();
      };
      if (!this.writing && this.queued === 0) { finish(); return; }
      this.closing = finish;
      this.flush();
    });
  }

  stats(): SinkStats {
    return this.q.stats(this.queued);
  }
}
