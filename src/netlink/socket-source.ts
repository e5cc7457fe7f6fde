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

  pause(): void { this.sock.pause(); }
  resume(): void { this.sock.resume(); }
}
