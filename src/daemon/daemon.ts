// The daemon: sources -> filters -> sinks and the flow store, built from a
// validated plan. A source never knows its sinks' formats; a sink never
// decodes netlink.
//
// Losses are never silent and are recovered where the kernel allows: an
// overrun is handled as soon as the socket reports it (the receive buffer
// grows at once to what the burst needed, the table is dumped on the same
// socket), and the time events may have been lost is recorded in the store.
import { ConntrackEventSource, type SourceStats } from '../sources/conntrack/socket.js';
import type { FlowEvent } from '../records/event.js';
import { compileMatcher } from '../pipeline/filter.js';
import { FLAG_END_ESTIMATED } from '../records/flow.js';
import { makeFormatter, type Formatter } from '../formats/index.js';
import { FileSink } from '../sinks/file.js';
import { SyslogSink } from '../sinks/syslog.js';
import { JournalSink } from '../sinks/journal.js';
import type { Sink, SinkStats } from '../sinks/sink.js';
import type { Plan, PlannedSource } from '../config/load.js';
import type { SinkConfig, SourceConfig, StoreConfig } from '../config/schema.js';
import { explainSocketError } from '../util/errors.js';
import { native } from '../netlink/native.js';
import type { Logger } from './log.js';
import { FlowTable, type FlowTableStats } from '../pipeline/flow-table.js';
import { jiffyMicros, Timeouts, TIMEOUT_SYSCTLS } from '../pipeline/timeouts.js';
import { StoreWriter, type WriterStats } from '../store/writer.js';
import { SqliteStore } from '../store/sqlite.js';
import { PostgresStore } from '../store/postgres.js';
import type { FlowStore, OpenRow, Run } from '../store/store.js';
import { nowMicros, parseDuration } from '../util/time.js';

interface Route { sink: Sink; format: Formatter }

interface RunningSource {
  name: string;
  config: SourceConfig;
  planned: PlannedSource;
  src: ConntrackEventSource;
  /** the flow table feeding the store (undefined without a store) */
  table: FlowTable | undefined;
  /** the store's id of the source's namespace */
  nsId: number;
  routes: Route[];
  reportedOverruns: number;
  kernelDrops: number;
  resyncs: number;
  resyncing: boolean;
  /** an overrun during a resync: another one follows */
  again: boolean;
  /** the entries of the running dump go to the sinks too */
  dumpToSinks: boolean;
  /** when events may first have been lost, for the loss not yet recovered (µs) */
  lossFrom: number | undefined;
  /** the next dump that checks the flows only a dump can tell the end of (ms), and the interval */
  nextCheck: number;
  checkEvery: number;
  /** events received per type (before filters) */
  byType: Record<FlowEvent['type'], number>;
}

export interface DaemonStats {
  sources: Array<{ name: string; resyncs: number; dumped: number; byType: Record<FlowEvent['type'], number> } & SourceStats>;
  sinks: SinkStats[];
  store?: WriterStats;
  flows?: FlowTableStats;
}

/** Estimated kernel memory per queued event (skb truesize), for growing the buffer after an overrun. */
const EVENT_TRUESIZE = 1536;
const TIMESTAMP_SYSCTL = 'net.netfilter.nf_conntrack_timestamp';
/** flows only a dump can tell the end of are checked after this long, then twice as long each time, up to CHECK_MAX_MS */
const CHECK_FIRST_MS = 10_000;
const CHECK_MAX_MS = 300_000;

export class Pipeline {
  private sources: RunningSource[] = [];
  private sinks: Sink[] = [];
  private paused = false;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private writer: StoreWriter | undefined;
  private previousRun: Run | undefined;
  private jiffy = jiffyMicros();
  private ticks = 0;

