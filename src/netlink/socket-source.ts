// What every netlink source does with its socket the same way: report and
// clear its loss window, grow its receive buffer, pause and resume reading.
import type { NativeNetlinkSocket } from './native.js';

export abstract class SocketSource {
  abstract readonly sock: NativeNetlinkSocket;
  /** receive buffer the kernel granted (getsockopt SO_RCVBUF: twice the usable size) */
  abstract rcvbuf: number;

  /** The overrun count and when the first loss since the last call may have happened (µs; 0: none). */
  takeLoss(): { overruns: number; from: number } {
    return this.sock.takeLoss();
  }

  /** Asks for a larger receive buffer; returns what the kernel granted. */
  growBuffer(bytes: number): number {
    this.rcvbuf = this.sock.setRcvbuf(bytes);
    return this.rcvbuf;
  }

  /**
   * After an overrun: a receive buffer as large as the burst needed, up to
   * `max`, for `drops` records of about `truesize` bytes each dropped so far
   * (with `grow` false it only says what the buffer is). Returns the end of
   * the warning: "; receive buffer grown from A to B bytes", or
   * " (receive buffer A bytes[, at buffer_max])".
   */
  growForBurst(drops: number, truesize: number, max: number, grow: boolean): string {
    const before = this.rcvbuf;
    // the kernel grants twice what is asked. The drops counted when the
    // overrun is reported are only the start of a burst: ask for twice what
    // was queued and dropped so far, and at least eight times the buffer
    // (a limit, not memory: the kernel uses only what is queued)
    const ask = Math.min(max, Math.max(before * 8, (before + drops * truesize) * 2));
    if (grow && ask * 2 > before) {
      const got = this.growBuffer(ask);
      if (got > before) return `; receive buffer grown from ${before} to ${got} bytes`;
    }
    return ` (receive buffer ${before} bytes${ask >= max ? ', at buffer_max' : ''})`;
  }

  pause(): void { this.sock.pause(); }
  resume(): void { this.sock.resume(); }
}
