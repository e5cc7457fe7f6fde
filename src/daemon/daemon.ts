// The daemon: sources -> pipeline (filters, the flow table) -> sinks and the
// flow store, built from a validated plan. A source never knows its sinks'
// formats; a sink never decodes netlink. Each source handles its own losses
// (sources/*/index.ts); the pipeline records the time events may have been
// lost as a gap in the store.
import { ConntrackSource, prepareConntrack, type ConntrackStats, type SyncWhy } from '../sources/conntrack/index.js';
import { NflogDaemonSource, type NflogSourceStats } from '../sources/nflog/index.js';
import { TcpstatesDaemonSource, type TcpstatesSourceStats } from '../sources/tcpstates/index.js';
import type { TcpstatesSourceConfig } from '../sources/tcpstates/schema.js';
import type { SourceLog } from '../sources/source.js';
import type { Kind, RecordOf } from '../records/index.js';
import { compileMatcher } from '../pipeline/filter.js';
import { FLAG_END_ESTIMATED } from '../records/flow.js';
import { DEFAULT_FORMAT, findFormat } from '../formats/registry.js';
import type { AggregateRecord } from '../records/aggregate.js';
import { FileSink } from '../sinks/file.js';
import { SyslogSink } from '../sinks/syslog.js';
import { JournalSink } from '../sinks/journal.js';
import { PcapSink } from '../sinks/pcap.js';
import { IpfixSink } from '../sinks/ipfix.js';
import type { Sink, SinkStats } from '../sinks/sink.js';
import { sourceKind, type Plan, type PlannedConntrack, type PlannedSource } from '../config/load.js';
import type { AggregateConfig, ConntrackSourceConfig, SinkConfig, StoreConfig } from '../config/schema.js';
import { native } from '../netlink/native.js';
import type { Logger } from './log.js';
import { FlowTable, type FlowTableStats } from '../pipeline/flow-table.js';
import { FlowFanout, type FlowRoute, type InterimTimeouts } from '../pipeline/flow-fanout.js';
import { Aggregator, type AggregatorStats } from '../pipeline/aggregate.js';
import { AggregateEncoding } from '../formats/ipfix.js';
import type { EndedFlow } from '../records/flow.js';
import { jiffyMicros, Timeouts, TIMEOUT_SYSCTLS } from '../pipeline/timeouts.js';
import { StoreWriter, type WriterStats } from '../store/writer.js';
import { SqliteStore } from '../store/sqlite.js';
import { PostgresStore } from '../store/postgres.js';
import type { FlowStore, OpenRow, Run } from '../store/store.js';
import { nowMicros, parseDuration } from '../util/time.js';
import { packetRow } from '../store/packets.js';
import { tcpStateRow, type TcpStateRow } from '../store/tcpstates.js';
import { NetnsNames } from '../sources/tcpstates/netns.js';
import { kernelBoot } from '../util/boot.js';
import { netnsInode } from '../sources/tcpstates/source.js';
import { NetnsWatcher, netnsPattern, type NamedNetns } from '../sources/netns/watch.js';
import { statSync } from 'node:fs';

/** a record sink (pcap) has no format: it encodes the record itself */
interface Route { sink: Sink; kind: Kind; format: ((r: never) => string) | undefined }

/** A source as the pipeline runs it: where its records go. */
interface Attached {
  name: string;
  /** the configured source's name (sinks take records by it): `name` without the namespace of a followed one */
  parent: string;
  /** a namespace followed by pattern: its inode (the instance is the configured source's for it) */
  followed?: number;
  /** the inode of the source's namespace (conntrack, nflog; undefined: not known) */
  inode?: number;
  planned: PlannedSource;
  /** the plan's source as configured (`planned` may have flows turned off: its namespace feeds the store through another) */
  configured: PlannedSource;
  src: ConntrackSource | NflogDaemonSource | TcpstatesDaemonSource;
  /** conntrack: the flow table feeding the store (undefined without a store) */
  table: FlowTable | undefined;
  /** the store's id of the source's namespace */
  nsId: number;
  /** nflog: its packets go to the store; tcpstates: its state changes */
  toStore: boolean;
  routes: Route[];
  /** the next dump that checks the flows only a dump can tell the end of (ms), and the interval */
  nextCheck: number;
  checkEvery: number;
  /** the next dump that reads the open flows' counters for interim reports (ms; 0: not planned yet) */
  nextInterim: number;
}

export interface DaemonStats {
  sources: Array<ConntrackStats | NflogSourceStats | TcpstatesSourceStats>;
  /** the sources that follow namespaces by pattern: how many each is attached to */
  followed: Array<{ source: string; attached: number; failing: number }>;
  sinks: SinkStats[];
  /** the aggregation stages */
  aggregates: AggregatorStats[];
  store?: WriterStats;
  /** present when a conntrack source keeps a flow table (for the store, or a sink with records = "flows") */
  flows?: FlowTableStats & {
    /** ended flows a sink with records = "flows" was sent, and those it could not be sent whole (settled,
     * but opened before the sink was configured or adopted from an earlier run: the store has them) */
    sent: number; unsent: number;
    /** interim reports of open flows sent to the IPFIX sinks with active/inactive timeouts */
    interim: number;
  };
}

const TIMESTAMP_SYSCTL = 'net.netfilter.nf_conntrack_timestamp';
/** flows only a dump can tell the end of are checked after this long, then twice as long each time, up to CHECK_MAX_MS */
const CHECK_FIRST_MS = 10_000;
const CHECK_MAX_MS = 300_000;

/** a line sink's formatter of aggregated records, by format name, found once (the configuration checked the format writes them) */
const aggregateFormats = new Map<string, (r: AggregateRecord) => string>();
function aggregateFormat(name = DEFAULT_FORMAT.aggregate!): (r: AggregateRecord) => string {
  let f = aggregateFormats.get(name);
  if (!f) { f = findFormat(name, 'aggregate')!.build({}) as (r: AggregateRecord) => string; aggregateFormats.set(name, f); }
  return f;
}
/** an aggregation stage's counts that carry on across reloads */
const AGGREGATE_COUNTS = ['flows', 'records', 'late', 'early'] as const;

/** How often a table is dumped for interim reports: every active or inactive timeout, whichever is less, and at least once a minute (ms). */
export function interimDumpMs(t: InterimTimeouts): number {
  return Math.min(60_000, ...[t.activeUs, t.inactiveUs].filter((x) => x > 0).map((x) => x / 1000));
}
/** TCP state changes that may wait for their namespace's id from the store before the sources pause */
const NS_WAITING_MAX = 10_000;
/** a followed namespace the daemon could not attach to is tried again this often */
const ATTACH_RETRY_MS = 10_000;

/** a source of the plan, or one that follows namespaces for one of them (`followed`: its inode) */
interface Expanded { ps: PlannedSource; parent: string; followed?: number }
const followKey = (parent: string, inode: number) => `${parent}\0${inode}`;

/** a source that follows namespaces, for one of them (its name there: `SOURCE@NAMESPACE`) */
function instanceFor(ps: PlannedSource, ns: string): PlannedSource {
  const config = { ...ps.config, name: `${ps.config.name}@${ns}`, netns: ns };
  return { ...ps, config, follow: undefined } as PlannedSource;
}
const followOf = (ps: PlannedSource): string[] | undefined => (ps.type === 'tcpstates' ? undefined : ps.follow);

