// The IPFIX sink: flow records exported to a collector (nfcapd, nfacctd, a
// commercial one), RFC 7011, with the NAT translation and, optionally,
// RFC 8158 NAT session events. A record sink: it takes the flow records
// themselves and packs them into messages of at most `max_message_size`
// bytes, one per batch at least. Over UDP the templates go first in the
// first message and again every `template_refresh` seconds (a collector
// that restarts learns them then); UDP has no acknowledgement: a record
// counts as written when the kernel took its datagram, and a datagram it
// refused is counted dropped (the collector sees the gap in the sequence
// numbers too). Over TCP (RFC 7011 §10.4) each connection opens with the
// templates and counts its sequence numbers from 0; a record counts as
// written once the collector's kernel acknowledged it, and what a lost
// connection had not is sent again on the next (sinks/tcp-stream.ts).
// Its active and inactive timeouts are the daemon's to keep
// (pipeline/flow-fanout.ts): it sends the interim reports of open flows
// (`report` 1 or 2) and their ends as what came after, and this sink
// writes what it is given, but no flow record of nothing.
import { createSocket, type Socket as UdpSocket, type SocketOptions } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns';
import { isIP } from 'node:net';
import { FLAG_START_UNKNOWN, type EndedFlow } from '../records/flow.js';
import type { Kind, RecordOf } from '../records/index.js';
import { AggregateEncoding, eventTemplateSet, IpfixPacker, MAX_RECORD_LEN, MESSAGE_HEADER_LEN, SET_HEADER_LEN, templateSet, writeHeader, type NatEventNumbering } from '../formats/ipfix.js';
import { AckedStream } from './tcp-stream.js';
import type { AggregateRecord } from '../records/aggregate.js';
import type { Sink, SinkStats } from './sink.js';
import { Fifo, SinkQueue } from './queue.js';
import { parseAddress } from './syslog.js';

