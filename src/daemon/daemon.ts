// The daemon: sources -> filters -> sinks, built from a validated plan.
// A source never knows its sinks' formats; a sink never decodes netlink.
import { ConntrackEventSource, dumpConntrack, type SourceStats } from '../conntrack/source.js';
import type { FlowEvent } from '../conntrack/record.js';
import { compileMatcher } from '../pipeline/filter.js';
import { makeFormatter, type Formatter } from '../formats/index.js';
import { FileSink } from '../sinks/file.js';
import { SyslogSink } from '../sinks/syslog.js';
import { JournalSink } from '../sinks/journal.js';
import type { Sink, SinkStats } from '../sinks/sink.js';
import type { Plan, PlannedSource } from '../config/load.js';
import { explainSocketError } from '../util/errors.js';
import { native } from '../netlink/native.js';
import type { Logger } from './log.js';
import { FlowTable, type FlowTableStats } from '../flow/table.js';
import { StoreWriter, type WriterStats } from '../store/writer.js';
import { SqliteStore } from '../store/sqlite.js';
import { PostgresStore } from '../store/postgres.js';
import type { FlowStore, OpenRow } from '../store/store.js';
import { parseDuration } from '../util/time.js';

interface Route { sink: Sink; format: Formatter }

interface RunningSource {
  name: string;
  config: PlannedSource['config'];
  src: ConntrackEventSource;
  deliverDump: (ev: FlowEvent) => void;
  /** the flow table feeding the store (undefined without a store) */
  table: FlowTable | undefined;
  matchAll: (ev: FlowEvent) => boolean;
  reportedEnobufs: number;
  resyncs: number;
  resyncing: boolean;
  /** events received per type (before filters) */
  byType: Record<FlowEvent['type'], number>;
}

export interface DaemonStats {
  sources: Array<{ name: string; resyncs: number; byType: Record<FlowEvent['type'], number> } & SourceStats>;
  sinks: SinkStats[];
  store?: WriterStats;
  flows?: FlowTableStats;
}

export class Pipeline {
  private sources: RunningSource[] = [];
  private sinks: Sink[] = [];
  private paused = false;
  private timer: NodeJS.Timeout | undefined;
  private writer: StoreWriter | undefined;

  constructor(private readonly plan: Plan, private readonly log: Logger) {}

  private openStore(): StoreWriter | undefined {
    const st = this.plan.config.store;
    if (st.type === 'none') return undefined;
    let store: FlowStore;
    try {
      store = st.type === 'sqlite' ? new SqliteStore({ path: st.path, mode: parseInt(st.mode, 8) })
        : new PostgresStore({ url: st.url!, warn: (m) => this.log.warn(m) });
    } catch (e) {
      throw Object.assign(new Error(`cannot open the flow store ${st.type === 'sqlite' ? st.path : st.url}: ${(e as Error).message}`), { exitCode: 1 });
    }
    return new StoreWriter(store, {
      flushMs: st.flush_interval_ms, maxBatch: st.batch_size,
      retentionMs: st.retention === 'forever' || st.retention === '0' ? 0 : parseDuration(st.retention),
      spoolDir: st.type === 'postgres' ? st.spool_dir : '',
      warn: (m) => this.log.warn(m), info: (m) => this.log.info(m),
    });
  }