/** the key of a namespace in the store's id cache: its name and inode */
const nsKey = (name: string, inode: number): string => `${name}\0${inode}`;

/** the inode of a source's namespace ('' : the daemon's own), or undefined */
function inodeOf(netns: string | undefined): number | undefined {
  try { return statSync(!netns ? '/proc/self/ns/net' : netns.includes('/') ? netns : `/run/netns/${netns}`).ino; } catch { return undefined; }
}

export class Pipeline {
  private sources: Attached[] = [];
  private sinks: Sink[] = [];
  /** the aggregation stages by name, and the configuration each was made from */
  private aggregators = new Map<string, { a: Aggregator; key: string }>();
  /** the counts of stages a reload replaced, by name (kept in the totals of the one that follows, or alone for one removed) */
  private readonly retiredAggregates = new Map<string, Record<(typeof AGGREGATE_COUNTS)[number], number>>();
  private paused = false;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private writer: StoreWriter | undefined;
  private previousRun: Run | undefined;
  private jiffy = jiffyMicros();
  private ticks = 0;
  /** the store's ids of the namespaces TCP state changes are in, by name */
  private nsIds = new Map<string, number>();
  /** changes of a namespace whose id is being asked for */
  private nsPending = new Map<string, TcpStateRow[]>();
  private nsAsking = new Set<Promise<void>>();
  /** rows in nsPending (they count against the store's queue: sources pause while it is full) */
  private nsWaiting = 0;
  private readonly boot = kernelBoot();
  /** the named namespaces, while a source follows them by pattern */
  private watcher: NetnsWatcher | undefined;
  /** followed namespaces that could not be attached, by `SOURCE\0INODE`: when to try again */
  private failed = new Map<string, number>();
  /** reloads and the attaching and detaching of followed namespaces, one at a time */
  private serial: Promise<void> = Promise.resolve();
  private reconcileQueued = false;
  /** stop() has begun: nothing is attached any more */
  private closing = false;
  /** flow counters of the tables no longer in use (detached namespaces), so the totals never go down */
  private retired: FlowTableStats = { open: 0, opened: 0, closed: 0, partial: 0, settled: 0, corrected: 0, missing: 0, quiet: 0 };
  private retiredSent = { sent: 0, unsent: 0, interim: 0 };
  /** each flow table's output: the store and the sinks that take flow records */
  private readonly fanouts = new WeakMap<FlowTable, FlowFanout>();
  /** keys of open flows when there is no store */
  private nextFlowKey = 1;

  constructor(private plan: Plan, private readonly log: Logger) {}

  /** watches /run/netns while a source of the plan follows namespaces (started with a first scan) */
  private ensureWatcher(plan: Plan): void {
    if (this.closing) return;
    const follows = plan.sources.some((ps) => followOf(ps));
    if (follows && !this.watcher) {
      this.watcher = new NetnsWatcher({ onChange: () => this.queueReconcile() });
      this.watcher.start();
    } else if (!follows && this.watcher) {
      this.watcher.close();
      this.watcher = undefined;
    }
  }

  /** The plan's sources, a source that follows namespaces once for each that matches now. */
  private expand(plan: Plan): Expanded[] {
    const out: Expanded[] = [];
    for (const ps of plan.sources) {
      const f = followOf(ps);
      if (!f) { out.push({ ps, parent: ps.config.name }); continue; }
      const tests = f.map(netnsPattern);
      for (const ns of this.watcher?.namespaces.values() ?? []) {
        const name = ns.names.find((n) => tests.some((t) => t(n)));
        if (name !== undefined) out.push({ ps: instanceFor(ps, name), parent: ps.config.name, followed: ns.inode });
      }
    }
    return out;
  }

  private queueReconcile(): void {
    if (this.reconcileQueued || this.closing) return;
    this.reconcileQueued = true;
    this.serial = this.serial.then(async () => {
      this.reconcileQueued = false;
      if (!this.closing) await this.reconcile();
    }).catch((e: Error) => this.log.error(`following network namespaces: ${e.message}`));
  }

  /**
   * Attaches each followed source to every matching namespace it is not
   * attached to, and detaches it from those that are gone (first: a
   * namespace made again under the same name is a new one).
   */
  private async reconcile(): Promise<void> {
    const want = this.expand(this.plan).filter((x) => x.followed !== undefined);
    const keys = new Set(want.map((x) => followKey(x.parent, x.followed!)));
    for (const a of [...this.sources]) if (a.followed !== undefined && !keys.has(followKey(a.parent, a.followed))) this.detach(a);
    const attached = new Set(this.sources.filter((a) => a.followed !== undefined).map((a) => followKey(a.parent, a.followed!)));
    for (const k of [...this.failed.keys()]) if (!keys.has(k) || attached.has(k)) this.failed.delete(k);
    const now = Date.now();
    for (const x of want) {
      const k = followKey(x.parent, x.followed!);
      if (attached.has(k) || (this.failed.get(k) ?? 0) > now) continue;
      if (this.closing) return;
      const a = await this.attach(x, []);
      if (a && a.src instanceof ConntrackSource && (a.src.config.sync_at_start || a.table)) a.src.sync('start-up sync', a.src.config.sync_at_start);
    }
  }

  /**
   * Opens and starts a source for a followed namespace. A namespace that
   * cannot be entered (or whose source does not start) is said once and
   * tried again every ATTACH_RETRY_MS; it never stops the daemon.
   */
  private async attach(x: Expanded, adopted: OpenRow[]): Promise<Attached | undefined> {
    const k = followKey(x.parent, x.followed!);
    const ns = x.ps.config.netns!;
    const ps = this.oneFeeder(x.ps, x.followed, this.sources, x.parent);
    let a: Attached | undefined;
    try {
      const prep = await this.prepareSource(ps, adopted, undefined, x.parent);
      a = this.openSource(ps, prep, x, x.ps);
      this.sources.push(a);
      if (this.paused) a.src.pause();
      await this.startSource(a);
      // opened by name: the name made again meanwhile is another namespace (the next scan attaches that one)
      if (inodeOf(ns) !== x.followed) throw new Error('the namespace was replaced while it was being attached');
    } catch (e) {
      if (a) { this.drop(a); a.src.close(); a.table?.endAll(nowMicros()); this.retire(a.table); }
      // gone meanwhile (or made again): the next scan says so, no need to
      if (inodeOf(ns) !== x.followed) return undefined;
      if (!this.failed.has(k)) this.log.warn(`source ${ps.config.name}: cannot attach to network namespace ${ns}: ${(e as Error).message}; trying again every ${ATTACH_RETRY_MS / 1000} s`);
      this.failed.set(k, Date.now() + ATTACH_RETRY_MS);
      return undefined;
    }
    this.log.info(`source ${a.name}: attached to network namespace ${ns} (inode ${x.followed})${this.failed.delete(k) ? ' after all' : ''}`);
    return a;
  }

  private drop(a: Attached): void {
    const i = this.sources.indexOf(a);
    if (i >= 0) this.sources.splice(i, 1);
  }