/** The keys of an IPFIX sink (with the common ones it takes). */
export const IPFIX_SINK_PROPS = {
  address: { type: 'string', description: 'ipfix: the collector, `udp://HOST:PORT` or `tcp://HOST:PORT` (HOST an IPv4 address, an IPv6 address in brackets or a host name; over UDP a name is looked up at most once a minute, as an IPv4 address). TCP (RFC 7011 §10.4): the templates once at the start of each connection, sequence numbers from 0 on each; a record counts as written once the collector\'s kernel acknowledged it; what a lost connection had not acknowledged is sent again on the next (counted as `resent`: the collector may have it twice), made with backoff, records waiting in the queue meanwhile.' },
  observation_domain: { type: 'integer', minimum: 0, maximum: 4294967295, default: 1, description: 'ipfix: the Observation Domain ID of every message (collectors keep templates and sequence numbers per exporter address and domain).' },
  template_refresh: { type: 'integer', minimum: 1, maximum: 86400, default: 60, description: 'ipfix: seconds between two sendings of the templates (UDP: a collector that starts later learns them then; data it gets before is dropped by it). Not used over TCP: each connection starts with them.' },
  max_message_size: { type: 'integer', minimum: 576, maximum: 65507, default: 1400, description: 'ipfix: the largest message (one UDP datagram), in bytes: keep it under the path MTU (1400 fits an Ethernet path with tunnels; 576, the least, is the datagram every IPv4 host must take, and holds the templates and a record). Over TCP, the largest message written to the stream.' },
  nat_events: { type: 'boolean', default: false, description: 'ipfix: besides the flow record, one NAT event record (RFC 8158) when a translated flow is first seen (session create) and one when it ends (session delete), in templates of their own with `natEvent` and `observationTimeMilliseconds`.' },
  nat_event_numbers: { enum: ['rfc8158', 'historic'], default: 'rfc8158', description: 'ipfix: the natEvent values: `rfc8158` (NAT44 session create 4, delete 5; IPv6, for which RFC 8158 has no NAT66 event, 1 and 2), or `historic` (1 create, 2 delete, for every family: the values nfdump 1.7 shows as ADD/DELETE).' },
  active_timeout: { type: 'integer', minimum: 0, maximum: 604800, default: 1800, description: 'ipfix: seconds: a flow still open this long after its start (or its last report) that carried packets since is reported, with what it carried since (flowEndReason 2, active timeout); its end then counts the rest. A report ends at the dump that found its counters changed (the kernel keeps no time of a flow\'s last packet: the end may be up to one dump interval after it); when a report carried all of a flow\'s packets, the flow\'s end is no record of its own (no record of nothing; its NAT delete event still goes). The counters come from dumps of the conntrack table (every `active_timeout` or `inactive_timeout` seconds, whichever is less, at most 60 s apart; the kernel\'s counters are never zeroed), so it needs conntrack accounting (the source\'s `enable_accounting`). 0: never; 1800 (30 min) is what Cisco\'s exporters and ipt_NETFLOW use. Several IPFIX sinks of one source share one set of reports: the least non-zero `active_timeout` and `inactive_timeout` among them. The reports add up to the flow within one run of the daemon: a flow open across a restart is not reported by the next run, neither its rest nor its end (counted in `records_unsent`; the store has it whole), and a reload that sets both timeouts to 0 sends the flows reported in part whole at their end.' },
  inactive_timeout: { type: 'integer', minimum: 0, maximum: 604800, default: 0, description: 'ipfix: seconds: a flow still open that has carried nothing for this long (its counters unchanged from dump to dump), with packets not reported yet, is reported with them (flowEndReason 1, idle timeout), ahead of its end. 0 (the default): the flow\'s conntrack entry is the idle timer (an idle UDP flow ends after nf_conntrack_udp_timeout, its end exact); set 15 for the records an ipt_NETFLOW or Cisco exporter would send for idle TCP connections, which conntrack keeps for days.' },
  aggregate: { type: 'string', minLength: 1, description: 'ipfix: the name of an `[[aggregate]]` stage: the sink exports its aggregated records (per interval and key: the flows\' count as `deltaFlowCount`, the sums of their counters, the earliest start and the latest end, and only the keys), not the flows; `sources`, `nat_events` and the timeouts are the stage\'s business then and are not taken.' },
} as const;

export interface IpfixSinkOptions {
  name: string;
  address: string;
  domain: number;
  templateRefreshSecs: number;
  maxMessageSize: number;
  natEvents: boolean;
  natEventNumbers: NatEventNumbering;
  /** the sink exports an aggregation stage's records (encoded so), not flows */
  aggregate?: AggregateEncoding;
  queueSize: number;
  whenFull: 'block' | 'drop';
  warn: (msg: string) => void;
  /** seconds since the epoch (tests) */
  now?: () => number;
}

/** how long the answer of a collector name's lookup is used (a datagram each does not ask again) */
export const LOOKUP_KEEP_MS = 60_000;

/** dgram's lookup: (name, family or dns.lookup's options, callback) */
export type Lookup = (host: string, options: number | { family?: number }, cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void) => void;

/** how long a failed lookup is answered with its failure (or the last answer) before it is asked again */
export const LOOKUP_FAIL_KEEP_MS = 5_000;

/**
 * A lookup that keeps each (name, family)'s answer `keepMs`: one lookup at
 * a time per name (the datagrams meanwhile wait for it); an answer past its
 * time still serves while the next is asked, and after a failure; a failure
 * with no answer before is the answer for `failKeepMs`. Answers come
 * asynchronously, as dns.lookup's do.
 */
