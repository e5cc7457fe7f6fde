// The conntrack source: ctnetlink events (NEW / UPDATE / DESTROY) and table
// dumps, read in batches through the native netlink socket and decoded
// straight from the receive buffer.
import { namespaceInode } from '../netns/watch.js';
import { SocketSource } from '../../netlink/socket-source.js';
import { native, type NativeNetlinkSocket, type NativeStats } from '../../netlink/native.js';
import { AF_UNSPEC, NETLINK_BROADCAST_ERROR, NETLINK_NETFILTER, NETLINK_NO_ENOBUFS, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN, SOL_NETLINK } from '../../netlink/constants.js';
import { CT_MSG_GET, NFGENMSG_LEN, NFNETLINK_V0 } from './constants.js';
import { decodeBatch, newDecodeStats, type DecodeStats } from './decode.js';
import type { FlowEvent } from '../../records/event.js';
import { buildConntrackBpf, eventGroups, needsKernelFilter, type FlowFilter } from './filter.js';
import { nowMicros } from '../../util/time.js';

export const DEFAULT_RCVBUF = 16 * 1024 * 1024;

export interface EventSink {
  /** one decoded event (or an entry of a dump on this socket); the object is the sink's to keep */
  event(ev: FlowEvent): void;
  /** the end of one receive batch: a good moment to flush */
  batchEnd(): void;
  /** the socket reported an overrun (ENOBUFS): `total` so far; called before batchEnd */
  overrun?(total: number): void;
}

export interface ConntrackSourceOptions {
  netns?: string;
  /** receive buffer to ask for, bytes (SO_RCVBUFFORCE, else SO_RCVBUF) */
  rcvbuf?: number;
  filter: FlowFilter;
  /** wait this long after a wake-up before reading again (fewer wake-ups) */
  coalesceMs?: number;
  /** do not attach the socket filter (everything is checked in user space) */
  noKernelFilter?: boolean;
  /** reliable delivery: NETLINK_BROADCAST_ERROR + NETLINK_NO_ENOBUFS */
  reliable?: boolean;
}

export interface SourceStats extends NativeStats, DecodeStats {
  /** receive buffer the kernel granted (getsockopt SO_RCVBUF) */
  rcvbuf: number;
  /** instructions in the attached socket filter, 0 if none */
  filterInsns: number;
}

export class ConntrackEventSource extends SocketSource {
  readonly sock: NativeNetlinkSocket;
  readonly decodeStats: DecodeStats = newDecodeStats();
  rcvbuf: number;
  readonly kernelFiltered: boolean;
  readonly filterInsns: number;
  private closed = false;
  /** the socket filter, detached while a dump runs on this socket */
  private prog: Buffer | undefined;
  /** the inode of the namespace read (0: the process's own) */
  readonly netnsInode: number;