  /** a flow table no longer used: its counts stay in the totals */
  private retire(t: FlowTable | undefined): void {
    if (!t) return;
    const c = t.stats();
    for (const k of ['opened', 'closed', 'partial', 'settled', 'corrected'] as const) this.retired[k] += c[k];
    const f = this.fanouts.get(t);
    if (f) { this.retiredSent.sent += f.sent; this.retiredSent.unsent += f.unsent; this.retiredSent.interim += f.interimSent; f.setRoutes([], [], [], undefined); }
  }

  /** Does a sink with records = "flows" take the flow records of this configured source? */
  private flowSinkTakes(parent: string, plan = this.plan): boolean {
    return plan.config.sink.some((k) => k.records === 'flows' && k.aggregate === undefined && (!k.sources.length || k.sources.includes(parent))) ||
      plan.config.aggregate.some((a) => this.aggregateTakes(a, parent, plan));
  }

  /** Does an aggregation stage fold the flow records of this configured source? */
  private aggregateTakes(a: AggregateConfig, parent: string, plan = this.plan): boolean {
    if (a.sources.length) return a.sources.includes(parent);
    const s = plan.config.source.find((x) => x.name === parent);
    return s?.type === 'conntrack' && s.flows;
  }

  /**
   * The aggregation stages of a configuration: one whose settings did not
   * change stays (what it holds with it); the others start empty (a reload
   * has had the ones it changes or removes send what they held first).
   */
  private setAggregators(list: AggregateConfig[]): void {
    const next = new Map<string, { a: Aggregator; key: string }>();
    for (const c of list) {
      const key = JSON.stringify(c);
      const same = this.aggregators.get(c.name);
      if (same && same.key === key) { next.set(c.name, same); continue; }
      if (c.store && !this.writer) this.log.warn(`aggregate ${c.name}: store = true, but the daemon runs without a flow store (the [store] settings change only when it restarts): its records go to its sinks only`);
      next.set(c.name, {
        key,
        a: new Aggregator({
          name: c.name, keys: c.keys, srcPrefix4: c.src_prefix, srcPrefix6: c.src_prefix6, dstPrefix4: c.dst_prefix, dstPrefix6: c.dst_prefix6,
          interval: c.interval, delay: c.delay, maxKeys: c.max_keys,
          // to the sinks that name it (looked up as each record goes: a reload replaces sinks);
          // an IPFIX sink encodes the record, a line sink writes it in its format
          // (and the flow store with store = true)
          emit: (r) => {
            this.plan.config.sink.forEach((k, i) => {
              if (k.aggregate !== c.name) return;
              if (k.type === 'ipfix') this.sinks[i]?.push('', r, 'aggregate');
              else this.sinks[i]?.push(aggregateFormat(k.format)(r), r, 'aggregate');
            });
            if (c.store) this.writer?.aggregate(r);
          },
        }),
      });
    }
    // (the stages it replaces were flushed first: flushReplacedAggregators)
    this.aggregators = next;
  }

  /**
   * The stages a configuration changes or removes send what they hold now,
   * early, to the sinks of the configuration in force (before a reload
   * switches to the next: the sinks that named them); their counts stay in
   * the totals.
   */
  private flushReplacedAggregators(list: AggregateConfig[]): void {
    for (const [name, old] of this.aggregators) {
      const c = list.find((x) => x.name === name);
      if (c && JSON.stringify(c) === old.key) continue;
      old.a.tick(nowMicros(), true);
      const st = old.a.stats();
      const r = this.retiredAggregates.get(name) ?? { flows: 0, records: 0, late: 0, early: 0 };
      for (const k of AGGREGATE_COUNTS) r[k] += st[k];
      this.retiredAggregates.set(name, r);
      // (gone: the next configuration's stage of this name starts empty)
      this.aggregators.delete(name);
    }
  }

  /** Does a conntrack source keep a flow table: for the store, or for a sink that takes flow records? */
  private wantsTable(sc: ConntrackSourceConfig, parent: string, plan = this.plan): boolean {
    return sc.flows && (this.writer !== undefined || this.flowSinkTakes(parent, plan));
  }

  /**
   * One record per flow: a conntrack source keeps flow records (for the
   * store and the sinks that take them) only if no source among `others`
   * keeps them for the same namespace (by inode: a name and a pattern, two
   * patterns, two names of one namespace); otherwise it is said once and
   * the source reads without keeping them. `parent`: the configured source.
   */
  private oneFeeder(ps: PlannedSource, inode: number | undefined, others: Attached[], parent: string, plan = this.plan): PlannedSource {
    if (ps.type !== 'conntrack' || !this.wantsTable(ps.config, parent, plan) || inode === undefined) return ps;
    const other = others.find((o) => o.table && o.inode === inode);
    if (!other) return ps;
    this.log.warn(`source ${ps.config.name}: network namespace ${ps.config.netns ?? '(the daemon\'s own)'} feeds the flow records (store, sinks with records = "flows") through source ${other.name} already: this source's flows from it are not kept`);
    return { ...ps, config: { ...ps.config, flows: false } };
  }

