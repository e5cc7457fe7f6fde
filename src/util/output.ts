// Buffered line output to a file descriptor with synchronous writes: lines
// are concatenated and written once per batch (or every 256 KiB), so
// nothing is held back when the process exits. Every char of a line must be
// < 256 (one byte each): the formats guarantee it.
import { writeSync } from 'node:fs';

export class ClosedOutputError extends Error {}

export class LineWriter {
  private pending = '';
  /** reused for every flush (a new Buffer per batch cost an allocation each) */
  private buf = Buffer.allocUnsafe(0);

  constructor(private readonly fd: number, private readonly highWater = 256 * 1024) {}

  line(s: string): void {
    this.pending += s + '\n';
    if (this.pending.length >= this.highWater) this.flush();
  }

  flush(): void {
    if (this.pending.length === 0) return;
    // Lines are one byte per char by contract (formats write ASCII, and
    // kernel strings hold one char per byte): latin1 copies them straight.
    const n = this.pending.length;
    if (this.buf.length < n) this.buf = Buffer.allocUnsafe(Math.max(n, 64 * 1024));
    this.buf.write(this.pending, 0, 'latin1');
    const data = this.buf.subarray(0, n);
    this.pending = '';
    let off = 0;
    while (off < data.length) {
      try {
        off += writeSync(this.fd, data, off, data.length - off);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') { sleepMs(1); continue; }
        if (code === 'EPIPE') throw new ClosedOutputError('output closed');
        throw e;
      }
    }
  }
}

const sab = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sab, 0, 0, ms);
}
