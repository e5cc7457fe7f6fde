// The journal sink: systemd-journald's native protocol over
// /run/systemd/journal/socket. MESSAGE is the record in the sink's format,
// plus SYSLOG_IDENTIFIER, PRIORITY and a CT_* field for every record field.
// An entry too large for one datagram goes in a sealed memfd.
import { native } from '../netlink/native.js';
import type { FlowEvent } from '../records/event.js';
import type { PacketLog } from '../records/packet.js';
import type { Kind, RecordOf } from '../records/index.js';
import { encodeJournal, journalFields, packetJournalFields } from '../formats/journal.js';
import { SEVERITIES } from './syslog.js';
import type { Sink, SinkStats } from './sink.js';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';
/** a memfd threshold beyond journald's largest entry (768 MiB) means nothing more */
export const MEMFD_THRESHOLD_MAX = 805306368;

/** The keys of a journal sink (the daemon's schema is assembled from each component's own). */
export const JOURNAL_SINK_PROPS = {
  severity: { enum: Object.keys(SEVERITIES), default: 'info', description: 'syslog: severity; journal: PRIORITY.' },
  tag: { type: 'string', pattern: '^[!-~]{1,48}$', default: 'conntrail', description: 'syslog: tag (APP-NAME); journal: SYSLOG_IDENTIFIER.' },
  journal_socket: { type: 'string', minLength: 1, default: '/run/systemd/journal/socket', description: 'journal: journald\'s native socket.' },
  memfd_threshold: { type: 'integer', minimum: 0, maximum: MEMFD_THRESHOLD_MAX, default: 0, description: 'journal: send entries of this many bytes or more in a sealed memfd (0: only those too large for one datagram).' },
} as const;

export interface JournalSinkOptions {
  name: string;
  socket?: string;
  identifier: string;
  severity: string;
  /** entries of this many bytes or more go through a memfd (0: only when refused as too large) */
  memfdThreshold: number;
  queueSize: number;
  whenFull: 'block' | 'drop';
  warn: (msg: string) => void;
}

export class JournalSink implements Sink {
  readonly name: string;
  readonly blocking: boolean;
  private queue: Buffer[] = [];
  private drainCb: (() => void) | undefined;
  private wasFull = false;
  private failing = false;
  private retry: NodeJS.Timeout | undefined;
  private st: SinkStats;
  private readonly socket: string;
  private readonly head: Buffer;

  constructor(private readonly o: JournalSinkOptions) {
    this.name = o.name;
    this.blocking = o.whenFull === 'block';
    this.socket = o.socket ?? JOURNAL_SOCKET;
    this.st = { name: o.name, written: 0, dropped: 0, queued: 0, errors: 0 };
    this.head = encodeJournal([
      ['SYSLOG_IDENTIFIER', o.identifier], ['PRIORITY', String(SEVERITIES[o.severity])], ['SYSLOG_FACILITY', '3'],
    ]);
  }

  push(line: string, rec?: RecordOf[Kind], kind?: Kind): void {
    if (this.queue.length >= this.o.queueSize && !this.blocking) { this.st.dropped++; return; }
    const fields = !rec ? [] : kind === 'packet' ? packetJournalFields(rec as PacketLog) : journalFields(rec as FlowEvent);
    this.queue.push(Buffer.concat([encodeJournal([['MESSAGE', line]]), this.head, encodeJournal(fields)]));
    if (this.queue.length >= this.o.queueSize) this.wasFull = true;
  }

  full(): boolean { return this.queue.length >= this.o.queueSize; }
  onDrain(cb: () => void): void { this.drainCb = cb; }
  reopen(): void { /* datagrams: nothing held open */ }

  private send(b: Buffer): void {
    const n = native();
    if (this.o.memfdThreshold > 0 && b.length >= this.o.memfdThreshold) { n.unixDatagramSendMemfd(this.socket, b); return; }
    try {
      n.unixDatagramSend(this.socket, b);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EMSGSIZE') throw e;
      n.unixDatagramSendMemfd(this.socket, b);
    }
  }

  flush(): void {
    if (this.retry) return;
    while (this.queue.length) {
      try {
        this.send(this.queue[0]);
      } catch (e) {
        this.st.errors++;
        if (!this.failing) this.o.warn(`sink ${this.name}: ${this.socket}: ${(e as Error).message}; records are kept, retrying every second`);
        this.failing = true;
        this.retry = setTimeout(() => { this.retry = undefined; this.flush(); }, 1000);
        this.retry.unref();
        return;
      }
      this.queue.shift();
      this.st.written++;
    }
    if (this.failing) { this.o.warn(`sink ${this.name}: sending again`); this.failing = false; }
    if (this.wasFull) { this.wasFull = false; this.drainCb?.(); }
  }

  close(): Promise<void> {
    if (this.retry) { clearTimeout(this.retry); this.retry = undefined; }
    this.flush();
    if (this.queue.length) this.o.warn(`sink ${this.name}: ${this.queue.length} records not sent at exit (${this.socket} refused them)`);
    return Promise.resolve();
  }

  stats(): SinkStats { return { ...this.st, queued: this.queue.length }; }
}