  constructor(private plan: Plan, private readonly log: Logger) {}

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
    try {
      return new StoreWriter(store, {
        flushMs: st.flush_interval_ms, maxBatch: st.batch_size, maxQueued: st.queue_size,
        retentionMs: st.retention === 'forever' || st.retention === '0' ? 0 : parseDuration(st.retention),
        spoolDir: st.spool_dir, warn: (m) => this.log.warn(m), info: (m) => this.log.info(m),
      });
    } catch (e) {
      void store.close();
      throw Object.assign(new Error(`cannot use the spool directory ${st.spool_dir}: ${(e as Error).message}`), { exitCode: 1 });
    }
  }

  /**
   * Flows an earlier run left open in a namespace no source follows now
   * (it is no longer configured, or it does not feed the store): nothing
   * will tell when they end. They are ended with what is known — open
   * when that run was last seen alive, and not yet known to have ended
   * now — so they stop counting as active for ever.
   */
  private settleUnadopted(open: OpenRow[]): void {
    if (!this.writer || !open.length) return;
    const followed = new Set(this.sources.filter((s) => s.table).map((s) => s.nsId));
    const now = nowMicros();
    const prev = this.previousRun ? this.previousRun.stopped ?? this.previousRun.alive : undefined;
    let n = 0;
    for (const r of open) {
      if (followed.has(r.ns)) continue;
      const lo = Math.min(now, Math.max(r.start, prev ?? r.start));
      const activeEnd = r.activeEnd !== null ? Math.min(r.activeEnd, now) : now;
      this.writer.settled(r.key, { end: now, endErr: now - lo, activeEnd }, r.flags | FLAG_END_ESTIMATED);
      n++;
    }
    if (n) this.log.info(`store: ${n} flows left open by an earlier run in network namespaces no source follows now were ended (end-estimated: after that run was last seen, by now)`);
  }

  /** Opens the store and every sink, then every source (so no record has nowhere to go). */
  async start(): Promise<void> {
    this.writer = this.openStore();
    let adopted: OpenRow[] = [];
    if (this.writer) {
      const w = this.writer;
      const r = await w.start();
      adopted = r.open;
      this.previousRun = r.previous;
      if (r.readError) {
        this.log.warn(`store ${w.store.kind}: could not read the flows left open by the last run (${r.readError.message}); they stay open there`);
      }
      w.onDrain(() => this.maybeResume());
    }
    try {
      this.sinks = this.openSinks(this.plan.config.sink);
      for (const ps of this.plan.sources) {
        const prep = await this.prepareSource(ps, adopted);
        this.sources.push(this.openSource(ps, prep));
      }
    } catch (e) {
      this.closeNow();
      throw e;
    }
    this.settleUnadopted(adopted);
    // with a store, the flow table learns the flows open now (and settles
    // those left open by the last run that have ended since)
    const prevAlive = this.previousRun ? this.previousRun.stopped ?? this.previousRun.alive : undefined;
    for (const s of this.sources) {
      if (s.config.sync_at_start || s.table) this.resync(s, 'start-up sync', s.config.sync_at_start, prevAlive);
    }
    // (not unref'd: with every source paused, a full store waiting on an
    // unref'd retry, nothing else would keep the daemon alive)
    this.timer = setInterval(() => this.tick(), 1000);
  }

  /**
   * Opens the sinks of a configuration; if one cannot be opened, closes
   * those it opened and throws. A sink in `reuse` with the same settings is
   * taken from there (it keeps its queue and its connection) instead.
   */
  private openSinks(list: SinkConfig[], reuse: Array<{ key: string; sink: Sink }> = []): Sink[] {
    const sinks: Sink[] = [];
    const opened: Sink[] = [];
    try {
      for (const k of list) {
        const i = reuse.findIndex((r) => r.key === JSON.stringify(k));
        if (i >= 0) {
          sinks.push(reuse[i].sink);
          reuse.splice(i, 1);
          continue;
        }
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
        sinks.push(sink);
        opened.push(sink);
      }
    } catch (e) {
      for (const s of opened) void s.close();
      const err = e as NodeJS.ErrnoException;
      const k = list[sinks.length];
      const what = k.type === 'file' ? `file ${k.path}` : k.type === 'syslog' ? k.address : k.type;
      throw Object.assign(new Error(`cannot open sink ${k.name} (${what}): ${err.code ?? err.message}`), { exitCode: 1 });
    }
    return sinks;
  }

  /** The namespace's conntrack timeouts, and whether it keeps timestamps. */
  private readNamespace(sc: SourceConfig): { timeouts: Timeouts | undefined; timestamps: boolean | undefined } {
    try {
      const v = native().readSysctl(sc.netns ?? '', [...TIMEOUT_SYSCTLS, TIMESTAMP_SYSCTL]);
      const ts = v[v.length - 1];
      return { timeouts: new Timeouts(v.slice(0, -1)), timestamps: ts === null ? undefined : ts.trim() === '1' };
    } catch (e) {
      this.log.warn(`source ${sc.name}: cannot read the conntrack timeouts${sc.netns ? ` of network namespace ${sc.netns}` : ''} (${(e as Error).message}); flows that expire count as active to their end`);
      return { timeouts: undefined, timestamps: undefined };
    }
  }

  /** What a source needs before its socket opens: sysctls set, its namespace id and flow table. */
  private async prepareSource(ps: PlannedSource, adopted: OpenRow[], table?: FlowTable): Promise<{ nsId: number; table: FlowTable | undefined }> {
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
    let nsId = 0;
    if (this.writer && sc.flows) {
      if (sc.enable_events) this.enableEvents(sc);
      nsId = await this.writer.namespaceId(sc.netns ?? '');
      if (!table) {
        const ns = this.readNamespace(sc);
        if (ns.timestamps === false) {
          this.log.warn(`source ${sc.name}: nf_conntrack_timestamp is off${sc.netns ? ` in network namespace ${sc.netns}` : ''}: flow times are when conntrail read the events and ends of expired flows when the kernel reaped them (set enable_timestamps = true for the kernel's own times)`);
        }
        table = new FlowTable({ ns: nsId, out: this.writer, timeouts: ns.timeouts, jiffyUs: this.jiffy, seesNew: sc.events.includes('new') });
        table.gapFrom = this.previousRun ? this.previousRun.stopped ?? this.previousRun.alive : undefined;
        for (const r of adopted) table.adopt(r);
      }
    }
    return { nsId, table };
  }

  /**
   * nf_conntrack_events = 1: every new entry gets the kernel's event cache,
   * also while no listener runs; with the default (2) an entry created then
   * never reports anything, its DESTROY included.
   */
  private enableEvents(sc: SourceConfig): void {
    const name = 'net.netfilter.nf_conntrack_events';
    try {
      const cur = native().readSysctl(sc.netns ?? '', [name])[0];
      if (cur?.trim() === '1') return;
      native().writeSysctl(sc.netns ?? '', name, '1');
      this.log.info(`source ${sc.name}: set ${name}=1 (was ${cur ?? 'unknown'})${sc.netns ? ` in network namespace ${sc.netns}` : ''}: connections that begin while no listener runs (the daemon restarting) still report their end`);
    } catch (e) {
      this.log.warn(`source ${sc.name}: could not set ${name}=1 (${(e as Error).message}): connections that begin while the daemon is not running will not report their end; dumps will find it`);
    }
  }

  /** Opens a source's socket and starts reading (synchronous: no event is read before it returns). */
  private openSource(ps: PlannedSource, prep: { nsId: number; table: FlowTable | undefined }): RunningSource {
    const sc = ps.config;
    let src: ConntrackEventSource;
    try {
      src = new ConntrackEventSource({
        netns: sc.netns, rcvbuf: sc.buffer_size, filter: ps.filter, coalesceMs: sc.batch_delay_ms, reliable: sc.reliable,
      });
    } catch (e) {
      throw explainSocketError(e, sc.netns);
    }
    const rs: RunningSource = {
      name: sc.name, config: sc, planned: ps, src, table: prep.table, nsId: prep.nsId, routes: this.routesFor(sc), reportedOverruns: 0,
      kernelDrops: 0, resyncs: 0, resyncing: false, again: false, dumpToSinks: false, lossFrom: undefined,
      nextCheck: Date.now() + CHECK_FIRST_MS, checkEvery: CHECK_FIRST_MS, byType: { NEW: 0, UPDATE: 0, DESTROY: 0, DUMP: 0 },
    };
    // every filter again in user space: a dump runs with the socket filter off
    const match = compileMatcher(ps.filter, false);
    const select = ps.select;
    src.start({
      event: (ev) => {
        rs.byType[ev.type]++;
        if (!match(ev)) return;
        if ((ev.type !== 'DUMP' || rs.dumpToSinks) && (!select || select(ev))) {
          const routes = rs.routes;
          for (let i = 0; i < routes.length; i++) routes[i].sink.push(routes[i].format(ev), ev);
        }
        rs.table?.handle(ev);
      },
      overrun: () => this.onOverrun(rs, true),
      batchEnd: () => this.afterBatch(),
    }, (err) => this.log.error(`source ${sc.name}: ${explainSocketError(err, sc.netns).message}`));
    if (src.rcvbuf < Math.min(sc.buffer_size * 2, 2 ** 31 - 1)) {
      this.log.warn(`source ${sc.name}: asked for a receive buffer of ${sc.buffer_size} bytes, the kernel granted ${src.rcvbuf} (${src.rcvbuf / 2} usable): without CAP_NET_ADMIN it is capped by net.core.rmem_max`);
    }
    this.log.info(`source ${sc.name}: listening to conntrack ${sc.events.join(',')} events` +
      `${sc.netns ? ` in network namespace ${sc.netns}` : ''} (receive buffer ${src.rcvbuf} bytes` +
      `${src.filterInsns ? `, socket filter of ${src.filterInsns} instructions` : ''})`);
    return rs;
  }

  private routesFor(sc: SourceConfig): Route[] {
    const routes: Route[] = [];
    this.plan.config.sink.forEach((k, i) => {
      if (k.sources.length && !k.sources.includes(sc.name)) return;
      routes.push({
        sink: this.sinks[i],
        format: makeFormatter({ format: k.format, output: k.output, netns: sc.netns, ulogdDevice: k.ulogd_device, ulogdEventv1: k.ulogd_eventv1 }),
      });
    });
    return routes;
  }

  private afterBatch(): void {
    for (const s of this.sinks) s.flush();
    if (!this.paused && (this.sinks.some((s) => s.blocking && s.full()) || this.writer?.full())) {
      this.paused = true;
      for (const s of this.sources) s.src.pause();
      this.log.debug(this.writer?.full() ? 'the flow store cannot keep up: sources paused' : 'a blocking sink is full: sources paused');
    }
  }

  private maybeResume(): void {
    if (this.paused && !this.stopping && !this.sinks.some((s) => s.blocking && s.full()) && !this.writer?.full()) {
      this.paused = false;
      for (const s of this.sources) s.src.resume();
      this.log.debug('sinks caught up: sources resumed');
    }
  }

  private tick(): void {
    for (const s of this.sources) s.table?.sweep();
    // flows first seen in a dump that report nothing: a dump now and then tells when they end
    const now = Date.now();
    for (const s of this.sources) {
      if (!s.table) continue;
      if (!s.table.hasQuiet) { s.checkEvery = CHECK_FIRST_MS; s.nextCheck = now + CHECK_FIRST_MS; continue; }
      if (now >= s.nextCheck && !s.resyncing) {
        this.resync(s, 'check', false);
        s.nextCheck = now + s.checkEvery;
        s.checkEvery = Math.min(s.checkEvery * 2, CHECK_MAX_MS);
      }
    }
    // an overrun the batches did not report (nothing to read after it)
    for (const s of this.sources) if (s.src.sock.stats().enobufs > s.reportedOverruns) this.onOverrun(s, true);
    // the namespaces' timeouts, in case they were changed
    if (++this.ticks % 60 === 0) {
      for (const s of this.sources) if (s.table) s.table.timeouts = this.readNamespace(s.config).timeouts ?? s.table.timeouts;
    }
    this.maybeResume();
  }

  /**
   * An overrun, handled at once: one warning with the counts, a receive
   * buffer as large as the burst needed (up to buffer_max), and a resync.
   * With `recover` false (stopping) it only reports.
   */
  private onOverrun(s: RunningSource, recover: boolean): void {
    if (this.stopping) return;
    const st = s.src.sock.stats();
    const n = st.enobufs - s.reportedOverruns;
    if (n <= 0) return;
    s.reportedOverruns = st.enobufs;
    const loss = s.src.takeLoss();
    if (loss.from > 0 && (s.lossFrom === undefined || loss.from < s.lossFrom)) s.lossFrom = loss.from;
    s.lossFrom ??= nowMicros();
    // a flow first seen from now on without its NEW began after the loss did
    if (s.table) s.table.gapFrom = s.lossFrom;
    const drops = Math.max(0, st.kernelDrops - s.kernelDrops);
    s.kernelDrops = Math.max(s.kernelDrops, st.kernelDrops);
    const before = s.src.rcvbuf;
    let grown = '';
    // the kernel grants twice what is asked. The drops counted when the
    // overrun is reported are only the start of a burst: ask for twice what
    // was queued and dropped so far, and at least eight times the buffer
    // (a limit, not memory: the kernel uses only what is queued)
    const ask = Math.min(s.config.buffer_max, Math.max(before * 8, (before + drops * EVENT_TRUESIZE) * 2));
    if (recover && ask * 2 > before) {
      const got = s.src.growBuffer(ask);
      if (got > before) grown = `; receive buffer grown from ${before} to ${got} bytes`;
    }
    this.log.warn(`source ${s.name}: netlink overrun (ENOBUFS) x${n}, kernel dropped ${st.kernelDrops} events so far${grown || ` (receive buffer ${before} bytes${ask >= s.config.buffer_max ? ', at buffer_max' : ''})`}` +
      `${recover && s.config.resync ? '; resyncing from a table dump' : ''}`);
    if (recover && s.config.resync) this.resync(s, 'resync', true);
    // not recovered by a dump: the time events may have been lost is a gap in the trail now
    else this.recordLoss(s, recover ? 'events lost (netlink overrun); resync is off' : 'events lost (netlink overrun) as the daemon stopped');
  }

  /** Records that events of source `s` may have been lost from s.lossFrom until now (when it was not recovered). */
  private recordLoss(s: RunningSource, reason: string): void {
    if (s.lossFrom === undefined) return;
    if (this.writer && s.config.flows) this.writer.gap({ ns: s.nsId, since: s.lossFrom, until: nowMicros(), reason });
    s.lossFrom = undefined;
  }

  /**
   * Dumps the table on the source's own socket: the entries pass through
   * the same path as events (to the sinks when `toSinks`, as DUMP records)
   * and tell the flow table which flows are still open; those it was
   * following that the dump no longer has ended unseen after `lossFrom`.
   */
  private resync(s: RunningSource, why: 'resync' | 'start-up sync' | 'check', toSinks: boolean, lossFrom?: number): void {
    if (s.resyncing) { s.again = true; return; }
    s.resyncing = true;
    s.again = false;
    s.dumpToSinks = toSinks;
    const table = s.table;
    const from = why === 'resync' ? s.lossFrom : lossFrom;
    const before = s.byType.DUMP;
    table?.beginSync();
    s.src.dump()
      .then(() => {
        const done = nowMicros();
        if (why === 'resync') s.resyncs++;
        const missing = table ? table.endSync(done, from) : 0;
        if (why === 'resync' && from !== undefined && this.writer && s.config.flows) {
          this.writer.gap({ ns: s.nsId, since: from, until: done, reason: 'events lost (netlink overrun)' });
        }
        // the loss is recovered unless events were lost again meanwhile
        if (why === 'resync' && !s.again) s.lossFrom = undefined;
        const said = `source ${s.name}: ${why} done, ${s.byType.DUMP - before} table entries ${toSinks ? 'passed on' : 'read'}` +
          (missing ? `; ${missing} flows no longer in the table will be ended (their DESTROY was not seen)` : '');
        if (why === 'check') this.log.debug(said); else this.log.info(said);
        if (why === 'start-up sync' && table?.hasQuiet) {
          this.log.info(`source ${s.name}: ${table.stats().quiet} flows were first seen in the table dump; until their events show they report, further dumps tell when they end`);
        }
      })
      .catch((e: Error) => {
        if (!this.stopping) this.log.error(`source ${s.name}: ${why} failed: ${e.message}`);
        if (why === 'resync') this.recordLoss(s, `events lost (netlink overrun); the resync ${this.stopping ? 'was cut short as the daemon stopped' : `failed: ${e.message}`}`);
      })
      .finally(() => {
        s.resyncing = false;
        s.dumpToSinks = false;
        this.afterBatch();
        if (s.again && !this.stopping) this.resync(s, 'resync', true);
      });
  }

  stats(): DaemonStats {
    const st: DaemonStats = {
      // events: NEW, UPDATE and DESTROY (the table entries of dumps on the same socket are counted apart)
      sources: this.sources.map((s) => ({
        name: s.name, resyncs: s.resyncs, byType: { ...s.byType }, ...s.src.stats(),
        events: s.byType.NEW + s.byType.UPDATE + s.byType.DESTROY, dumped: s.byType.DUMP,
      })),
      sinks: this.sinks.map((s) => s.stats()),
    };
    if (this.writer) {
      st.store = this.writer.stats();
      const f: FlowTableStats = { open: 0, opened: 0, closed: 0, partial: 0, settled: 0, corrected: 0, missing: 0, quiet: 0 };
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

  /**
   * A new configuration. A sink whose settings did not change stays (its
   * queue and connection with it); changed ones are opened anew (the old ones close after
   * the new ones are open). A source whose settings did not change keeps
   * its socket and its flow table, so no event is read twice or missed; a
   * changed one is closed, then opened anew and resynced (its flow table,
   * if the namespace is the same, carries on: the moment between is
   * recorded as a gap). The flow store's settings change only on restart.
   */
  async reload(next: Plan): Promise<void> {
    const storeChanged = JSON.stringify(storeKey(next.config.store)) !== JSON.stringify(storeKey(this.plan.config.store));
    if (storeChanged) this.log.warn('SIGHUP: the [store] settings change only when the daemon restarts; the running store stays');
    const plan: Plan = { ...next, config: { ...next.config, store: this.plan.config.store } };
    // everything that can fail first: the old configuration runs on if it does.
    // A sink whose settings did not change stays as it is (its queue, its
    // connection); it only reopens its file, as on any SIGHUP.
    const reuse = this.plan.config.sink.map((c, i) => ({ key: JSON.stringify(c), sink: this.sinks[i] }));
    const sinks = this.openSinks(plan.config.sink, reuse);
    const keptSinks = sinks.filter((k) => this.sinks.includes(k));
    const old = this.sources;
    const kept = new Set<RunningSource>();
    const steps: Array<{ ps: PlannedSource; same?: RunningSource; prev?: RunningSource; prep?: { nsId: number; table: FlowTable | undefined } }> = [];
    try {
      for (const ps of plan.sources) {
        const same = old.find((o) => !kept.has(o) && JSON.stringify(o.config) === JSON.stringify(ps.config));
        if (same) { kept.add(same); steps.push({ ps, same }); continue; }
        // the same namespace's flow table carries on behind the new socket
        const prev = old.find((o) => !kept.has(o) && o.table && (o.config.netns ?? '') === (ps.config.netns ?? '') && ps.config.flows);
        if (prev) kept.add(prev);
        steps.push({ ps, prev, prep: await this.prepareSource(ps, [], prev?.table) });
      }
    } catch (e) {
      for (const k of sinks) if (!keptSinks.includes(k)) void k.close();
      throw e;
    }
    const oldSinks = this.sinks.filter((k) => !keptSinks.includes(k));
    for (const k of keptSinks) k.reopen();
    this.plan = plan;
    this.sinks = sinks;
    this.sources = [];
    for (const st of steps) {
      if (st.same) {
        st.same.planned = st.ps;
        st.same.routes = this.routesFor(st.ps.config);
        this.sources.push(st.same);
        continue;
      }
      // in one turn of the event loop: the old socket reads nothing more, the
      // new one has everything from its opening on (what the old one still
      // held is recovered by the resync)
      // what the old socket still holds unread is lost with it: from when
      // its queue was last seen empty (now, if it is empty)
      let closedAt = nowMicros();
      if (st.prev) {
        const q = st.prev.src.sock.stats();
        if (q.rmemAlloc !== 0 && q.lastEmptyUs > 0) closedAt = Math.min(closedAt, q.lastEmptyUs);
        st.prev.src.close();
        st.prev.table = undefined;
      }
      let rs: RunningSource;
      try {
        rs = this.openSource(st.ps, st.prep!);
      } catch (e) {
        this.log.error(`SIGHUP: source ${st.ps.config.name}: ${(e as Error).message}`);
        continue;
      }
      this.sources.push(rs);
      if (rs.table && st.prev) {
        rs.table.gapFrom = closedAt;
        rs.lossFrom = closedAt;
        this.resync(rs, 'resync', false);
      } else if (rs.table) this.resync(rs, 'start-up sync', rs.config.sync_at_start);
    }
    for (const o of old) if (!this.sources.includes(o) && !steps.some((x) => x.prev === o)) { o.src.close(); o.table?.sweep(true); }
    await Promise.all(oldSinks.map((k) => k.close()));
    this.afterBatch();
  }

  private closeNow(): void {
    for (const s of this.sources) s.src.close();
    for (const s of this.sinks) void s.close();
    void this.writer?.close(0);
    if (this.timer) clearInterval(this.timer);
  }

  /** Stops reading, then writes out everything queued. */
  async stop(): Promise<DaemonStats> {
    for (const s of this.sources) if (s.src.sock.stats().enobufs > s.reportedOverruns) this.onOverrun(s, false);
    this.stopping = true;
    // a loss a resync has not recovered yet stays a gap
    for (const s of this.sources) this.recordLoss(s, 'events lost (netlink overrun); the resync was cut short as the daemon stopped');
    const final = this.stats();
    for (const s of this.sources) s.src.close();
    if (this.timer) clearInterval(this.timer);
    // flows missing from the last dump did not end by a DESTROY in time
    for (const s of this.sources) s.table?.sweep(true);
    await Promise.all([...this.sinks.map((s) => s.close()), this.writer?.close()]);
    const after = this.stats();
    return { ...after, sources: final.sources };
  }
}

function storeKey(s: StoreConfig): unknown {
  return { type: s.type, path: s.path, url: s.url, spool: s.spool_dir };
}
