// The syslog sink: one syslog message per record, to the local /dev/log
// (unix datagram), or to a collector over UDP or TCP; RFC 3164 or RFC 5424;
// a bounded queue with the sink's policy when full. TCP is at-least-once: a
// record counts as written once the collector's kernel has acknowledged all
// of its bytes; when a connection is lost (reset, or the collector half-
// closes: it never sends, so a FIN means it is going away), what it had not
// acknowledged goes back to the front of the queue and is sent again on the
// next connection, made with backoff (sinks/tcp-stream.ts, shared with the
// IPFIX sink).
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { native } from '../netlink/native.js';
import { AckedStream } from './tcp-stream.js';
import type { Kind, RecordOf } from '../records/index.js';
import type { Sink, SinkStats } from './sink.js';
import { Fifo, SinkQueue } from './queue.js';

export const FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};
export const SEVERITIES: Record<string, number> = {
  emerg: 0, alert: 1, crit: 2, err: 3, warning: 4, notice: 5, info: 6, debug: 7,
};

/** The keys of a syslog sink (the daemon's schema is assembled from each component's own). */
export const SYSLOG_SINK_PROPS = {
  address: { type: 'string', default: '/dev/log', description: 'syslog: a local unix datagram socket path, `udp://HOST:PORT` or `tcp://HOST:PORT` (HOST an IPv4 address, an IPv6 address in brackets or a host name; PORT 1–65535). TCP is at-least-once: a record counts as written once the collector acknowledged it; records not acknowledged when a connection is lost are sent again (counted as `resent`); it reconnects with backoff, records wait in the queue meanwhile.' },
  protocol: { enum: ['rfc3164', 'rfc5424'], default: 'rfc3164', description: 'syslog: message format.' },
  facility: { enum: Object.keys(FACILITIES), default: 'daemon', description: 'syslog: facility.' },
  severity: { enum: Object.keys(SEVERITIES), default: 'info', description: 'syslog: severity; journal: PRIORITY.' },
  tag: { type: 'string', pattern: '^[!-~]{1,48}$', default: 'conntrail', description: 'syslog: tag (APP-NAME); journal: SYSLOG_IDENTIFIER.' },
  sd_id: { type: 'string', pattern: '^[!#-<>?A-\\\\^-~]{1,21}@[0-9]{1,10}$', default: 'conntrail@32473', description: 'syslog, RFC 5424: the SD-ID of the structured data that names the network namespace of a record from another namespace than the daemon\'s (`[conntrail@32473 netns="NAME" netns_inode="N"]`; the daemon\'s own: `-`). 32473 is the private enterprise number RFC 5612 sets aside for examples: put your organisation\'s own here if it has one.' },
} as const;

