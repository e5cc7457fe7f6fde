// A TCP stream to a collector where a record counts as written only once
// the collector's kernel has acknowledged every byte of it (SIOCOUTQ: the
// bytes sent and not acknowledged), shared by the sinks that speak TCP
// (syslog, IPFIX). Items (a syslog message, an IPFIX message) are queued
// and written one write at a time; when the connection is lost (reset, or
// the collector half-closes: it never sends, so a FIN means it is going
// away), what it had not acknowledged goes back to the front of the queue
// and is written again on the next connection, made with backoff (so a
// collector may get some twice: counted as resent). Each connection may
// open with a greeting of its own (IPFIX: the templates), which is never
// written again.
import { connect, type Socket } from 'node:net';
import { native } from '../netlink/native.js';
import { Fifo } from './queue.js';

const BACKOFF_MIN = 250;
const BACKOFF_MAX = 30_000;
/** how often what is unacknowledged is looked at, while there is some */
const POLL_MS = 20;
/** bytes per write; one write at a time, so the callback says the kernel took all of it */
const WRITE_MAX = 256 * 1024;
/** after the collector half-closed: how long its kernel may take to acknowledge what it was sent */
const END_GRACE_MS = 1000;
/** close(): how long to wait for the collector to acknowledge everything */
const CLOSE_WAIT_MS = 3000;
/** a connection up this long that takes records ends a streak of warnings */
const STABLE_MS = 1000;

export interface AckedStreamOptions<T> {
  host: string;
  port: number;
  /** the address as configured (in messages) */
  address: string;
  /** the records an item carries (0: a greeting) */
  records(item: T): number;
  /** its length in bytes once encoded */
  size(item: T): number;
  /** the bytes of items written in one go, in order (their sizes add up) */
  encode(items: T[]): Buffer;
  /** a connection is up: what it opens with, before any queued item (written once, never again) */
  greeting?(): T[];
  /** `n` records acknowledged (0: only the held count changed) */
  written(n: number): void;
  failed(what: string): void;
  recovered(what: string): void;
  isFailing(): boolean;
  warn(msg: string): void;
}

/** One TCP connection and the items written into it that its peer's
 * kernel has not acknowledged yet, as byte offsets from its start. */
class TcpConn<T> {
  up = false;
  upAt = 0;
  /** nothing more is written into it (the peer half-closed) */
  ending = false;
  /** closed or being destroyed: its callbacks and counters prove nothing */
  lost = false;
  writing = false;
  /** items written, oldest first, and where each one's bytes end */
  readonly sent = new Fifo<T>();
  readonly ends = new Fifo<number>();
  /** records in `sent` */
  sentRecords = 0;
  /** bytes given to write() */
  submitted = 0;
  /** bytes the kernel has taken (completed writes) */
  taken = 0;
  /** bytes the peer has acknowledged */
  acked = 0;
  /** records confirmed on this connection */
  confirmed = 0;
  pollTimer: NodeJS.Timeout | undefined;
  graceTimer: NodeJS.Timeout | undefined;
  constructor(readonly sock: Socket) {}

  /** the socket's descriptor while it is open, else -1 (never a closed, maybe reused, number) */
  fd(): number {
    if (this.lost || this.sock.destroyed) return -1;
    const fd = (this.sock as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    return typeof fd === 'number' ? fd : -1;
  }

  stopTimers(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.pollTimer = this.graceTimer = undefined;
  }
}

export class AckedStream<T> {
  /** items not written anywhere yet (also those given back by a lost connection) */
  private readonly queue = new Fifo<T>();
  private queuedRecords = 0;
  private conn: TcpConn<T> | undefined;
  private backoff = BACKOFF_MIN;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** records given back by a lost connection, to be written again */
  resent = 0;

  constructor(private readonly o: AckedStreamOptions<T>) {
    this.connect();
  }

  /** records held: queued, and written but not acknowledged */
  held(): number {
    return this.queuedRecords + (this.conn ? this.conn.sentRecords : 0);
  }

  push(item: T): void {
    this.queue.push(item);
    this.queuedRecords += this.o.records(item);
  }

  /** writes what is queued, if a connection is up */
  flush(): void { this.write(); }

  private connect(): void {
    this.reconnectTimer = undefined;
    // allowHalfOpen: a FIN from the collector is handled here; by default
    // Node ends our side too and reports later writes as done or failed
    // without saying what the collector has
    const s = connect({ host: this.o.host, port: this.o.port, allowHalfOpen: true });
    const c = new TcpConn<T>(s);
    this.conn = c;
    s.setNoDelay(true);
    s.on('connect', () => {
      c.up = true;
      c.upAt = Date.now();
      const g = this.o.greeting?.() ?? [];
      // (records 0: a greeting counts nothing and never goes back to the queue)
      if (g.length) { this.queue.prepend(g); }
      this.write();
    });
    // the collector never sends: its FIN means it is going away
    s.on('end', () => {
      if (c.lost || c.ending) return;
      this.o.failed('the collector closed the connection');
      this.retire(c, END_GRACE_MS);
    });
    s.on('data', () => { /* nothing is expected; read so that nothing piles up */ });
    s.on('error', (e) => this.o.failed((e as NodeJS.ErrnoException).code ?? e.message));
    s.on('close', () => this.lost(c));
  }