  /** Opens the store and every sink, then every source (so no record has nowhere to go). */
  async start(): Promise<void> {
    const { config } = this.plan;
    this.writer = this.openStore();
    let adopted: OpenRow[] = [];
    if (this.writer) {
      try {
        await this.writer.store.setNamespaces(this.plan.sources.map((s) => s.config.netns ?? ''));
        adopted = await this.writer.store.openFlows();
      } catch (e) {
        this.log.warn(`store ${this.writer.store.kind}: could not read the flows left open by the last run (${(e as Error).message}); they stay open there`);
      }
    }
    try {
      for (const k of config.sink) {
        const sink: Sink = k.type === 'syslog' ? new SyslogSink({
          name: k.name, address: k.address, protocol: k.protocol, facility: k.facility, severity: k.severity,
          tag: k.tag, queueSize: k.queue_size, whenFull: k.when_full, warn: (m) => this.log.warn(m),
        }) : k.type === 'journal' ? new JournalSink({
          name: k.name, socket: k.journal_socket, identifier: k.tag, severity: k.severity, memfdThreshold: k.memfd_threshold,
          queueSize: k.queue_size, whenFull: k.when_full, warn: (m) => this.log.warn(m),
        }) : new FileSink({
          name: k.name,
          target: k.type === 'stdout' ? 1 : k.path!,
          mode: parseInt(k.mode, 8),
          fsync: k.fsync,
          rotateSize: k.rotate_size,
          rotateKeep: k.rotate_keep,
          queueSize: k.queue_size,
          whenFull: k.when_full,
          warn: (m) => this.log.warn(m),
        });
        sink.onDrain(() => this.maybeResume());
        this.sinks.push(sink);
      }
    } catch (e) {
      this.closeSinksNow();
      const err = e as NodeJS.ErrnoException;
      throw Object.assign(new Error(`cannot open sink file: ${err.path ?? ''} (${err.code ?? err.message})`), { exitCode: 1 });
    }
    for (const ps of this.plan.sources) {
      const sc = ps.config;
      for (const [on, name, what] of [[sc.enable_accounting, 'nf_conntrack_acct', 'accounting'], [sc.enable_timestamps, 'nf_conntrack_timestamp', 'timestamps']] as const) {
        if (!on) continue;
        try {
          native().writeSysctl(sc.netns ?? '', `net.netfilter.${name}`, '1');
          this.log.info(`source ${sc.name}: turned on conntrack ${what} (net.netfilter.${name}=1)${sc.netns ? ` in network namespace ${sc.netns}` : ''}`);
        } catch (e) {
          this.log.warn(`source ${sc.name}: could not turn on net.netfilter.${name}: ${(e as Error).message}`);
        }
      }
      let src: ConntrackEventSource;
      try {
        src = new ConntrackEventSource({
          netns: sc.netns, rcvbuf: sc.buffer_size, filter: ps.filter, coalesceMs: sc.batch_delay_ms, reliable: sc.reliable,
        });
      } catch (e) {
        this.stopSources();
        this.closeSinksNow();
        throw explainSocketError(e, sc.netns);
      }
      const table = this.writer ? new FlowTable(this.sources.length, this.writer) : undefined;
      if (table) for (const r of adopted) table.adopt(r);
      const routes: Route[] = [];
      config.sink.forEach((k, i) => {
        if (k.sources.length && !k.sources.includes(sc.name)) return;
        routes.push({
          sink: this.sinks[i],
          format: makeFormatter({ format: k.format, output: k.output, netns: sc.netns, ulogdDevice: k.ulogd_device, ulogdEventv1: k.ulogd_eventv1 }),
        });
      });
      const match = compileMatcher(ps.filter, src.kernelFiltered);
      const select = ps.select;
      const route = (ev: FlowEvent) => {
        for (let i = 0; i < routes.length; i++) routes[i].sink.push(routes[i].format(ev), ev);
      };
      const byType = { NEW: 0, UPDATE: 0, DESTROY: 0, DUMP: 0 };
      const deliver = table ? (ev: FlowEvent) => {
        byType[ev.type]++;
        if (match(ev) && (!select || select(ev))) { route(ev); table.handle(ev); }
      } : (ev: FlowEvent) => {
        byType[ev.type]++;
        if (match(ev) && (!select || select(ev))) route(ev);
      };
      // table entries of a resync were not seen by the socket filter
      const matchAll = compileMatcher(ps.filter, false);
      const deliverDump = (ev: FlowEvent) => {
        if (matchAll(ev)) route(ev);
      };
      const rs: RunningSource = { name: sc.name, config: sc, src, deliverDump, table, matchAll, reportedEnobufs: 0, resyncs: 0, resyncing: false, byType };
      src.start({
        event: deliver,
        batchEnd: () => this.afterBatch(),
      }, (err) => this.log.error(`source ${sc.name}: ${explainSocketError(err, sc.netns).message}`));
      this.sources.push(rs);
      this.log.info(`source ${sc.name}: listening to conntrack ${sc.events.join(',')} events` +
        `${sc.netns ? ` in network namespace ${sc.netns}` : ''} (receive buffer ${src.rcvbuf} bytes` +
        `${src.filterInsns ? `, socket filter of ${src.filterInsns} instructions` : ''})`);
    }
    // with a store, the flow table learns the flows open now (and settles
    // those left open by the last run that have ended since)
    for (const s of this.sources) if (s.config.sync_at_start || s.table) this.resync(s, 'start-up sync', s.config.sync_at_start);
    this.timer = setInterval(() => this.checkOverruns(), 1000);
    this.timer.unref();
  }

