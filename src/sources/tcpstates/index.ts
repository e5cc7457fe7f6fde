// The tcpstates source as the daemon runs it. A change the program could
// not put in the full ring buffer is lost for good (the kernel keeps no
// copy): each is counted by the program and reported once a second while
// the count grows.
import type { TcpStateChange } from '../../records/tcpstate.js';
import type { BaseSourceStats, Source, SourceLog, SourceOut } from '../source.js';
import type { TcpstatesSourceConfig } from './schema.js';
import { netnsInode, TcpstatesSource, type TcpstatesStats } from './source.js';
import { NetnsNames } from './netns.js';
import { changeKey, Handoff, type HandedFrom } from './handoff.js';
import { NetnsWatcher, netnsPattern, type NamedNetns } from '../netns/watch.js';

export interface TcpstatesSourceStats extends BaseSourceStats, TcpstatesStats {
  type: 'tcpstates';
  /** following namespaces by pattern: the changes received from each traced now, by name */
  byNetns?: Record<string, number>;
}

export class TcpstatesDaemonSource implements Source<'tcpstate'> {
  readonly kind = 'tcpstate' as const;
  readonly name: string;
  private readonly src: TcpstatesSource;
  private reportedDrops = 0;
  private reportedAt = Date.now() * 1000;
  private halted = false;
  /**
   * The sources this one replaced at a SIGHUP: each recorded the changes its
   * filter takes up to its `until` (µs), and `tail` (changeKey) just after,
   * as it was being detached; this one keeps the rest. `held`: until
   * they have stopped, what this one reads waits there.
   */
  private handoff: Handoff | undefined;
  private held: TcpStateChange[] | undefined;
  /** while stopping: the changes read */
  private tail: TcpStateChange[] | undefined;
  /** the changes this source recorded after stoppedAt, as it was being detached (changeKey) */
  stoppedTail = new Set<string>();
  /** the daemon's: changes were lost in [since, until] (µs) */
  hooks: { gap?: (since: number, until: number, reason: string) => void } = {};

  /** `names`: the names of the namespaces the changes are in (the probe gives their inodes) */
  constructor(readonly config: TcpstatesSourceConfig, private readonly log: SourceLog, private readonly names = new NetnsNames(config.netns ? [config.netns] : [])) {
    // (each change is named by its namespace's inode, so a source given an inode number or a path names its changes as the rest do)
    this.name = config.name;
    this.src = new TcpstatesSource({
      family: config.family === 'ipv4' ? 2 : config.family === 'ipv6' ? 10 : undefined,
      sports: config.local_ports, dports: config.remote_ports, pid: config.pid, comm: config.comm,
      netnsInode: config.netns !== undefined ? netnsInode(config.netns) : undefined,
      byNetns: config.follow !== undefined,
      ringBytes: config.ring_size, batchDelayMs: config.batch_delay_ms,
    });
  }

  /** following namespaces by pattern: the /run/netns watcher, and the namespaces traced now (inode: name) */
  private watcher: NetnsWatcher | undefined;
  private traced = new Map<number, string>();
  /** following: changes received per namespace traced (by inode) */
  private perNs = new Map<number, number>();

  /** how many namespaces a source that follows them by pattern traces now (undefined: it does not follow) */
  get followedCount(): number | undefined {
    return this.config.follow ? this.traced.size : undefined;
  }

  /**
   * The namespaces under /run/netns changed: the program traces the sockets
   * of those a name of which matches the patterns, by inode (one namespace
   * under two names is one), and no others.
   */
  private follow(now: Map<number, NamedNetns>, quiet: boolean): void {
    const tests = (this.config.follow ?? []).map(netnsPattern);
    const want = new Map<number, string>();
    for (const ns of now.values()) {
      const name = ns.names.find((n) => tests.some((t) => t(n)));
      if (name !== undefined) want.set(ns.inode, name);
    }
    // (one that fails, a full map say, is said and tried again when the namespaces change next)
    const failed = (name: string, e: unknown) => this.log.error(`source ${this.name}: network namespace ${name}: ${(e as Error).message}`);
    for (const [ino, name] of this.traced) {
      if (want.has(ino)) continue;
      try { this.src.forbidNetns(ino); } catch (e) { failed(name, e); continue; }
      this.traced.delete(ino);
      this.perNs.delete(ino);
      if (!quiet) this.log.info(`source ${this.name}: network namespace ${name} (inode ${ino}) is gone: no longer traced`);
    }
    for (const [ino, name] of want) {
      if (this.traced.has(ino)) continue;
      try { this.src.allowNetns(ino); } catch (e) { failed(name, e); continue; }
      this.traced.set(ino, name);
      if (!quiet) this.log.info(`source ${this.name}: tracing network namespace ${name} (inode ${ino})`);
    }
    this.names.refresh();
  }