  /** Writes what is queued, one write at a time. */
  private write(): void {
    const c = this.conn;
    if (!c || !c.up || c.ending || c.lost || c.writing || this.queue.length === 0) return;
    const items: T[] = [];
    let bytes = 0;
    while (this.queue.length && bytes < WRITE_MAX) {
      const m = this.queue.shift();
      const r = this.o.records(m);
      this.queuedRecords -= r;
      items.push(m);
      bytes += this.o.size(m);
      c.sent.push(m);
      c.sentRecords += r;
      c.ends.push(c.submitted + bytes);
    }
    const buf = this.o.encode(items);
    c.submitted += buf.length;
    c.writing = true;
    c.sock.write(buf, (err) => {
      // on a destroyed socket a pending write may be reported done: it
      // proves nothing, and only acknowledged records count anyway
      if (c.lost || c.sock.destroyed) return;
      c.writing = false;
      if (err) return; // 'close' follows; what was not acknowledged goes back then
      c.taken += buf.length;
      this.poll(c);
      this.write();
    });
  }

  /** Counts as written the records whose every byte the peer has
   * acknowledged; looks again soon while some are not. */
  private poll(c: TcpConn<T>): void {
    if (c.pollTimer) { clearTimeout(c.pollTimer); c.pollTimer = undefined; }
    const fd = c.fd();
    if (fd < 0) return;
    let unacked: number;
    try { unacked = native().tcpUnacked(fd); } catch { return; }
    // bytes of a write the kernel is still taking count as unacknowledged
    // but not as taken: this errs low, never high
    c.acked = Math.max(c.acked, c.taken - unacked);
    let n = 0;
    while (c.ends.length && c.ends.peek() <= c.acked) {
      c.ends.shift();
      n += this.o.records(c.sent.shift());
    }
    if (n) {
      c.sentRecords -= n;
      c.confirmed += n;
      if (this.o.isFailing() && !c.ending && Date.now() - c.upAt >= STABLE_MS) this.o.recovered(`connected to ${this.o.address} again`);
      this.o.written(n);
    }
    if (c.sent.length) c.pollTimer = setTimeout(() => { c.pollTimer = undefined; this.poll(c); }, POLL_MS).unref();
  }

  /** Writes nothing more into c, waits up to graceMs for its peer to
   * acknowledge what it was sent, then lets it go. */
  private retire(c: TcpConn<T>, graceMs: number): void {
    c.ending = true;
    const deadline = Date.now() + graceMs;
    const check = () => {
      c.graceTimer = undefined;
      this.poll(c);
      if (c.lost) return;
      if ((c.sent.length === 0 && !c.writing) || Date.now() >= deadline) this.drop(c);
      else c.graceTimer = setTimeout(check, POLL_MS).unref();
    };
    check();
  }

  private drop(c: TcpConn<T>): void {
    c.lost = true;
    c.stopTimers();
    c.sock.destroy(); // 'close' follows: lost()
  }

  /** The connection is gone: every item not known to have arrived goes
   * back to the front of the queue, in order (a greeting does not); then a
   * new connection. */
  private lost(c: TcpConn<T>): void {
    c.lost = true;
    c.stopTimers();
    if (this.conn !== c) return;
    this.conn = undefined;
    const back = c.sent.take().filter((m) => this.o.records(m) > 0);
    // (a greeting queued and not yet written is the next connection's business)
    const rest = this.queue.take().filter((m) => this.o.records(m) > 0);
    this.queue.prepend([...back, ...rest]);
    const n = back.reduce((a, m) => a + this.o.records(m), 0);
    this.queuedRecords += n;
    if (!this.closed) this.resent += n;
    this.o.written(0);
    if (this.closed) return;
    // a connection that took records: the collector is there, try again soon
    if (c.confirmed > 0) this.backoff = BACKOFF_MIN;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
  }

  /** Writes what is queued, waits (bounded) for the collector to
   * acknowledge it, then closes; what it did not is reported, not counted.
   * Returns the records not confirmed. */
  close(): Promise<number> {
    this.closed = true;
    if (this.reconnectTimer) { clearTimeout(this.reconnectTimer); this.reconnectTimer = undefined; }
    // between connections (backoff): one more, now, for what is left
    if (!this.conn && this.queue.length) this.connect();
    this.write();
    const deadline = Date.now() + CLOSE_WAIT_MS;
    return new Promise((resolve) => {
      const check = () => {
        const c = this.conn;
        if (c && !c.lost) {
          this.poll(c);
          const settled = c.up && !c.ending && this.queue.length === 0 && c.sent.length === 0 && !c.writing;
          if (!settled && Date.now() < deadline) { setTimeout(check, POLL_MS); return; }
        }
        const unacked = this.conn ? this.conn.sentRecords : 0;
        const unsent = this.queuedRecords;
        if (unacked) {
          this.o.warn(`${unacked + unsent} records not confirmed by ${this.o.address} at exit ` +
            `(${unacked} sent but not acknowledged, they may have arrived; ${unsent} not sent); not counted written`);
        } else if (unsent) {
          this.o.warn(`${unsent} records not sent at exit (${this.o.address} unreachable)`);
        }
        if (!this.conn) { resolve(unacked + unsent); return; }
        const s = this.conn.sock;
        const fallback = setTimeout(() => resolve(unacked + unsent), 1000).unref();
        s.once('close', () => { clearTimeout(fallback); resolve(unacked + unsent); });
        // the kernel still sends what it holds, then our FIN; what was not
        // acknowledged by now is reported above and not counted
        this.drop(this.conn);
      };
      check();
    });
  }
}
