// The syslog sink: one syslog message per record, to the local /dev/log
// (unix datagram), or to a collector over UDP or TCP; RFC 3164 or RFC 5424;
// a bounded queue with the sink's policy when full; TCP reconnects with
// backoff and keeps the queue meanwhile.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { hostname } from 'node:os';
import { connect, isIP, type Socket } from 'node:net';
import { native } from '../netlink/native.js';
import type { Sink, SinkStats } from './sink.js';

export const FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};
export const SEVERITIES: Record<string, number> = {
  emerg: 0, alert: 1, crit: 2, err: 3, warning: 4, notice: 5, info: 6, debug: 7,
};

export interface SyslogSinkOptions {
  name: string;
  /** "/dev/log" (or another unix datagram path), "udp://HOST:PORT", "tcp://HOST:PORT" */
  address: string;
  protocol: 'rfc3164' | 'rfc5424';
  facility: string;
  severity: string;
  tag: string;
  queueSize: number;
  whenFull: 'block' | 'drop';
  warn: (msg: string) => void;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => (n < 10 ? '0' + n : String(n));

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

export class SyslogSink implements Sink {
  readonly name: string;
  readonly blocking: boolean;
  private queue: string[] = [];
  private drainCb: (() => void) | undefined;
  private wasFull = false;
  private st: SinkStats;
  private readonly pri: number;
  private readonly host = hostname().split('.')[0];
  private readonly addr: ReturnType<typeof parseAddress>;
  private udp: UdpSocket | undefined;
  private tcp: Socket | undefined;
  private tcpReady = false;
  private backoff = 250;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private failing = false;
  private inflight = 0;

  constructor(private readonly o: SyslogSinkOptions) {
    this.name = o.name;
    this.blocking = o.whenFull === 'block';
    this.st = { name: o.name, written: 0, dropped: 0, queued: 0, errors: 0 };
    this.pri = FACILITIES[o.facility] * 8 + SEVERITIES[o.severity];
    this.addr = parseAddress(o.address);
    if (this.addr.kind === 'udp') {
      this.udp = createSocket(this.addr.host!.includes(':') ? 'udp6' : 'udp4');
      this.udp.on('error', (e) => this.fail(e));
    } else if (this.addr.kind === 'tcp') {
      this.connectTcp();
    }
  }

  /** One syslog message around a record. */
  message(line: string, now = new Date()): string {
    if (this.o.protocol === 'rfc5424') {
      return `<${this.pri}>1 ${now.toISOString()} ${this.host} ${this.o.tag} ${process.pid} - - ${line}`;
    }
    // RFC 3164; to the local socket without the host name, as syslog(3) does
    const head = `<${this.pri}>${rfc3164Time(now)} `;
    return this.addr.kind === 'unix'
      ? `${head}${this.o.tag}[${process.pid}]: ${line}`
      : `${head}${this.host} ${this.o.tag}[${process.pid}]: ${line}`;
  }

  private connectTcp(): void {
    const s = connect({ host: this.addr.host!, port: this.addr.port! });
    this.tcp = s;
    s.setNoDelay(true);
    s.on('connect', () => {
      this.tcpReady = true;
      this.backoff = 250;
      if (this.failing) { this.o.warn(`sink ${this.name}: connected to ${this.o.address} again`); this.failing = false; }
      this.flush();
    });
    s.on('error', (e) => this.fail(e));
    s.on('close', () => {
      this.tcpReady = false;
      if (this.closing) return;
      this.reconnectTimer = setTimeout(() => this.connectTcp(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 30_000);
    });
  }

  private fail(e: Error): void {
    this.st.errors++;
    if (!this.failing) this.o.warn(`sink ${this.name}: ${this.o.address}: ${(e as NodeJS.ErrnoException).code ?? e.message}; records are kept and sent when it is back`);
    this.failing = true;
  }

  push(line: string): void {
    if (this.queue.length >= this.o.queueSize && !this.blocking) { this.st.dropped++; return; }
    // encode at once: no record's string outlives its push (see file.ts)
    this.queue.push(this.message(line));
    if (this.queue.length >= this.o.queueSize) this.wasFull = true;
  }

  full(): boolean { return this.queue.length >= this.o.queueSize; }
  onDrain(cb: () => void): void { this.drainCb = cb; }
  reopen(): void { /* nothing to reopen; TCP reconnects by itself */ }

  flush(): void {
    if (this.queue.length === 0) return;
    const k = this.addr.kind;
    if (k === 'unix') {
      while (this.queue.length) {
        try {
          native().unixDatagramSend(this.addr.path!, Buffer.from(this.queue[0], 'latin1'));
        } catch (e) {
          this.fail(e as Error);
          setTimeout(() => this.flush(), 1000).unref();
          return;
        }
        this.queue.shift();
        this.st.written++;
      }
      if (this.failing) { this.o.warn(`sink ${this.name}: sending again`); this.failing = false; }
    } else if (k === 'udp') {
      const msgs = this.queue;
      this.queue = [];
      for (const m of msgs) {
        this.inflight++;
        this.udp!.send(Buffer.from(m, 'latin1'), this.addr.port!, this.addr.host!, (err) => {
          this.inflight--;
          // a datagram the network refused cannot be sent again in order: counted
          if (err) { this.fail(err); this.st.dropped++; } else this.st.written++;
        });
      }
    } else {
      if (!this.tcpReady) return;
      const msgs = this.queue;
      this.queue = [];
      // newline-terminated messages (RFC 6587 non-transparent framing)
      this.tcp!.write(Buffer.from(msgs.join('\n') + '\n', 'latin1'), (err) => {
        if (err) { this.queue.unshift(...msgs); this.fail(err); } else this.st.written += msgs.length;
      });
    }
    if (this.wasFull && this.queue.length < this.o.queueSize / 2) {
      this.wasFull = false;
      this.drainCb?.();
    }
  }

  close(): Promise<void> {
    this.flush();
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.queue.length) this.o.warn(`sink ${this.name}: ${this.queue.length} records not sent at exit (${this.o.address} unreachable)`);
    return new Promise((resolve) => {
      const done = () => {
        if (this.inflight > 0) { setTimeout(done, 5); return; }
        if (this.udp) this.udp.close(() => resolve());
        else if (this.tcp) this.tcp.end(() => resolve());
        else resolve();
      };
      done();
    });
  }

  stats(): SinkStats {
    return { ...this.st, queued: this.queue.length };
  }
}