  start(out: SourceOut<TcpStateChange>): Promise<void> {
    const names = this.names;
    if (this.config.follow) {
      // the namespaces there now are traced before the program is attached
      this.watcher = new NetnsWatcher({ onChange: (m) => this.follow(m, false) });
      this.follow(this.watcher.start(), true);
    }
    this.deliver = (r) => {
      if (this.handoff) {
        if (this.handoff.drops(r)) return;
        if (this.handoff.over) this.handoff = undefined;
      }
      this.tail?.push(r);
      if (this.config.follow) this.perNs.set(r.netnsInode, (this.perNs.get(r.netnsInode) ?? 0) + 1);
      r.netns = names.name(r.netnsInode);
      out.record(r, true);
    };
    this.src.start({
      record: (r) => {
        if (this.held) { this.held.push(r); return; }
        this.deliver(r);
      },
      batchEnd: () => out.batchEnd(),
    }, (err) => this.log.error(`source ${this.name}: ${err.message}`));
    const c = this.config;
    const where = c.follow ? ` in the network namespaces named ${c.follow.join(', ')} (${this.traced.size} now${this.traced.size ? `: ${[...this.traced.values()].slice(0, 5).join(', ')}${this.traced.size > 5 ? ', …' : ''}` : ''}; followed as they come and go)`
      : c.netns ? ` in network namespace ${c.netns}` : ' in every network namespace';
    this.log.info(`source ${this.name}: tracing TCP state changes${where} (ring buffer ${c.ring_size} bytes)`);
    return Promise.resolve();
  }

  /** Replacing other sources (SIGHUP): what it reads is held until they have stopped (takeOver). */
  holdForHandoff(): void {
    this.held ??= [];
  }

  /**
   * The sources it replaces have stopped: each with its filter, when it was
   * detached and what it recorded just after. What was held goes out now,
   * but for the changes they recorded.
   */
  takeOver(from: HandedFrom[]): void {
    this.handoff = new Handoff(from);
    const held = this.held ?? [];
    this.held = undefined;
    for (const r of held) this.deliver(r);
  }

  private deliver: (r: TcpStateChange) => void = () => {};

  pause(): void { this.src.pause(); }
  resume(): void { this.src.resume(); }
  tick(): void { this.report(); }

  private report(): void {
    if (this.halted) return;
    const d = this.src.drops();
    const now = Date.now() * 1000;
    if (d <= this.reportedDrops) { this.reportedAt = now; return; }
    this.log.warn(`source ${this.name}: ${d - this.reportedDrops} TCP state changes lost: the ring buffer was full, or the kernel skipped the program (${d} so far; a larger ring_size, or sinks that keep up)`);
    // lost since the count was last seen unchanged
    this.hooks.gap?.(this.reportedAt, now, `${d - this.reportedDrops} TCP state changes lost (ring buffer full, or the program skipped)`);
    this.reportedDrops = d;
    this.reportedAt = now;
  }

  /** when this source stopped recording (µs, the records' time; set by stopping()) */
  stoppedAt: number | undefined;

  stopping(): void {
    // what the ring still holds goes with the rest (not lost at the stop)
    if (this.stoppedAt === undefined) {
      this.tail = [];
      this.stoppedAt = this.src.drain();
      for (const r of this.tail) if (this.stoppedAt !== undefined && r.time > this.stoppedAt) this.stoppedTail.add(changeKey(r));
      this.tail = undefined;
    }
    this.report();
    this.halted = true;
  }

  stats(): TcpstatesSourceStats {
    const s = this.src.stats();
    const st: TcpstatesSourceStats = { ...s, name: this.name, type: 'tcpstates', datagrams: s.batches, enobufs: 0, kernelDrops: s.drops, rcvbuf: this.config.ring_size };
    if (this.config.follow) st.byNetns = Object.fromEntries([...this.traced].map(([ino, name]) => [name, this.perNs.get(ino) ?? 0]));
    return st;
  }

  close(): void {
    this.halted = true;
    this.watcher?.close();
    this.watcher = undefined;
    this.src.close();
  }
}
