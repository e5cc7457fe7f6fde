// The tcpstates source as the daemon runs it. A change the program could
// not put in the full ring buffer is lost for good (the kernel keeps no
// copy): each is counted by the program and reported once a second while
// the count grows.
import type { TcpStateChange } from '../../records/tcpstate.js';
import type { BaseSourceStats, Source, SourceLog, SourceOut } from '../source.js';
import type { TcpstatesSourceConfig } from './schema.js';
import { netnsInode, TcpstatesSource, type TcpstatesStats } from './source.js';

export interface TcpstatesSourceStats extends BaseSourceStats, TcpstatesStats {
  type: 'tcpstates';
}

export class TcpstatesDaemonSource implements Source<'tcpstate'> {
  readonly kind = 'tcpstate' as const;
  readonly name: string;
  private readonly src: TcpstatesSource;
  private reportedDrops = 0;
  private halted = false;

  constructor(readonly config: TcpstatesSourceConfig, private readonly log: SourceLog) {
    this.name = config.name;
    this.src = new TcpstatesSource({
      family: config.family === 'ipv4' ? 2 : config.family === 'ipv6' ? 10 : undefined,
      sports: config.local_ports, dports: config.remote_ports, pid: config.pid, comm: config.comm,
      netnsInode: config.netns !== undefined ? netnsInode(config.netns) : undefined,
      ringBytes: config.ring_size, batchDelayMs: config.batch_delay_ms,
    });
  }

  start(out: SourceOut<TcpStateChange>): Promise<void> {
    const ns = this.config.netns ?? '';
    this.src.start({
      record: (r) => { if (ns) r.netns = ns; out.record(r, true); },
      batchEnd: () => out.batchEnd(),
    }, (err) => this.log.error(`source ${this.name}: ${err.message}`));
    const c = this.config;
    this.log.info(`source ${this.name}: tracing TCP state changes${c.netns ? ` in network namespace ${c.netns}` : ' in every network namespace'} (ring buffer ${c.ring_size} bytes)`);
    return Promise.resolve();
  }

  pause(): void { this.src.pause(); }
  resume(): void { this.src.resume(); }
  tick(): void { this.report(); }

  private report(): void {
    if (this.halted) return;
    const d = this.src.drops();
    if (d <= this.reportedDrops) return;
    this.log.warn(`source ${this.name}: ${d - this.reportedDrops} TCP state changes lost: the ring buffer was full, or the kernel skipped the program (${d} so far; a larger ring_size, or sinks that keep up)`);
    this.reportedDrops = d;
  }

  stopping(): void {
    this.report();
    this.halted = true;
  }

  stats(): TcpstatesSourceStats {
    const s = this.src.stats();
    return { ...s, name: this.name, type: 'tcpstates', datagrams: s.batches, enobufs: 0, kernelDrops: s.drops, rcvbuf: this.config.ring_size };
  }

  close(): void {
    this.halted = true;
    this.src.close();
  }
}
