// The tcpstates source: loads bpf/tcpstates.bpf.o (built with clang at
// install) through the native addon's libbpf loader, writes its filters into
// the program's maps, attaches it to sock:inet_sock_set_state (a BTF raw
// tracepoint: no tracefs) and reads its ring buffer in batches. Records that
// found the ring full are counted by the program per CPU and reported here:
// never silent. What cannot work here (no libbpf at install, no BTF, no
// privilege) fails with one line that names the cause.
import { existsSync, statSync } from 'node:fs';
import { native, bpfObjectPath, type NativeBpfObject, type NativeBpfStats } from '../../netlink/native.js';
import type { TcpStateChange } from '../../records/tcpstate.js';
import { decodeTcpstatesBatch, type TcpstatesDecodeStats } from './decode.js';

export interface TcpstatesOptions {
  /** 2 or 10: only this family */
  family?: number;
  /** only these local / remote ports */
  sports?: number[];
  dports?: number[];
  /** only changes while this process (thread group) is current */
  pid?: number;
  /** only sockets of the network namespace with this inode */
  netnsInode?: number;
  /** only sockets of the namespaces added with allowNetns() (none until then) */
  byNetns?: boolean;
  /** only changes while a task of this command (comm, at most 15 chars) is current */
  comm?: string;
  /** ring buffer size, bytes (a power of two, at least a page); default 4 MiB */
  ringBytes?: number;
  /** after a wake-up, wait this long before reading again (ms; default 1) */
  batchDelayMs?: number;
}

export interface TcpstatesStats extends NativeBpfStats, TcpstatesDecodeStats {
  /** records the program could not put in the full ring buffer */
  drops: number;
  /** changes the kernel did not run the program for (it was already running on that CPU: a softirq interrupted it) */
  missed: number;
}

export class TcpstatesError extends Error {}

const BTF = '/sys/kernel/btf/vmlinux';

/** Why the source cannot run here, in one line, or undefined if it may. */
export function tcpstatesUnavailable(): string | undefined {
  const n = native();
  if (!n.BpfObject) return `tcpstates: ${n.bpfUnavailable ?? 'the native addon has no BPF loader'}`;
  if (!bpfObjectPath('tcpstates')) return 'tcpstates: the BPF program was not built at install (clang or libbpf-dev missing then: apt-get install clang libbpf-dev, then npm rebuild in the conntrail directory)';
  if (!existsSync(BTF)) return `tcpstates: this kernel has no BTF (${BTF}: CONFIG_DEBUG_INFO_BTF), which the CO-RE program needs`;
  return undefined;
}

function explainLoad(e: Error & { errno?: number }): string {
  const m = e.message;
  if (e.errno === 1 || e.errno === 13) {
    return `tcpstates: the kernel refused to load the BPF program (${e.errno === 1 ? 'EPERM' : 'EACCES'}): it needs CAP_BPF and CAP_PERFMON (or root)`;
  }
  return `tcpstates: ${m}`;
}

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };
const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };

export class TcpstatesSource {
  private readonly obj: NativeBpfObject;
  readonly decodeStats: TcpstatesDecodeStats = { records: 0, malformed: 0 };
  private closed = false;

