// The journal sink: systemd-journald's native protocol over
// /run/systemd/journal/socket. MESSAGE is the record in the sink's format,
// plus SYSLOG_IDENTIFIER, PRIORITY and a field for every record field
// (CT_* of an event, PKT_* of a packet, FLOW_* of a flow record, tcpstates'
// own of a TCP state change).
// An entry too large for one datagram goes in a sealed memfd.
import { native } from '../netlink/native.js';
import type { FlowEvent } from '../records/event.js';
import type { PacketLog } from '../records/packet.js';
import type { Kind, RecordOf } from '../records/index.js';
import { encodeJournal, journalFields, packetJournalFields } from '../formats/journal.js';
import { tcpstateJournalFields } from '../formats/tcpstates.js';
import { flowJournalFields } from '../formats/flow.js';
import { aggregateJournalFields } from '../formats/aggregate.js';
import type { AggregateRecord } from '../records/aggregate.js';
import type { EndedFlow } from '../records/flow.js';
import type { TcpStateChange } from '../records/tcpstate.js';
import { SEVERITIES } from './syslog.js';
import type { Sink, SinkStats } from './sink.js';
import { Fifo, SinkQueue } from './queue.js';

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
  private queue = new Fifo<Buffer>();
  private readonly q: SinkQueue;
  private readonly socket: string;
  private readonly head: Buffer;

  constructor(private readonly o: JournalSinkOptions) {
    this.name = o.name;
    this.q = new SinkQueue({ name: o.name, size: o.queueSize, whenFull: o.whenFull, warn: o.warn, unrefRetry: true });
    this.blocking = this.q.blocking;
    this.socket = o.socket ?? JOURNAL_SOCKET;
    this.head = encodeJournal([
      ['SYSLOG_IDENTIFIER', o.identifier], ['PRIORITY', String(SEVERITIES[o.severity])], ['SYSLOG_FACILITY', '3'],
    ]);
  }

  push(line: string, rec?: RecordOf[Kind], kind?: Kind): void {
    if (!this.q.admit(this.queue.length)) return;
    const fields = !rec ? [] : kind === 'packet' ? packetJournalFields(rec as PacketLog)
      // tcpstates -Y's fields; MESSAGE, SYSLOG_IDENTIFIER and PRIORITY are the sink's (format, tag, severity)
      : kind === 'tcpstate' ? tcpstateJournalFields(rec as TcpStateChange, process.getuid?.() === 0).filter(([k]) => k !== 'MESSAGE' && k !== 'SYSLOG_IDENTIFIER' && k !== 'PRIORITY')
      : kind === 'flow' ? flowJournalFields(rec as EndedFlow)
      : kind === 'aggregate' ? aggregateJournalFields(rec as AggregateRecord)
      : journalFields(rec as FlowEvent);
    this.queue.push(Buffer.concat([encodeJournal([['MESSAGE', line]]), this.head, encodeJournal(fields)]));
    this.q.added(this.queue.length);
  }

  full(): boolean { return this.q.full(this.queue.length); }
  onDrain(cb: () => void): void { this.q.onDrain(cb); }
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
    // while a retry is scheduled, it is the one that sends
    if (this.q.retrying) return;
    while (this.queue.length) {
      try {
        this.send(this.queue.peek());
      } catch (e) {
        this.q.failed(`${this.socket}: ${(e as Error).message}`, 'records are kept, retrying every second');
        this.q.retry(() => this.flush());
        return;
      }
      this.queue.shift();
      this.q.written(1, this.queue.length);
    }
    this.q.recovered('sending again');
  }

  close(): Promise<void> {
    this.q.cancelRetry();
    this.flush();
    if (this.queue.length) this.o.warn(`sink ${this.name}: ${this.queue.length} records not sent at exit (${this.socket} refused them)`);
    return Promise.resolve();
  }

  stats(): SinkStats { return this.q.stats(this.queue.length); }
}