  private afterBatch(): void {
    for (const s of this.sinks) s.flush();
    if (!this.paused && this.sinks.some((s) => s.blocking && s.full())) {
      this.paused = true;
      for (const s of this.sources) s.src.pause();
      this.log.debug('a blocking sink is full: sources paused');
    }
  }

  private maybeResume(): void {
    if (this.paused && !this.sinks.some((s) => s.blocking && s.full())) {
      this.paused = false;
      for (const s of this.sources) s.src.resume();
      this.log.debug('sinks caught up: sources resumed');
    }
  }

  /**
   * Overruns: one warning with the counts, a larger receive buffer (up to
   * buffer_max), and a resync: the table is dumped and every entry passed
   * on, so the flows that were open when events were lost are known again.
   * With `recover` false (stopping) it only reports.
   */
  private checkOverruns(recover = true): void {
    for (const s of this.sources) {
      const st = s.src.sock.stats();
      if (st.enobufs <= s.reportedEnobufs) continue;
      const before = s.src.rcvbuf;
      let grown = '';
      if (recover && before / 2 < s.config.buffer_max) {
        const got = s.src.growBuffer(Math.min(before, s.config.buffer_max)); // the kernel doubles the request
        if (got > before) grown = `; receive buffer grown from ${before} to ${got} bytes`;
      }
      this.log.warn(`source ${s.name}: netlink overrun (ENOBUFS) x${st.enobufs - s.reportedEnobufs}, ` +
        `kernel dropped ${st.kernelDrops} events so far${grown || ` (receive buffer ${before} bytes)`}` +
        `${recover && s.config.resync ? '; resyncing from a table dump' : ''}`);
      s.reportedEnobufs = st.enobufs;
      if (recover && s.config.resync) this.resync(s);
    }
  }

  private resync(s: RunningSource, why = 'resync', toSinks = true): void {
    if (s.resyncing) return;
    s.resyncing = true;
    let n = 0;
    const table = s.table;
    const began = Date.now();
    table?.beginSync();
    dumpConntrack({ netns: s.config.netns }, (ev) => {
      n++;
      if (toSinks) s.deliverDump(ev);
      if (table && s.matchAll(ev)) table.handle(ev);
    })
      .then(() => {
        if (why === 'resync') s.resyncs++;
        const settled = table ? table.endSync(began) : 0;
        this.afterBatch();
        this.log.info(`source ${s.name}: ${why} done, ${n} table entries ${toSinks ? 'passed on' : 'read'}` +
          (settled ? `; ${settled} flows no longer in the table were ended (their DESTROY was not seen)` : ''));
      })
      .catch((e: Error) => this.log.error(`source ${s.name}: ${why} failed: ${e.message}`))
      .finally(() => { s.resyncing = false; });
  }

  stats(): DaemonStats {
    const st: DaemonStats = {
      sources: this.sources.map((s) => ({ name: s.name, resyncs: s.resyncs, byType: { ...s.byType }, ...s.src.stats() })),
      sinks: this.sinks.map((s) => s.stats()),
    };
    if (this.writer) {
      st.store = this.writer.stats();
      const f: FlowTableStats = { open: 0, opened: 0, closed: 0, partial: 0, settled: 0 };
      for (const s of this.sources) {
        const t = s.table?.stats();
        if (t) for (const k of Object.keys(f) as Array<keyof FlowTableStats>) f[k] += t[k];
      }
      st.flows = f;
    }
    return st;
  }

  reopen(): void {
    for (const s of this.sinks) s.reopen();
  }

  private stopSources(): void {
    for (const s of this.sources) s.src.close();
    if (this.timer) clearInterval(this.timer);
  }

  private closeSinksNow(): void {
    for (const s of this.sinks) void s.close();
    void this.writer?.close(0);
  }

  /** Stops reading, then writes out everything queued. */
  async stop(): Promise<DaemonStats> {
    this.checkOverruns(false);
    const final = this.stats();
    this.stopSources();
    await Promise.all([...this.sinks.map((s) => s.close()), this.writer?.close()]);
    const after = this.stats();
    return { ...after, sources: final.sources };
  }
}