  constructor(readonly opts: TcpstatesOptions = {}) {
    const why = tcpstatesUnavailable();
    if (why) throw new TcpstatesError(why);
    const n = native();
    const ring = opts.ringBytes ?? 4 * 1024 * 1024;
    try {
      this.obj = new n.BpfObject!(bpfObjectPath('tcpstates')!, { mapSizes: { events: ring }, coalesceMs: opts.batchDelayMs ?? 1 });
    } catch (e) {
      throw new TcpstatesError(explainLoad(e as Error));
    }
    try {
      // struct config: family u16, by_sport u8, by_dport u8, pid u32, netns u32, by_comm u8, by_netns u8, pad[2], comm[16]
      const cfg = Buffer.alloc(32);
      cfg.writeUInt16LE(opts.family ?? 0, 0);
      cfg[2] = opts.sports?.length ? 1 : 0;
      cfg[3] = opts.dports?.length ? 1 : 0;
      cfg.writeUInt32LE(opts.pid ?? 0, 4);
      cfg.writeUInt32LE(opts.netnsInode ?? 0, 8);
      cfg[13] = opts.byNetns ? 1 : 0;
      if (opts.comm !== undefined) {
        // the kernel's comm: UTF-8 bytes, at most 15 and a NUL
        cfg[12] = 1;
        Buffer.from(opts.comm, 'utf8').subarray(0, 15).copy(cfg, 16);
      }
      for (const p of opts.sports ?? []) this.obj.mapUpdate('sports', u16(p), Buffer.from([1]));
      for (const p of opts.dports ?? []) this.obj.mapUpdate('dports', u16(p), Buffer.from([1]));
      this.obj.mapUpdate('config', u32(0), cfg);
    } catch (e) {
      this.obj.close();
      throw new TcpstatesError(`tcpstates: ${(e as Error).message}`);
    }
  }

  /** attaches the program and delivers its records, a batch at a time */
  start(sink: { record(r: TcpStateChange): void; batchEnd(): void }, onError: (e: Error) => void): void {
    let buf: Buffer;
    const n = native();
    const onBatch = (len: number): void => {
      // the program's CLOCK_MONOTONIC -> the epoch, read again each batch (a clock step or a suspend is followed)
      decodeTcpstatesBatch(buf, len, Math.round(n.monotonicToRealtimeUs()), this.decodeStats, (r) => sink.record(r));
      sink.batchEnd();
    };
    try {
      buf = this.obj.startRing('events', onBatch, onError);
      this.obj.attach();
    } catch (e) {
      // nothing of it stays open (its ring would still be read)
      this.close();
      throw new TcpstatesError(explainLoad(e as Error));
    }
  }

  /** byNetns: the sockets of the namespace with this inode are traced from now on */
  allowNetns(inode: number): void {
    if (!this.closed) this.obj.mapUpdate('netnses', u32(inode), Buffer.from([1]));
  }

  /** byNetns: the namespace's sockets are no longer traced */
  forbidNetns(inode: number): void {
    if (!this.closed) this.obj.mapDelete('netnses', u32(inode));
  }

  /** changes lost so far: the program found the ring buffer full, or the kernel did not run it (already running on that CPU) */
  drops(): number {
    const s = this.stats();
    return s.drops + s.missed;
  }

  /** the kernel's counters, read while the object is open (kept for after close) */
  private lost = { drops: 0, missed: 0 };
  stats(): TcpstatesStats {
    if (!this.closed) this.lost = { drops: this.obj.perCpuSum('drops', u32(0)), missed: this.obj.missed() };
    return { ...this.obj.stats(), ...this.decodeStats, ...this.lost };
  }

  /**
   * The end of a run: no change is recorded after this, and every one
   * recorded is delivered before it returns. Returns when the program was
   * detached, in the records' own time (µs since the epoch): every change
   * delivered is of that time or before (undefined: it was closed already).
   */
  drain(): number | undefined {
    if (this.closed) return undefined;
    const mono = this.obj.drain();
    // (0: it was never attached)
    return mono ? mono + Math.round(native().monotonicToRealtimeUs()) : undefined;
  }

  pause(): void { this.obj.pause(); }
  resume(): void { this.obj.resume(); }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.obj.close();
  }
}

/** The inode of a network namespace given by name (ip netns), path or inode number. */
export function netnsInode(spec: string): number {
  if (/^\d+$/.test(spec)) return Number(spec);
  const path = spec.includes('/') ? spec : `/run/netns/${spec}`;
  try {
    return statSync(path).ino;
  } catch {
    throw new TcpstatesError(`--netns: no network namespace ${spec} (${path} not found)`);
  }
}