  /**
   * A followed namespace is gone: everything the source held there is
   * closed (so nothing of the daemon keeps the namespace alive), and its
   * flows still open ended after they were last seen, by now.
   */
  private detach(a: Attached): void {
    a.src.stopping();
    a.src.close();
    this.drop(a);
    const n = a.table?.endAll(nowMicros()) ?? 0;
    this.retire(a.table);
    this.log.info(`source ${a.name}: network namespace ${a.planned.config.netns} is gone: detached${n ? `; ${n} flow${n > 1 ? 's' : ''} open there ended (end-estimated: after last seen, by now)` : ''}`);
  }

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
      this.setAggregators(this.plan.config.aggregate);
      this.ensureWatcher(this.plan);
      // (on the serial chain: a namespace the watcher reports meanwhile is attached after, not twice)
      const attaching = (async () => {
        for (const x of this.expand(this.plan)) {
          if (x.followed !== undefined) { await this.attach(x, adopted); continue; }
          const ps = this.oneFeeder(x.ps, inodeOf(x.ps.type === 'tcpstates' ? undefined : x.ps.config.netns), this.sources, x.parent);
          const prep = await this.prepareSource(ps, adopted, undefined, undefined, x.parent);
          const a = this.openSource(ps, prep, x, x.ps);
          this.sources.push(a);
          await this.startSource(a);
        }
      })();
      this.serial = attaching.catch(() => {});
      await attaching;
    } catch (e) {
      this.closeNow();
      throw e;
    }
    this.settleUnadopted(adopted);
    // with a store, the flow table learns the flows open now (and settles
    // those left open by the last run that have ended since)
    const prevAlive = this.previousRun ? this.previousRun.stopped ?? this.previousRun.alive : undefined;
    for (const s of this.sources) {
      if (s.src instanceof ConntrackSource && (s.src.config.sync_at_start || s.table)) s.src.sync('start-up sync', s.src.config.sync_at_start, prevAlive);
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
        const i = reuse.findIndex((r) => r.key === this.sinkKey(k, this.pendingPlan ?? this.plan));
        if (i >= 0) {
          sinks.push(reuse[i].sink);
          reuse.splice(i, 1);
          continue;
        }
        const sink: Sink = k.type === 'syslog' ? new SyslogSink({
          name: k.name, address: k.address, protocol: k.protocol, facility: k.facility, severity: k.severity,
          tag: k.tag, sdId: k.sd_id, queueSize: k.queue_size, whenFull: k.when_full, warn: (m) => this.log.warn(m),
        }) : k.type === 'journal' ? new JournalSink({
          name: k.name, socket: k.journal_socket, identifier: k.tag, severity: k.severity, memfdThreshold: k.memfd_threshold,
          queueSize: k.queue_size, whenFull: k.when_full, warn: (m) => this.log.warn(m),
        }) : k.type === 'pcap' ? new PcapSink({
          name: k.name, path: k.path, linktype: k.linktype, mode: parseInt(k.mode, 8), fsync: k.fsync,
          rotateSize: k.rotate_size, rotateKeep: k.rotate_keep, queueSize: k.queue_size, whenFull: k.when_full, warn: (m) => this.log.warn(m),
        }) : k.type === 'ipfix' ? new IpfixSink({
          name: k.name, address: k.address, domain: k.observation_domain, templateRefreshSecs: k.template_refresh,
          maxMessageSize: k.max_message_size, natEvents: k.nat_events, natEventNumbers: k.nat_event_numbers,
          aggregate: this.aggregateEncoding(k.aggregate),
          queueSize: k.queue_size, whenFull: k.when_full, warn: (m) => this.log.warn(m),
        }) : k.type === 'file' ? new FileSink({
          name: k.name,
          target: k.path!,
          mode: parseInt(k.mode, 8),
          fsync: k.fsync,
          rotateSize: k.rotate_size,
          rotateKeep: k.rotate_keep,
          queueSize: k.queue_size,
          whenFull: k.when_full,
          warn: (m) => this.log.warn(m),
        }) : new FileSink({ name: k.name, target: 1, queueSize: k.queue_size, whenFull: k.when_full, warn: (m) => this.log.warn(m) });
        sink.onDrain(() => this.maybeResume());
        sinks.push(sink);
        opened.push(sink);
      }
    } catch (e) {
      for (const s of opened) void s.close();
      const err = e as NodeJS.ErrnoException;
      const k = list[sinks.length];
      const what = k.type === 'file' || k.type === 'pcap' ? `file ${k.path}` : k.type === 'syslog' || k.type === 'ipfix' ? k.address : k.type;
      throw Object.assign(new Error(`cannot open sink ${k.name} (${what}): ${err.code ?? err.message}`), { exitCode: 1 });
    }
    return sinks;
  }

  /** The namespace's conntrack timeouts, and whether it keeps timestamps. */
  private readNamespace(sc: ConntrackSourceConfig): { timeouts: Timeouts | undefined; timestamps: boolean | undefined } {
    try {
      const v = native().readSysctl(sc.netns ?? '', [...TIMEOUT_SYSCTLS, TIMESTAMP_SYSCTL]);
      const ts = v[v.length - 1];
      return { timeouts: new Timeouts(v.slice(0, -1)), timestamps: ts === null ? undefined : ts.trim() === '1' };
    } catch (e) {
      this.log.warn(`source ${sc.name}: cannot read the conntrack timeouts${sc.netns ? ` of network namespace ${sc.netns}` : ''} (${(e as Error).message}); flows that expire count as active to their end`);
      return { timeouts: undefined, timestamps: undefined };
    }
  }

  /**
   * The log of a source: an instance for a followed namespace says its own
   * news at debug level (at info, one line per namespace attached or gone is
   * the daemon's), its warnings and errors as any source.
   */
  private sourceLog(followed: boolean): SourceLog {
    if (!followed) return this.log;
    const l = this.log;
    return { error: (m) => l.error(m), warn: (m) => l.warn(m), info: (m) => l.debug(m), debug: (m) => l.debug(m) };
  }

  /** the followed sources already told that a namespace of theirs has no kernel timestamps */
  private saidNoTimestamps = new Set<string>();

  /**
   * What a source needs before its socket opens: sysctls set, its namespace
   * id and flow table. `parent`: the configured source of a followed
   * namespace's instance.
   */
  private async prepareSource(ps: PlannedSource, adopted: OpenRow[], table?: FlowTable, parent?: string, configured = parent ?? ps.config.name, plan = this.plan): Promise<{ nsId: number; table: FlowTable | undefined }> {
    const followed = parent !== undefined;
    // a tcpstates source's gaps are in its namespace (by the name its changes carry), or in every one (-1)
    if (ps.type === 'tcpstates') {
      if (!this.writer || !ps.config.netns) return { nsId: -1, table: undefined };
      let name = ps.config.netns;
      let ino = 0;
      try { ino = netnsInode(name); name = this.netnsNames().name(ino); } catch { /* the source itself says it is not there */ }
      return { nsId: await this.writer.namespaceId(name, ino), table: undefined };
    }
    if (ps.type !== 'conntrack') {
      const ino = inodeOf(ps.config.netns) ?? 0;
      const nsId = this.writer && ps.config.store ? await this.writer.namespaceId(ps.config.netns ?? '', ino) : 0;
      if (this.writer && ps.config.store) this.nsIds.set(nsKey(ps.config.netns ?? '', ino), nsId);
      return { nsId, table: undefined };
    }
    const sc = ps.config;
    const withFlows = this.wantsTable(sc, configured, plan);
    prepareConntrack(sc, this.sourceLog(followed), withFlows);
    let nsId = 0;
    if (withFlows) {
      const ino = inodeOf(sc.netns) ?? 0;
      if (this.writer) {
        nsId = await this.writer.namespaceId(sc.netns ?? '', ino);
        this.nsIds.set(nsKey(sc.netns ?? '', ino), nsId);
      }
      if (!table) {
        const ns = this.readNamespace(sc);
        if (ns.timestamps === false && followed && !this.saidNoTimestamps.has(parent)) {
          this.saidNoTimestamps.add(parent);
          this.log.warn(`source ${parent}: nf_conntrack_timestamp is off in network namespace ${sc.netns} (said once for the namespaces it follows): flow times there are when conntrail read the events and ends of expired flows when the kernel reaped them (set enable_timestamps = true for the kernel's own times)`);
        } else if (ns.timestamps === false && !followed) {
          this.log.warn(`source ${sc.name}: nf_conntrack_timestamp is off${sc.netns ? ` in network namespace ${sc.netns}` : ''}: flow times are when conntrail read the events and ends of expired flows when the kernel reaped them (set enable_timestamps = true for the kernel's own times)`);
        }
        const out = new FlowFanout({ store: this.writer, netns: this.nsName(sc.netns, ino), netnsInode: ino, nextKey: () => this.nextFlowKey++ });
        table = new FlowTable({ ns: nsId, out, timeouts: ns.timeouts, jiffyUs: this.jiffy, seesNew: sc.events.includes('new') });
        this.fanouts.set(table, out);
        table.gapFrom = this.previousRun ? this.previousRun.stopped ?? this.previousRun.alive : undefined;
        for (const r of adopted) table.adopt(r);
      }
    }
    return { nsId, table };
  }

  /** A namespace's name in flow records: '' (the daemon's own), its `ip netns` name or path, or net:[INODE] if it has none. */
  private nsName(netns: string | undefined, inode: number): string {
    if (!netns) return '';
    return netns.includes('/') && inode ? `net:[${inode}]` : netns;
  }

  /** Opens a source's socket (nothing is read before startSource). */
  private openSource(ps: PlannedSource, prep: { nsId: number; table: FlowTable | undefined }, x: Expanded, configured: PlannedSource = ps): Attached {
    const log = this.sourceLog(x.followed !== undefined);
    const src = ps.type === 'conntrack' ? new ConntrackSource(ps.config, ps.filter, log)
      : ps.type === 'tcpstates' ? new TcpstatesDaemonSource(ps.config, log, this.netnsNames())
      : new NflogDaemonSource(ps.config, log, { keepRaw: this.keepsRaw(x.parent) });
    const a: Attached = {
      name: ps.config.name, parent: x.parent, followed: x.followed, planned: ps, configured, src, table: prep.table, nsId: prep.nsId, routes: this.routesFor(ps, x.parent),
      inode: ps.type === 'tcpstates' ? undefined : x.followed ?? inodeOf(ps.config.netns),
      toStore: (ps.type === 'nflog' || ps.type === 'tcpstates') && ps.config.store && this.writer !== undefined,
      nextCheck: Date.now() + CHECK_FIRST_MS, checkEvery: CHECK_FIRST_MS, nextInterim: 0,
    };
    this.setFlowRoutes(prep.table, ps, x.parent);
    return a;
  }

  /** where the flow records of a table go (the sinks with records = "flows" that take its source) */
  private setFlowRoutes(table: FlowTable | undefined, ps: PlannedSource, parent: string): void {
    const out = table && this.fanouts.get(table);
    if (!out) return;
    const routes: FlowRoute[] = [];
    const openRoutes: FlowRoute[] = [];
    const interimRoutes: FlowRoute[] = [];
    const ipfix: string[] = [];
    // (the least of the timeouts of the sinks that have them: one set of interim reports per table)
    let active = 0;
    let inactive = 0;
    const least = (a: number, b: number) => (a > 0 && b > 0 ? Math.min(a, b) : a || b);
    // the aggregation stages that fold this source's flows: each whole flow at its end
    // (looked up by name as each flow comes: a reload replaces a stage it changes, and flows end while it runs)
    for (const c of this.plan.config.aggregate) {
      const name = c.name;
      if (this.aggregateTakes(c, parent)) routes.push((f) => this.aggregators.get(name)?.a.push(f));
    }
    this.plan.config.sink.forEach((k, i) => {
      if (k.records !== 'flows' || (k.sources.length && !k.sources.includes(parent))) return;
      // (a sink of an aggregate's records takes them from the stage)
      if (k.aggregate !== undefined) return;
      const sink = this.sinks[i];
      if (k.type === 'ipfix') {
        // a record sink: the record itself (and, for NAT session events, the flow as it opens)
        const route: FlowRoute = (f) => sink.push('', f, 'flow');
        ipfix.push(k.name);
        if (k.active_timeout > 0 || k.inactive_timeout > 0) {
          interimRoutes.push(route);
          active = least(active, k.active_timeout);
          inactive = least(inactive, k.inactive_timeout);
        } else routes.push(route);
        if (k.nat_events) openRoutes.push(route);
        return;
      }
      // the configuration checked that the format writes flow records
      const inner = findFormat(k.format ?? DEFAULT_FORMAT.flow!, 'flow')!.build({ output: k.output, netns: ps.config.netns }) as (f: EndedFlow) => string;
      const format = k.netns_prefix ? withNetnsPrefix(inner) : inner;
      routes.push((f) => sink.push(format(f), f, 'flow'));
    });
    // (a sysctl that could not be read is no reason to stop the interim reports: the dumps show whether there are counters)
    if (ipfix.length && this.accounting(ps.config as ConntrackSourceConfig) === false) {
      // without counters the records count nothing, and the dumps cannot tell an open flow's
      if (!this.saidNoAccounting.has(parent)) {
        this.saidNoAccounting.add(parent);
        this.log.warn(`sink ${ipfix.join(', ')}: conntrack accounting is off${ps.config.netns ? ` in network namespace ${ps.config.netns}` : ''}: the flow records of source ${parent} carry no packet or byte counts${interimRoutes.length ? ', and open flows are not reported before their end (active_timeout, inactive_timeout)' : ''} (set enable_accounting = true on the source)`);
      }
      routes.push(...interimRoutes);
      interimRoutes.length = 0;
    }
    out.setRoutes(routes, openRoutes, interimRoutes, { activeUs: active * 1e6, inactiveUs: inactive * 1e6 });
  }

  /** each stage's counts, with those of the stages of the same name a reload replaced (a removed one's stay, held 0) */
  private aggregateStats(): AggregatorStats[] {
    const out = [...this.aggregators.values()].map(({ a }) => {
      const st = a.stats();
      const r = this.retiredAggregates.get(st.name);
      if (r) for (const k of AGGREGATE_COUNTS) st[k] += r[k];
      return st;
    });
    for (const [name, r] of this.retiredAggregates) if (!this.aggregators.has(name)) out.push({ name, ...r, held: 0 });
    return out;
  }

  /** what makes a sink the same across a reload: its settings, and for a sink of aggregated records its stage's (an IPFIX sink's templates are the stage's keys) */
  private sinkKey(k: SinkConfig, plan: Plan): string {
    return JSON.stringify(k.aggregate === undefined ? k : [k, plan.config.aggregate.find((a) => a.name === k.aggregate)]);
  }

  /** the IPFIX encoding of an aggregation stage's records (undefined: the sink exports flows) */
  private aggregateEncoding(name: string | undefined, plan = this.pendingPlan ?? this.plan): AggregateEncoding | undefined {
    if (name === undefined) return undefined;
    const c = plan.config.aggregate.find((x) => x.name === name)!;
    return new AggregateEncoding(c.keys, { src4: c.src_prefix, src6: c.src_prefix6, dst4: c.dst_prefix, dst6: c.dst_prefix6 });
  }

  /** a reload's plan while its sinks are opened */
  private pendingPlan: Plan | undefined;

  /** the sources already told that their namespace counts nothing (interim reports off) */
  private saidNoAccounting = new Set<string>();

  /** Does the source's namespace count packets and bytes per flow (nf_conntrack_acct)? undefined: it could not be read. */
  private accounting(sc: ConntrackSourceConfig): boolean | undefined {
    try {
      return native().readSysctl(sc.netns ?? '', ['net.netfilter.nf_conntrack_acct'])[0]?.trim() === '1';
    } catch {
      return undefined;
    }
  }

  /** Starts reading: each record through the pipeline's filters to its routes (and the flow table). */
  private startSource(a: Attached): Promise<void> {
    const batchEnd = () => this.afterBatch();
    if (a.src instanceof ConntrackSource) {
      const ps = a.planned as PlannedConntrack;
      a.src.hooks = this.hooksFor(a);
      // every filter again in user space: a dump runs with the socket filter off
      const match = compileMatcher(ps.filter, false);
      return a.src.start({
        record: (ev, toSinks) => {
          if (!match(ev)) return;
          if (toSinks && (!ps.select || ps.select(ev))) deliver(a.routes, ev, 'event');
          a.table?.handle(ev);
        },
        batchEnd,
      });
    }
    if (a.src instanceof TcpstatesDaemonSource) {
      const w = this.writer;
      if (a.toStore) a.src.hooks = { gap: (since, until, reason) => w!.gap({ ns: a.nsId, since, until, reason, kind: 'tcpstates' }) };
      return a.src.start({
        record: (r) => {
          if (a.toStore) this.storeTcpState(r);
          deliver(a.routes, r, 'tcpstate');
        },
        batchEnd,
      });
    }
    const writer = this.writer;
    // what the kernel lost is a gap in the stored trail of packets
    if (a.toStore) a.src.hooks = { gap: (since, until, reason) => writer!.gap({ ns: a.nsId, since, until, reason, kind: 'packets' }) };
    return a.src.start({
      record: (p) => {
        if (a.toStore) writer!.packet(packetRow(p, a.nsId));
        deliver(a.routes, p, 'packet');
      },
      batchEnd,
    });
  }

  /**
   * A TCP state change to the store, in its namespace: the id a conntrack
   * or nflog source already has for that name (the same one its flows and
   * packets carry), or one asked for first.
   */
  private storeTcpState(r: RecordOf['tcpstate']): void {
    const key = nsKey(r.netns, r.netnsInode);
    const id = this.nsIds.get(key);
    if (id !== undefined) { this.writer!.tcpState(tcpStateRow(r, id, this.boot)); return; }
    const row = tcpStateRow(r, 0, this.boot);
    this.nsWaiting++;
    const waiting = this.nsPending.get(key);
    if (waiting) { waiting.push(row); return; }
    this.nsPending.set(key, [row]);
    const w = this.writer!;
    // (namespaceId does not fail: a store that cannot answer gets an id chosen here, written with the batch)
    const asked = w.namespaceId(r.netns, r.netnsInode).then((nsId) => {
      this.nsIds.set(key, nsId);
      const rows = this.nsPending.get(key) ?? [];
      for (const x of rows) { x.ns = nsId; w.tcpState(x); }
      this.nsWaiting -= rows.length;
      this.nsPending.delete(key);
      this.nsAsking.delete(asked);
      this.maybeResume();
    });
    this.nsAsking.add(asked);
  }

  /** Names for the namespaces of TCP state changes: those the configuration's sources use first (their flows and packets are stored by them). */
  private names: NetnsNames | undefined;
  private netnsNames(): NetnsNames {
    this.names ??= new NetnsNames(this.plan.sources.map((s) => s.config.netns ?? ''));
    return this.names;
  }

  /** What a conntrack source tells the flow table and the store. */
  private hooksFor(a: Attached): ConntrackSource['hooks'] {
    const flows = () => this.writer !== undefined && (a.planned as PlannedConntrack).config.flows;
    return {
      syncBegin: () => a.table?.beginSync(),
      syncEnd: (why: SyncWhy, done: number, from: number | undefined) => {
        const t = a.table;
        if (!t) return 0;
        const missing = t.endSync(done, from);
        // what the dump read of the open flows' counters: their interim reports
        // (any whole dump counts: the next one for them comes a full interval after it)
        const fan = this.fanouts.get(t);
        if (fan?.interim) {
          fan.interimCheck(done);
          a.nextInterim = Date.now() + interimDumpMs(fan.interim);
        }
        if (why === 'start-up sync' && t.hasQuiet) {
          // after the source's own line about the dump
          queueMicrotask(() => this.log.info(`source ${a.name}: ${t.stats().quiet} flows were first seen in the table dump; until their events show they report, further dumps tell when they end`));
        }
        return missing;
      },
      lossStarted: (since) => { if (a.table) a.table.gapFrom = since; },
      gap: (since, until, reason) => { if (flows()) this.writer!.gap({ ns: a.nsId, since, until, reason }); },
    };
  }

  /** Does a pcap sink of link type NFLOG take this source (its packets then keep their raw message)? */
  /** `name`: the configured source's */
  private keepsRaw(name: string, plan = this.plan): boolean {
    return plan.config.sink.some((k) => k.type === 'pcap' && k.linktype === 'nflog' && (!k.sources.length || k.sources.includes(name)));
  }

  /** `parent`: the configured source's name (a followed namespace's instance has its own) */
  private routesFor(ps: PlannedSource, parent: string): Route[] {
    const routes: Route[] = [];
    const kind = sourceKind(ps.config);
    this.plan.config.sink.forEach((k, i) => {
      if (k.records === 'flows' || (k.sources.length && !k.sources.includes(parent))) return;
      if (k.type === 'pcap') { routes.push({ sink: this.sinks[i], kind, format: undefined }); return; }
      // the configuration checked that the format exists for this kind
      const spec = findFormat(k.format ?? DEFAULT_FORMAT[kind]!, kind)!;
      const format = spec.build({
        output: k.output, labelmap: k.labelmap, netns: ps.config.netns, ulogdDevice: k.ulogd_device, ulogdEventv1: k.ulogd_eventv1, hwhdr: k.ulogd_hwhdr,
      }) as (r: never) => string;
      routes.push({ sink: this.sinks[i], kind, format: k.netns_prefix ? withNetnsPrefix(format as (r: { netns: string }) => string) as (r: never) => string : format });
    });
    return routes;
  }

  private afterBatch(): void {
    for (const s of this.sinks) s.flush();
    if (!this.paused && (this.sinks.some((s) => s.blocking && s.full()) || this.storeFull())) {
      this.paused = true;
      for (const s of this.sources) s.src.pause();
      this.log.debug(this.storeFull() ? 'the flow store cannot keep up: sources paused' : 'a blocking sink is full: sources paused');
    }
  }

  /** the store's queue is full (with the TCP state changes waiting for their namespace's id) */
  private storeFull(): boolean {
    return this.writer !== undefined && (this.writer.full() || this.nsWaiting >= NS_WAITING_MAX);
  }

  private maybeResume(): void {
    if (this.paused && !this.stopping && !this.sinks.some((s) => s.blocking && s.full()) && !this.storeFull()) {
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
      if (!s.table || !(s.src instanceof ConntrackSource)) continue;
      if (!s.table.hasQuiet) { s.checkEvery = CHECK_FIRST_MS; s.nextCheck = now + CHECK_FIRST_MS; continue; }
      if (now >= s.nextCheck && !s.src.resyncing) {
        s.src.sync('check', false);
        s.nextCheck = now + s.checkEvery;
        s.checkEvery = Math.min(s.checkEvery * 2, CHECK_MAX_MS);
      }
    }
    // open flows' counters for the interim reports of sinks with active/inactive timeouts
    for (const s of this.sources) {
      const t = s.table && this.fanouts.get(s.table)?.interim;
      if (!t || !(s.src instanceof ConntrackSource)) continue;
      const every = interimDumpMs(t);
      if (!s.nextInterim) s.nextInterim = now + every;
      else if (now >= s.nextInterim && !s.src.resyncing) {
        s.src.sync('check', false);
        s.nextInterim = now + every;
      }
    }
    // what no batch reported (an overrun with nothing to read after it, sequence gaps)
    for (const s of this.sources) s.src.tick();
    // followed namespaces that could not be attached: again when their time has come
    if ([...this.failed.values()].some((t) => t <= now)) this.queueReconcile();
    // the namespaces' timeouts, in case they were changed
    if (++this.ticks % 60 === 0) {
      for (const s of this.sources) if (s.table && s.src instanceof ConntrackSource) s.table.timeouts = this.readNamespace(s.src.config).timeouts ?? s.table.timeouts;
    }
    // the aggregation stages' intervals that are due
    const nowUs = nowMicros();
    for (const { a } of this.aggregators.values()) a.tick(nowUs);
    // flow records of flows the sweeps (or a detach) ended
    for (const k of this.sinks) k.flush();
    this.maybeResume();
  }

  stats(): DaemonStats {
    const st: DaemonStats = {
      sources: this.sources.map((s) => s.src.stats()),
      followed: this.plan.sources.filter((ps) => followOf(ps)).map((ps) => ({
        source: ps.config.name,
        attached: this.sources.filter((a) => a.followed !== undefined && a.parent === ps.config.name).length,
        failing: [...this.failed.keys()].filter((k) => k.startsWith(`${ps.config.name}\0`)).length,
      })).concat(this.sources.flatMap((a) => {
        // a tcpstates source follows its namespaces itself (one program, an inode set in the kernel)
        const n = a.src instanceof TcpstatesDaemonSource ? a.src.followedCount : undefined;
        return n === undefined ? [] : [{ source: a.name, attached: n, failing: 0 }];
      })),
      sinks: this.sinks.map((s) => s.stats()),
      aggregates: this.aggregateStats(),
    };
    if (this.writer) st.store = this.writer.stats();
    if (this.writer || this.sources.some((s) => s.table) || this.retired.opened) {
      const f = { ...this.retired, ...this.retiredSent };
      for (const s of this.sources) {
        if (!s.table) continue;
        const t = s.table.stats();
        for (const k of Object.keys(t) as Array<keyof FlowTableStats>) f[k] += t[k];
        const out = this.fanouts.get(s.table);
        if (out) { f.sent += out.sent; f.unsent += out.unsent; f.interim += out.interimSent; }
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
   * recorded as a gap). An NFLOG source that changed gives its groups up
   * before the new one binds them (one socket per namespace can bind a
   * group): packets logged in between are lost, and said so. A tcpstates
   * source that changed hands over to the new one (both are attached for a
   * moment; each change is kept once: sources/tcpstates/handoff.ts). The
   * flow store's settings change only on restart. A stop waits for a
   * reload in progress.
   */
  reload(next: Plan): Promise<void> {
    const r = this.serial.then(() => this.reloadNow(next));
    this.serial = r.catch(() => {});
    return r;
  }

  private async reloadNow(next: Plan): Promise<void> {
    // queued before a stop: the stop goes on with what runs (its open flows stay open for the next run)
    if (this.closing) throw new Error('the daemon is stopping');
    const storeChanged = JSON.stringify(storeKey(next.config.store)) !== JSON.stringify(storeKey(this.plan.config.store));
    if (storeChanged) this.log.warn('SIGHUP: the [store] settings change only when the daemon restarts; the running store stays');
    const plan: Plan = { ...next, config: { ...next.config, store: this.plan.config.store } };
    // everything that can fail first: the old configuration runs on if it does.
    // A sink whose settings did not change stays as it is (its queue, its
    // connection); it only reopens its file, as on any SIGHUP.
    const reuse = this.plan.config.sink.map((c, i) => ({ key: this.sinkKey(c, this.plan), sink: this.sinks[i] }));
    this.pendingPlan = plan;
    let sinks: Sink[];
    try { sinks = this.openSinks(plan.config.sink, reuse); } finally { this.pendingPlan = undefined; }
    const keptSinks = sinks.filter((k) => this.sinks.includes(k));
    const old = this.sources;
    const kept = new Set<Attached>();
    const steps: Array<{ x: Expanded; ps: PlannedSource; same?: Attached; prev?: Attached; prep?: { nsId: number; table: FlowTable | undefined } }> = [];
    const hadWatcher = this.watcher !== undefined;
    // a followed namespace already gone (its delete not yet handled): ended as any detach
    // (which takes it out of this.sources, that is `old`)
    if (this.watcher) for (const a of [...old]) if (a.followed !== undefined && !this.watcher.namespaces.has(a.followed)) this.detach(a);
    try {
      this.ensureWatcher({ ...plan, sources: [...plan.sources, ...this.plan.sources] });
      for (const x of this.expand(plan)) {
        const cps = x.ps;
        const same = old.find((o) => !kept.has(o) && o.followed === x.followed && JSON.stringify(o.configured.config) === JSON.stringify(cps.config) &&
          (cps.type !== 'nflog' || this.keepsRaw(x.parent) === this.keepsRaw(x.parent, plan)) &&
          // (without a store, a sink taking flow records that came or went makes a flow table or ends one)
          (cps.type !== 'conntrack' || this.writer !== undefined || this.flowSinkTakes(x.parent) === this.flowSinkTakes(x.parent, plan)));
        if (same) { kept.add(same); steps.push({ x, ps: cps, same }); continue; }
        // the same namespace's flow table carries on behind the new socket
        const prev = cps.type !== 'conntrack' ? undefined
          : old.find((o) => !kept.has(o) && o.table && (o.planned.config.netns ?? '') === (cps.config.netns ?? '') && this.wantsTable(cps.config, x.parent, plan));
        if (prev) kept.add(prev);
        // one record per flow, with the sources kept as they are
        const ps = prev ? cps : this.oneFeeder(cps, x.followed ?? inodeOf(cps.type === 'tcpstates' ? undefined : cps.config.netns), [...kept], x.parent, plan);
        if (x.followed !== undefined && !prev) {
          // a followed namespace that cannot be prepared is tried again later; the reload goes on
          try {
            steps.push({ x, ps, prep: await this.prepareSource(ps, [], undefined, x.parent, x.parent, plan) });
          } catch (e) {
            const k = followKey(x.parent, x.followed);
            if (!this.failed.has(k)) this.log.warn(`source ${ps.config.name}: cannot attach to network namespace ${ps.config.netns}: ${(e as Error).message}; trying again every ${ATTACH_RETRY_MS / 1000} s`);
            this.failed.set(k, Date.now() + ATTACH_RETRY_MS);
          }
          continue;
        }
        steps.push({ x, ps, prev, prep: await this.prepareSource(ps, [], prev?.table, x.followed !== undefined ? x.parent : undefined, x.parent, plan) });
      }
    } catch (e) {
      for (const k of sinks) if (!keptSinks.includes(k)) void k.close();
      if (!hadWatcher) this.ensureWatcher(this.plan);
      throw e;
    }
    const oldSinks = this.sinks.filter((k) => !keptSinks.includes(k));
    const replacedTcp = old.filter((o) => o.src instanceof TcpstatesDaemonSource && !steps.some((x) => x.same === o));
    for (const k of keptSinks) k.reopen();
    // the stages changed or removed: what they hold to the sinks that named them, before the switch
    this.flushReplacedAggregators(plan.config.aggregate);
    this.plan = plan;
    this.names?.prefer(plan.sources.map((s) => s.config.netns ?? ''));
    this.sinks = sinks;
    this.setAggregators(plan.config.aggregate);
    this.sources = [];
    // NFLOG groups are given up first, so that the new sources can bind them
    for (const o of old) {
      if (o.src instanceof NflogDaemonSource && !steps.some((x) => x.same === o)) {
        o.src.stopping();
        o.src.close();
        const c = o.src.config;
        const again = steps.some((x) => !x.same && x.ps.type === 'nflog' && (x.ps.config.netns ?? '') === (c.netns ?? '') && x.ps.config.groups.some((g) => c.groups.includes(g)));
        if (again) this.log.warn(`SIGHUP: source ${o.name}: NFLOG group${c.groups.length > 1 ? 's' : ''} ${c.groups.join(', ')} given up for the new configuration; packets logged until it has bound them again are lost`);
        else this.log.info(`SIGHUP: source ${o.name}: NFLOG group${c.groups.length > 1 ? 's' : ''} ${c.groups.join(', ')} no longer read`);
      }
    }
    // the sources kept take the new routes at once, before any new one starts (an await: their
    // records in between go where the new configuration says, a renamed stage's flows too)
    for (const st of steps) {
      if (!st.same) continue;
      // (its planned settings stay: the same as configured, but for flows turned off where another source feeds the store)
      st.same.routes = this.routesFor(st.ps, st.x.parent);
      this.setFlowRoutes(st.same.table, st.ps, st.x.parent);
    }
    for (const st of steps) {
      if (st.same) { this.sources.push(st.same); continue; }
      // in one turn of the event loop: the old socket reads nothing more, the
      // new one has everything from its opening on (what the old one still
      // held is recovered by the resync): what the old socket still holds
      // unread is lost with it, from when its queue was last seen empty
      let closedAt = nowMicros();
      if (st.prev && st.prev.src instanceof ConntrackSource) {
        closedAt = st.prev.src.unreadSince();
        st.prev.src.close();
        st.prev.table = undefined;
      }
      let a: Attached | undefined;
      try {
        a = this.openSource(st.ps, st.prep!, st.x, st.x.ps);
        // a tcpstates source replacing one: the old one's changes until it stops, this one's after (below)
        if (a.src instanceof TcpstatesDaemonSource && replacedTcp.length) a.src.holdForHandoff();
        await this.startSource(a);
      } catch (e) {
        this.log.error(`SIGHUP: source ${st.ps.config.name}: ${(e as Error).message}`);
        // opened but not started: nothing of it may stay open
        a?.src.close();
        // the flow table it was to carry on has no reader now: its open flows end here (end-estimated), its counts stay
        if (st.prep?.table) { st.prep.table.endAll(nowMicros()); this.retire(st.prep.table); }
        // a followed namespace: tried again later, as any that cannot be attached
        if (st.x.followed !== undefined) this.failed.set(followKey(st.x.parent, st.x.followed), Date.now() + ATTACH_RETRY_MS);
        continue;
      }
      this.sources.push(a);
      if (st.x.followed !== undefined) this.failed.delete(followKey(st.x.parent, st.x.followed));
      if (!(a.src instanceof ConntrackSource)) continue;
      if (a.table && st.prev) a.src.recoverFrom(closedAt);
      else if (a.table) a.src.sync('start-up sync', a.src.config.sync_at_start);
    }
    // the tcpstates sources replaced: read to their end (their last changes, their losses), then
    // the new ones take over from that moment (both saw the changes in between: each is kept once)
    if (replacedTcp.length) {
      const from: Array<{ config: TcpstatesSourceConfig; until: number; tail: Set<string> }> = [];
      for (const o of replacedTcp) {
        const src = o.src as TcpstatesDaemonSource;
        src.stopping();
        from.push({ config: src.config, until: src.stoppedAt ?? nowMicros(), tail: src.stoppedTail });
      }
      // each old one recorded what its filter takes until it was detached (and the few just after): the new ones keep the rest
      const successors = this.sources.filter((a) => a.src instanceof TcpstatesDaemonSource && !old.includes(a));
      for (const a of successors) (a.src as TcpstatesDaemonSource).takeOver(from);
      if (!successors.length && plan.sources.some((s) => s.type === 'tcpstates')) {
        // the new one did not start: from now on no TCP state change is traced, and the trail says so
        const now = nowMicros();
        for (const o of replacedTcp) if (this.writer && o.toStore) this.writer.gap({ ns: o.nsId, since: now, until: now, reason: 'the tcpstates source could not start again after SIGHUP: changes from here on are not traced', kind: 'tcpstates' });
      }
    }
    for (const o of old) {
      if (this.sources.includes(o) || steps.some((x) => x.prev === o)) continue;
      o.src.close();
      // a followed namespace no longer followed (the pattern changed, the source went): nothing reads it
      // any more, its open flows end as at a detach; another source's end with its last dump's missing ones
      if (o.followed !== undefined) o.table?.endAll(nowMicros()); else o.table?.sweep(true);
      this.retire(o.table);
    }
    // no longer followed (a source changed or gone): forget its failures; no watcher without a source that follows
    const parents = new Set(plan.sources.filter((ps) => followOf(ps)).map((ps) => ps.config.name));
    for (const k of [...this.failed.keys()]) if (!parents.has(k.slice(0, k.indexOf('\0')))) this.failed.delete(k);
    this.ensureWatcher(plan);
    await Promise.all(oldSinks.map((k) => k.close()));
    this.afterBatch();
  }

  private closeNow(): void {
    this.closing = true;
    this.watcher?.close();
    this.watcher = undefined;
    for (const s of this.sources) s.src.close();
    for (const s of this.sinks) void s.close();
    void this.writer?.close(0);
    if (this.timer) clearInterval(this.timer);
  }

  /** Stops reading, then writes out everything queued. */
  async stop(): Promise<DaemonStats> {
    // no namespace attached or detached from here on; a reload or attach in progress ends first
    this.closing = true;
    this.watcher?.close();
    this.watcher = undefined;
    await this.serial;
    // (a reload that was running may have made one)
    (this.watcher as NetnsWatcher | undefined)?.close();
    this.watcher = undefined;
    for (const s of this.sources) s.src.stopping();
    this.stopping = true;
    const final = this.stats();
    for (const s of this.sources) s.src.close();
    if (this.timer) clearInterval(this.timer);
    // flows missing from the last dump did not end by a DESTROY in time
    for (const s of this.sources) s.table?.sweep(true);
    // what the aggregation stages hold goes now, early
    for (const { a } of this.aggregators.values()) a.tick(nowMicros(), true);
    // TCP state changes waiting for their namespace's id go with the rest
    await Promise.all([...this.nsAsking]);
    await Promise.all([...this.sinks.map((s) => s.close()), this.writer?.close()]);
    const after = this.stats();
    return { ...after, sources: final.sources };
  }
}

/** `netns_prefix`: "[NAMESPACE] " before each line of a record from another namespace than the daemon's */
function withNetnsPrefix<R extends { netns: string }>(inner: (r: R) => string): (r: R) => string {
  return (r) => (r.netns ? `[${r.netns}] ${inner(r)}` : inner(r));
}

/** A record to each of its source's routes: formatted for line sinks, as it is for record sinks. */
function deliver<K extends Kind>(routes: Route[], r: RecordOf[K], kind: K): void {
  for (let i = 0; i < routes.length; i++) {
    const f = routes[i].format as ((x: RecordOf[K]) => string) | undefined;
    routes[i].sink.push(f ? f(r) : '', r, kind);
  }
}

function storeKey(s: StoreConfig): unknown {
  return { type: s.type, path: s.path, url: s.url, spool: s.spool_dir };
}