  constructor(private readonly opts: ConntrackSourceOptions) {
    super();
    this.netnsInode = namespaceInode(opts.netns);
    const groups = eventGroups(opts.filter);
    this.sock = new (native().NetlinkSocket)({
      protocol: NETLINK_NETFILTER,
      netns: opts.netns,
      groups: 0,
      coalesceMs: opts.coalesceMs ?? 0,
      // event messages are a few hundred bytes (a truncated one is counted)
      slotSize: 4096,
      slots: 256,
      // [USERSPACE] progname=: named as each event is received, before the process can exit
      portidNames: true,
    });
    try {
      this.rcvbuf = this.sock.setRcvbuf(opts.rcvbuf ?? DEFAULT_RCVBUF);
      let insns = 0;
      if (!opts.noKernelFilter && needsKernelFilter(opts.filter)) {
        const prog = buildConntrackBpf(opts.filter);
        this.sock.attachFilter(prog);
        this.prog = prog;
        insns = prog.length / 8;
      }
      this.filterInsns = insns;
      this.kernelFiltered = insns > 0;
      if (opts.reliable) {
        this.sock.setsockoptInt(SOL_NETLINK, NETLINK_BROADCAST_ERROR, 1);
        this.sock.setsockoptInt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1);
      }
      // Join the groups last, with the filter already in place.
      for (const g of groups) this.sock.addMembership(g);
    } catch (e) {
      this.sock.close();
      throw e;
    }
  }

  start(sink: EventSink, onError: (err: Error) => void): void {
    let buf: Buffer;
    const stats = this.decodeStats;
    let overruns = 0;
    const onBatch = (len: number, _count: number, total: number, from: number): void => {
      const t = nowMicros();
      const netns = this.opts.netns ?? '';
      const inode = this.netnsInode;
      if (len > 0) {
        const r = decodeBatch(buf, len, stats, (ev) => {
          ev.recvTime = t;
          ev.recvFrom = Math.min(from, t);
          ev.netns = netns;
          ev.netnsInode = inode;
          if (ev.portid !== 0) ev.progname = this.sock.portidName(ev.portid);
          sink.event(ev);
        });
        if (this.dumping && (r.done || r.error)) this.endDump(r.error);
      }
      if (total > overruns) { overruns = total; sink.overrun?.(total); }
      sink.batchEnd();
    };
    buf = this.sock.start(onBatch, onError);
  }

  private dumping: { resolve: () => void; reject: (e: Error) => void } | undefined;

  private endDump(err: number): void {
    const d = this.dumping!;
    this.dumping = undefined;
    if (this.prog && !this.closed) {
      try {
        this.sock.attachFilter(this.prog);
      } catch (e) {
        d.reject(e as Error);
        return;
      }
    }
    if (err) {
      const e = new Error(`conntrack dump failed: ${errnoName(err)}`) as Error & { errno: number; code: string };
      e.errno = err;
      e.code = errnoName(err);
      d.reject(e);
    } else d.resolve();
  }

  /**
   * Dumps the table on this very socket: its entries come to the event sink
   * as DUMP records, in the kernel's order with the events. So every
   * DESTROY the dump itself causes (it evicts the expired entries it walks
   * over) arrives before the dump ends, and so does every event generated
   * before that. Resolves when the dump is complete.
   *
   * The socket filter is detached meanwhile: the kernel applies it to each
   * reply datagram as a whole, judging by its first entry, so it would drop
   * or pass whole groups of entries. Everything read while it is off (and
   * the events queued then) is unfiltered: the consumer checks each record
   * with the full user-space matcher (compileMatcher(filter, false)).
   */
  dump(family = AF_UNSPEC): Promise<void> {
    if (this.dumping) return Promise.reject(new Error('a dump is already running on this socket'));
    return new Promise<void>((resolve, reject) => {
      this.dumping = { resolve, reject };
      try {
        if (this.prog) this.sock.detachFilter();
        this.sock.send(dumpRequest(family));
      } catch (e) {
        this.dumping = undefined;
        try { if (this.prog && !this.closed) this.sock.attachFilter(this.prog); } catch { /* the send's error is the one to report */ }
        reject(e as Error);
      }
    });
  }

  stats(): SourceStats {
    return { ...this.sock.stats(), ...this.decodeStats, rcvbuf: this.rcvbuf, filterInsns: this.filterInsns };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
    if (this.dumping) this.endDump(4 /* EINTR: closed while dumping */);
  }
}

let seq = 1;
/** A ctnetlink table dump request (IPCTNL_MSG_CT_GET with NLM_F_DUMP). */
export function dumpRequest(family = AF_UNSPEC): Buffer {
  const b = Buffer.alloc(NLMSG_HDRLEN + NFGENMSG_LEN);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(CT_MSG_GET, 4);
  b.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  b.writeUInt32LE(seq++ >>> 0, 8);
  b.writeUInt32LE(0, 12);
  b.writeUInt8(family, 16);
  b.writeUInt8(NFNETLINK_V0, 17);
  b.writeUInt16BE(0, 18);
  return b;
}

export interface DumpOptions {
  netns?: string;
  family?: number;
}

/**
 * Dumps the conntrack table: every entry goes to `onEvent` (type 'DUMP').
 * Resolves with the decode counters when the kernel says the dump is done.
 */
export function dumpConntrack(opts: DumpOptions, onEvent: (ev: FlowEvent) => void): Promise<SourceStats> {
  const inode = namespaceInode(opts.netns);
  const sock = new (native().NetlinkSocket)({
    protocol: NETLINK_NETFILTER, netns: opts.netns, slotSize: 32768, slots: 64,
  });
  const stats = newDecodeStats();
  return new Promise<SourceStats>((resolve, reject) => {
    let buf: Buffer;
    let rcvbuf = 0;
    const finish = (err?: Error) => {
      const s = { ...sock.stats(), ...stats, rcvbuf, filterInsns: 0 };
      sock.close();
      if (err) reject(err); else resolve(s);
    };
    try {
      rcvbuf = sock.setRcvbuf(4 * 1024 * 1024);
      buf = sock.start((len) => {
        const t = nowMicros();
        const r = decodeBatch(buf, len, stats, (ev) => {
          ev.recvTime = t;
          ev.recvFrom = t;
          ev.netns = opts.netns ?? '';
          ev.netnsInode = inode;
          onEvent(ev);
        }, true);
        if (r.error) {
          const e = new Error(`conntrack dump failed: ${errnoName(r.error)}`) as Error & { errno: number; code: string };
          e.errno = r.error;
          e.code = errnoName(r.error);
          finish(e);
        } else if (r.done) finish();
      }, (err) => finish(err));
      sock.send(dumpRequest(opts.family ?? AF_UNSPEC));
    } catch (e) {
      sock.close();
      reject(e as Error);
    }
  });
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 12: 'ENOMEM', 13: 'EACCES', 16: 'EBUSY', 22: 'EINVAL',
  93: 'EPROTONOSUPPORT', 95: 'EOPNOTSUPP', 105: 'ENOBUFS',
};
export function errnoName(n: number): string {
  return ERRNO_NAMES[n] ?? `errno ${n}`;
}