export function cachedLookup(lookup: Lookup, keepMs = LOOKUP_KEEP_MS, now: () => number = Date.now, failKeepMs = LOOKUP_FAIL_KEEP_MS): Lookup {
  type Cb = Parameters<Lookup>[2];
  const kept = new Map<string, { address: string; family: number; until: number }>();
  const failed = new Map<string, { err: NodeJS.ErrnoException; until: number }>();
  const waiting = new Map<string, Cb[]>();
  return (host, family, cb) => {
    const k = `${typeof family === 'number' ? family : family.family ?? 0}\0${host}`;
    const t = now();
    const hit = kept.get(k);
    const fail = failed.get(k);
    const asking = waiting.get(k);
    if (hit) {
      process.nextTick(cb, null, hit.address, hit.family);
      // (past its time: asked again, unless that is under way or just failed)
      if (hit.until > t || asking || (fail && fail.until > t)) return;
      waiting.set(k, []);
    } else {
      if (fail && fail.until > t) { process.nextTick(cb, fail.err, '', 0); return; }
      if (asking) { asking.push(cb); return; }
      waiting.set(k, [cb]);
    }
    lookup(host, family, (err, address, fam) => {
      const cbs = waiting.get(k) ?? [];
      waiting.delete(k);
      if (err) failed.set(k, { err, until: now() + failKeepMs });
      else { kept.set(k, { address, family: fam, until: now() + keepMs }); failed.delete(k); }
      for (const c of cbs) c(err, address, fam);
    });
  };
}

export interface IpfixSinkStats extends SinkStats {
  /** flow records not exported because they correct one exported before (its DESTROY came after a dump had ended it): the collector has the flow once */
  skipped: number;
  /** TCP: records a lost connection had not acknowledged, sent again (the collector may have some twice); UDP: absent */
  resent?: number;
}

const CLOSE_WAIT_MS = 2000;

interface Message { buf: Buffer; records: number }