export interface SyslogSinkOptions {
  name: string;
  /** "/dev/log" (or another unix datagram path), "udp://HOST:PORT", "tcp://HOST:PORT" */
  address: string;
  protocol: 'rfc3164' | 'rfc5424';
  facility: string;
  severity: string;
  tag: string;
  /** RFC 5424: the SD-ID of the namespace's structured data (default conntrail@32473) */
  sdId?: string;
  queueSize: number;
  whenFull: 'block' | 'drop';
  warn: (msg: string) => void;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => (n < 10 ? '0' + n : String(n));

/** an RFC 5424 PARAM-VALUE: '"', '\\' and ']' escaped with a backslash */
export function sdValue(v: string): string {
  return v.replace(/["\\\]]/g, '\\$&');
}

/** "Nov 23 20:39:47" (RFC 3164 TIMESTAMP, local time, day space-padded) */
export function rfc3164Time(d: Date): string {
  const day = d.getDate();
  return MONTHS[d.getMonth()] + ' ' + (day < 10 ? ' ' + day : String(day)) + ' ' +
    p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds());
}

/** RFC 1123 host name: dot-separated labels of letters, digits and inner
 * hyphens; an all-numeric last label is a mistyped IPv4 address, not a name. */
export function isHostName(h: string): boolean {
  const name = h.endsWith('.') ? h.slice(0, -1) : h;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (/^\d+$/.test(labels[labels.length - 1])) return false;
  return labels.every((l) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

/** A sink address, checked whole (the config loader reports the message). */
export function parseAddress(address: string): { kind: 'unix' | 'udp' | 'tcp'; path?: string; host?: string; port?: number } {
  const m = /^(udp|tcp):\/\/(.*):(\d+)$/.exec(address);
  if (m) {
    const [, kind, hostPart, portText] = m;
    const port = Number(portText);
    if (!(port >= 1 && port <= 65535)) throw new Error(`"${address}": port ${portText} is out of range (expected 1-65535)`);
    const bracketed = /^\[(.*)\]$/.exec(hostPart);
    const host = bracketed ? bracketed[1] : hostPart;
    if (bracketed) {
      if (isIP(host) !== 6) throw new Error(`"${address}": "${host}" in brackets is not an IPv6 address`);
    } else if (host.includes(':')) {
      throw new Error(`"${address}": an IPv6 address goes in brackets (${kind}://[${host}]:${port})`);
    } else if (isIP(host) !== 4 && !isHostName(host)) {
      throw new Error(`"${address}": "${host}" is not an IP address or host name (expected e.g. 192.0.2.1, [2001:db8::1] or collector.example.com)`);
    }
    return { kind: kind as 'udp' | 'tcp', host, port };
  }
  if (address.startsWith('/')) return { kind: 'unix', path: address };
  throw new Error(`"${address}" is not a unix socket path, udp://HOST:PORT or tcp://HOST:PORT`);
}

export interface SyslogSinkStats extends SinkStats {
  /** TCP: records a lost connection had not acknowledged, put back to be
   * sent again (the collector may have some of them twice) */
  resent: number;
}

/** close(), UDP: how long to wait for the kernel to take every datagram */
const CLOSE_WAIT_MS = 3000;

export class SyslogSink implements Sink {
  readonly name: string;
  readonly blocking: boolean;
  /** records not written anywhere yet (unix, UDP) */
  private queue = new Fifo<string>();
  private readonly q: SinkQueue;
  private readonly pri: number;
  private readonly host = hostname().split('.')[0];
  private readonly addr: ReturnType<typeof parseAddress>;
  private udp: UdpSocket | undefined;
  /** TCP: the queue and the connection, at-least-once */
  private tcp: AckedStream<string> | undefined;
  /** close() was called: nothing more is taken, only close() sends */
  private closed = false;
  private closing: Promise<void> | undefined;
  private inflight = 0;

  constructor(private readonly o: SyslogSinkOptions) {
    this.name = o.name;
    this.q = new SinkQueue({ name: o.name, size: o.queueSize, whenFull: o.whenFull, warn: o.warn, unrefRetry: true });
    this.blocking = this.q.blocking;
    this.pri = FACILITIES[o.facility] * 8 + SEVERITIES[o.severity];
    this.addr = parseAddress(o.address);
    if (this.addr.kind === 'udp') {
      this.udp = createSocket(this.addr.host!.includes(':') ? 'udp6' : 'udp4');
      this.udp.on('error', (e) => this.fail(e));
    } else if (this.addr.kind === 'tcp') {
      // newline-terminated messages (RFC 6587 non-transparent framing), latin1: one byte per char
      this.tcp = new AckedStream<string>({
        host: this.addr.host!, port: this.addr.port!, address: o.address,
        records: () => 1, size: (m) => m.length + 1, encode: (ms) => Buffer.from(ms.join('\n') + '\n', 'latin1'),
        written: (n) => this.wrote(n), failed: (what) => this.fail(what), recovered: (what) => this.q.recovered(what),
        isFailing: () => this.q.isFailing, warn: (m) => o.warn(`sink ${o.name}: ${m}`),
      });
    }
  }

  /** One syslog message around a record (`rec`: its namespace goes in RFC 5424's structured data). */
  message(line: string, now = new Date(), rec?: { netns?: string; netnsInode?: number }): string {
    if (this.o.protocol === 'rfc5424') {
      const sd = rec?.netns ? `[${this.o.sdId ?? 'conntrail@32473'} netns="${sdValue(rec.netns)}"${rec.netnsInode ? ` netns_inode="${rec.netnsInode}"` : ''}]` : '-';
      return `<${this.pri}>1 ${now.toISOString()} ${this.host} ${this.o.tag} ${process.pid} - ${sd} ${line}`;
    }
    // RFC 3164; to the local socket without the host name, as syslog(3) does
    const head = `<${this.pri}>${rfc3164Time(now)} `;
    return this.addr.kind === 'unix'
      ? `${head}${this.o.tag}[${process.pid}]: ${line}`
      : `${head}${this.host} ${this.o.tag}[${process.pid}]: ${line}`;
  }

  private fail(e: Error | string): void {
    const what = typeof e === 'string' ? e : (e as NodeJS.ErrnoException).code ?? e.message;
    this.q.failed(`${this.o.address}: ${what}`, 'records are kept and sent when it is back');
  }

  /** records held: queued, and (TCP) written but not acknowledged */
  private held(): number {
    return this.tcp ? this.tcp.held() : this.queue.length;
  }

  push(line: string, rec?: RecordOf[Kind]): void {
    // after close() nothing is sent any more
    if (this.closed) { this.q.dropped(); return; }
    if (!this.q.admit(this.held())) return;
    // encode at once: no record's string outlives its push (see file.ts)
    const m = this.message(line, undefined, rec as { netns?: string; netnsInode?: number } | undefined);
    if (this.tcp) this.tcp.push(m); else this.queue.push(m);
    this.q.added(this.held());
  }

  full(): boolean { return this.q.full(this.held()); }
  onDrain(cb: () => void): void { this.q.onDrain(cb); }
  reopen(): void { /* nothing to reopen; TCP reconnects by itself */ }

  /** `n` more records written (and a full queue perhaps down to half) */
  private wrote(n: number): void {
    this.q.written(n, this.held());
  }

  flush(): void {
    // after close() only close() itself sends
    if (!this.closed) this.send();
  }

  private send(): void {
    const k = this.addr.kind;
    if (k === 'unix') this.sendUnix();
    else if (k === 'udp') this.sendUdp();
    else this.tcp!.flush();
    this.wrote(0);
  }

  private sendUnix(): void {
    // while a retry is scheduled, it is the one that sends (one timer, not one per batch)
    if (this.q.retrying || this.queue.length === 0) return;
    while (this.queue.length) {
      try {
        native().unixDatagramSend(this.addr.path!, Buffer.from(this.queue.peek(), 'latin1'));
      } catch (e) {
        this.fail(e as Error);
        if (!this.closed) this.q.retry(() => this.flush());
        return;
      }
      this.queue.shift();
      this.q.written(1, this.held());
    }
    this.q.recovered('sending again');
  }

  private sendUdp(): void {
    if (this.queue.length === 0) return;
    for (const m of this.queue.take()) {
      this.inflight++;
      this.udp!.send(Buffer.from(m, 'latin1'), this.addr.port!, this.addr.host!, (err) => {
        this.inflight--;
        // a datagram the network refused cannot be sent again in order: counted
        if (err) { this.fail(err); this.q.dropped(); } else this.wrote(1);
      });
    }
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    // one more try now instead of the scheduled one
    this.q.cancelRetry();
    // the last batch goes out first (flush() does nothing once closing)
    this.send();
    if (this.tcp) {
      this.closing = this.tcp.close().then(() => undefined);
      return this.closing;
    }
    if (this.queue.length) this.o.warn(`sink ${this.name}: ${this.queue.length} records not sent at exit (${this.o.address} unreachable)`);
    this.closing = new Promise((resolve) => {
      const deadline = Date.now() + CLOSE_WAIT_MS;
      const done = () => {
        // UDP: every send reports back, but not forever
        if (this.inflight > 0 && Date.now() < deadline) { setTimeout(done, 5); return; }
        if (this.udp) this.udp.close(() => resolve());
        else resolve();
      };
      done();
    });
    return this.closing;
  }

  stats(): SyslogSinkStats {
    return { ...this.q.stats(this.held() + this.inflight), resent: this.tcp?.resent ?? 0 };
  }
}
