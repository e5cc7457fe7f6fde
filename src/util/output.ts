// Buffered line output to a file descriptor with synchronous writes: one
// write per batch, nothing held back when the process exits.
import { writeSync } from 'node:fs';

export class ClosedOutputError extends Error {}

export class LineWriter {
  private parts: string[] = [];
  private size = 0;

  constructor(private readonly fd: number, private readonly highWater = 256 * 1024) {}

  line(s: string): void {
    this.parts.push(s);
    this.size += s.length + 1;
    if (this.size >= this.highWater) this.flush();
  }

  flush(): void {
    if (this.parts.length === 0) return;
    const data = Buffer.from(this.parts.join('\n') + '\n');
    this.parts = [];
    this.size = 0;
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