export class IpfixSink implements Sink {
  readonly name: string;
  readonly takes = 'records' as const;
  readonly blocking: boolean;
  private readonly q: SinkQueue;
  private readonly addr: ReturnType<typeof parseAddress>;
  private udp: UdpSocket | undefined;
  /** TCP: the messages and the connection (at-least-once) */
  private readonly tcp: AckedStream<Message> | undefined;
  /** TCP: data records sent on the current connection (its sequence numbers count from 0) */
  private tcpSequence = 0;
  private readonly packer: IpfixPacker;
  private readonly out = new Fifo<Message>();
  private readonly templates: Buffer;
  private readonly now: () => number;
  /** data records in the messages made so far (the next message's sequence number, mod 2^32) */
  private sequence = 0;
  /** when the templates were last put in a message (s); -Infinity: never */
  private templatesAt = -Infinity;
  private held_ = 0;
  private inflight = 0;
  private skipped = 0;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly o: IpfixSinkOptions) {
    this.name = o.name;
    this.q = new SinkQueue({ name: o.name, size: o.queueSize, whenFull: o.whenFull, warn: o.warn, unrefRetry: true });
    this.blocking = this.q.blocking;
    this.addr = parseAddress(o.address);
    if (this.addr.kind === 'unix') throw new Error(`${o.address}: an IPFIX collector is at udp://HOST:PORT or tcp://HOST:PORT`);
    this.packer = new IpfixPacker(o.maxMessageSize, o.natEventNumbers);
    this.templates = o.aggregate ? o.aggregate.templates : o.natEvents ? Buffer.concat([templateSet(), eventTemplateSet()]) : templateSet();
    // every record must fit in a message after the templates
    const longest = o.aggregate ? o.aggregate.maxRecordLen : MAX_RECORD_LEN;
    if (MESSAGE_HEADER_LEN + this.templates.length + SET_HEADER_LEN + longest > o.maxMessageSize) {
      throw new Error(`max_message_size ${o.maxMessageSize} is too small for the templates and a record (${MESSAGE_HEADER_LEN + this.templates.length + SET_HEADER_LEN + longest} bytes)`);
    }
    this.now = o.now ?? (() => Math.floor(Date.now() / 1000));
    if (this.addr.kind === 'udp') this.udp = this.socket();
    else {
      this.tcp = new AckedStream<Message>({
        host: this.addr.host!, port: this.addr.port!, address: o.address,
        records: (m) => m.records, size: (m) => m.buf.length,
        // each message's sequence number: the data records sent before it on this connection
        encode: (ms) => {
          for (const m of ms) { m.buf.writeUInt32BE(this.tcpSequence >>> 0, 8); this.tcpSequence = (this.tcpSequence + m.records) % 4294967296; }
          return ms.length === 1 ? ms[0].buf : Buffer.concat(ms.map((m) => m.buf));
        },
        // a connection opens with the templates (and never sends them again)
        greeting: () => {
          this.tcpSequence = 0;
          const buf = Buffer.alloc(MESSAGE_HEADER_LEN + this.templates.length);
          this.templates.copy(buf, MESSAGE_HEADER_LEN);
          writeHeader(buf, buf.length, this.now(), 0, o.domain);
          return [{ buf, records: 0 }];
        },
        written: (n) => this.q.written(n, this.held()),
        failed: (what) => this.q.failed(`${o.address}: ${what}`, 'records are kept and sent when it is back'),
        recovered: (what) => this.q.recovered(what),
        isFailing: () => this.q.isFailing,
        warn: (m) => o.warn(`sink ${o.name}: ${m}`),
      });
    }
  }

  /**
   * A datagram socket. An error of its own (its bind failed) loses the sends
   * it held without their callbacks: they are counted dropped, and the next
   * batch goes through a new socket.
   */
  private socket(): UdpSocket {
    // (a collector's name is looked up once a minute, not for every datagram)
    const u = createSocket({ type: this.addr.host!.includes(':') ? 'udp6' : 'udp4', lookup: isIP(this.addr.host!) ? undefined : this.lookup as unknown as SocketOptions['lookup'] });
    u.on('error', (e) => {
      this.q.failed(`${this.o.address}: ${(e as NodeJS.ErrnoException).code ?? e.message}`, 'records are dropped and counted');
      if (u !== this.udp) return;
      this.q.dropped(this.inflight);
      this.inflight = 0;
      this.lost = true;
      try { u.close(); } catch { /* closed */ }
      this.q.written(0, this.held());
    });
    return u;
  }

  /** the lookup of the collector's name, its answers kept LOOKUP_KEEP_MS (the sockets share it) */
  private readonly lookup = cachedLookup(dnsLookup as unknown as Lookup);

  /** the socket failed: its callbacks will not come */
  private lost = false;

  /** records taken and not yet handed to the kernel (TCP: not yet acknowledged by the collector) */
  private held(): number { return this.held_ + this.inflight + (this.tcp ? this.tcp.held() : 0); }

  push(_line: string, rec?: RecordOf[Kind], kind?: Kind): void {
    const agg = this.o.aggregate;
    if (agg) {
      if (kind !== 'aggregate' || !rec) return;
      const r = rec as AggregateRecord;
      const id = agg.templateOf(r);
      const len = agg.recordLen(id);
      if (this.closed) { this.q.dropped(1); return; }
      if (!this.q.admit(this.held())) return;
      this.add((p) => p.fitsRecord(id, len), (p) => p.addRecord(id, (b, o) => agg.write(b, o, r)));
      this.q.added(this.held());
      return;
    }
    if (kind !== 'flow' || !rec) return;
    const r = rec as EndedFlow;
    if (r.corrects) { this.skipped++; return; }
    const open = r.end === null;
    const nat = r.natSrc !== null || r.natDst !== null;
    // an open flow comes only for its NAT session's create event, and not when
    // its start is not known (first seen in a dump without a kernel timestamp)
    if (open && !(this.o.natEvents && nat && !(r.flags & FLAG_START_UNKNOWN))) return;
    // a flow's end after interim reports that carried nothing since the last: no flow record (its delete event still goes)
    const flow = !open && !(r.reported > 0 && r.report === 0 && !r.origPackets && !r.replyPackets);
    const event = this.o.natEvents && nat && r.report === 0;
    // (counted in data records: a flow, its delete event, a create)
    const n = (flow ? 1 : 0) + (event ? 1 : 0);
    if (!n) return;
    if (this.closed) { this.q.dropped(n); return; }
    if (!this.q.admit(this.held())) { this.q.dropped(n - 1); return; }
    if (flow) this.add((p) => p.fitsFlow(r), (p) => p.addFlow(r));
    if (event) this.add((p) => p.fitsEvent(r), (p) => p.addEvent(r, !open));
    this.q.added(this.held());
  }

  private add(fits: (p: IpfixPacker) => boolean, add: (p: IpfixPacker) => void): void {
    if (!fits(this.packer)) this.finish();
    if (this.packer.empty) this.startMessage();
    add(this.packer);
    this.held_++;
  }

  private startMessage(): void {
    // (TCP: the templates open each connection instead)
    if (this.tcp) return;
    const t = this.now();
    if (t - this.templatesAt >= this.o.templateRefreshSecs) {
      this.packer.addTemplates(this.templates);
      this.templatesAt = t;
    }
  }

  /** the message being built, to the queue of messages to send */
  private finish(): void {
    if (this.packer.empty) return;
    const n = this.packer.records;
    this.out.push({ buf: this.packer.finish(this.now(), this.sequence, this.o.domain), records: n });
    this.sequence = (this.sequence + n) % 4294967296;
  }

  full(): boolean { return this.q.full(this.held()); }
  onDrain(cb: () => void): void { this.q.onDrain(cb); }
  reopen(): void { /* a datagram socket or the TCP stream (which reconnects itself): nothing to reopen */ }

  flush(): void {
    if (this.closed) return;
    this.send();
  }

  private send(): void {
    this.finish();
    if (this.tcp) {
      while (this.out.length) {
        const m = this.out.shift();
        this.held_ -= m.records;
        this.tcp.push(m);
      }
      this.tcp.flush();
      return;
    }
    if (this.lost && this.out.length && !this.closed) { this.lost = false; this.udp = this.socket(); }
    while (this.out.length) {
      const m = this.out.shift();
      this.held_ -= m.records;
      this.inflight += m.records;
      if (this.lost) { this.inflight -= m.records; this.q.dropped(m.records); continue; }
      const u = this.udp;
      u!.send(m.buf, this.addr.port!, this.addr.host!, (err) => {
        if (u !== this.udp || this.lost) return; // (counted when its socket failed)
        this.inflight -= m.records;
        if (err) {
          this.q.failed(`${this.o.address}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, 'records are dropped and counted');
          this.q.dropped(m.records);
          this.q.written(0, this.held());
        } else {
          this.q.recovered('sending again');
          this.q.written(m.records, this.held());
        }
      });
    }
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.send();
    this.closed = true;
    // TCP: what the collector did not acknowledge in time is told, and not counted written
    if (this.tcp) { this.closing = this.tcp.close().then(() => undefined); return this.closing; }
    this.closing = new Promise((resolve) => {
      const deadline = Date.now() + CLOSE_WAIT_MS;
      const done = () => {
        if (this.inflight > 0 && Date.now() < deadline) { setTimeout(done, 5); return; }
        // what the kernel has not taken by then is not written
        this.q.dropped(this.inflight);
        this.inflight = 0;
        if (this.lost) { resolve(); return; }
        this.udp!.close(() => resolve());
      };
      done();
    });
    return this.closing;
  }

  stats(): IpfixSinkStats {
    const st: IpfixSinkStats = { ...this.q.stats(this.held()), skipped: this.skipped };
    if (this.tcp) st.resent = this.tcp.resent;
    return st;
  }
}
