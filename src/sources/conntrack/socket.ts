// The conntrack source: ctnetlink events (NEW / UPDATE / DESTROY) and table
// dumps, read in batches through the native netlink socket and decoded
// straight from the receive buffer.
import { namespaceInode } from '../netns/watch.js';
import { SocketSource } from '../../netlink/socket-source.js';
import { native, type NativeNetlinkSocket, type NativeStats } from '../../netlink/native.js';
import { AF_UNSPEC, NETLINK_BROADCAST_ERROR, NETLINK_NETFILTER, NETLINK_NO_ENOBUFS, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN, SOL_NETLINK } from '../../netlink/constants.js';
import {
  CT_MSG_GET, EXP_MSG_GET, IPCTNL_MSG_CT_GET_CTRZERO, IPCTNL_MSG_CT_GET_DYING, IPCTNL_MSG_CT_GET_UNCONFIRMED, NFGENMSG_LEN, NFNETLINK_V0, NFNL_SUBSYS_CTNETLINK,
  NFNLGRP_CONNTRACK_EXP_DESTROY, NFNLGRP_CONNTRACK_EXP_NEW, NFNLGRP_CONNTRACK_EXP_UPDATE,
} from './constants.js';
import { decodeBatch, decodeExpectBatch, newDecodeStats, type BatchResult, type DecodeStats } from './decode.js';
import type { FlowEvent } from '../../records/event.js';
import type { ExpectEvent } from '../../records/expect.js';
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
/** A ctnetlink table dump request (IPCTNL_MSG_CT_GET with NLM_F_DUMP; `msgType`: another table's, or the expectations'). */
export function dumpRequest(family = AF_UNSPEC, msgType = CT_MSG_GET): Buffer {
  const b = Buffer.alloc(NLMSG_HDRLEN + NFGENMSG_LEN);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(msgType, 4);
  b.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  b.writeUInt32LE(seq++ >>> 0, 8);
  b.writeUInt32LE(0, 12);
  b.writeUInt8(family, 16);
  b.writeUInt8(NFNETLINK_V0, 17);
  b.writeUInt16BE(0, 18);
  return b;
}

/** the tables conntrack -L reads: the entries, those being destroyed, those not yet confirmed */
export type ConntrackTable = 'conntrack' | 'dying' | 'unconfirmed';
const TABLE_MSG: Record<ConntrackTable, number> = {
  conntrack: CT_MSG_GET,
  dying: (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_DYING,
  unconfirmed: (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_UNCONFIRMED,
};

export interface DumpOptions {
  netns?: string;
  family?: number;
  /** default: the conntrack table */
  table?: ConntrackTable;
  /** zero the counters of each entry as it is read (the conntrack table only) */
  zero?: boolean;
}

/**
 * Dumps the conntrack table: every entry goes to `onEvent` (type 'DUMP').
 * Resolves with the decode counters when the kernel says the dump is done.
 */
export function dumpConntrack(opts: DumpOptions, onEvent: (ev: FlowEvent) => void): Promise<SourceStats> {
  const inode = namespaceInode(opts.netns);
  const stats = newDecodeStats();
  return netlinkDump(opts.netns, 4 * 1024 * 1024, 64, dumpRequest(opts.family ?? AF_UNSPEC, opts.zero ? (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_CTRZERO : TABLE_MSG[opts.table ?? 'conntrack']), 'conntrack dump', (buf, len) => {
    const t = nowMicros();
    return decodeBatch(buf, len, stats, (ev) => {
      ev.recvTime = t;
      ev.recvFrom = t;
      ev.netns = opts.netns ?? '';
      ev.netnsInode = inode;
      onEvent(ev);
    }, true);
  }).then((s) => ({ ...s, ...stats, filterInsns: 0 }));
}

/**
 * Sends a dump request on a socket of its own and reads the answer, each
 * batch to `onBatch`, until the kernel says the dump is done (or fails:
 * the error names `what`). Resolves with the socket's counters.
 */
function netlinkDump(netns: string | undefined, rcvbuf: number, slots: number, request: Buffer, what: string,
  onBatch: (buf: Buffer, len: number) => BatchResult): Promise<NativeStats & { rcvbuf: number }> {
  const sock = new (native().NetlinkSocket)({ protocol: NETLINK_NETFILTER, netns, slotSize: 32768, slots });
  return new Promise((resolve, reject) => {
    let buf: Buffer;
    let granted = 0;
    const finish = (err?: Error) => {
      const s = { ...sock.stats(), rcvbuf: granted };
      sock.close();
      if (err) reject(err); else resolve(s);
    };
    try {
      granted = sock.setRcvbuf(rcvbuf);
      buf = sock.start((len) => {
        const r = onBatch(buf, len);
        if (r.error) {
          const e = new Error(`${what} failed: ${errnoName(r.error)}`) as Error & { errno: number; code: string };
          e.errno = r.error;
          e.code = errnoName(r.error);
          finish(e);
        } else if (r.done) finish();
      }, (err) => finish(err));
      sock.send(request);
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

/**
 * Dumps the expectation table (conntrack -L expect): every expectation to
 * `onExpect`. Resolves with the decode counters at the dump's end.
 */
export function dumpExpectations(opts: { netns?: string; family?: number }, onExpect: (ex: ExpectEvent) => void): Promise<DecodeStats> {
  const stats = newDecodeStats();
  return netlinkDump(opts.netns, 1024 * 1024, 16, dumpRequest(opts.family ?? AF_UNSPEC, EXP_MSG_GET), 'expectation dump', (buf, len) => {
    const t = nowMicros();
    return decodeExpectBatch(buf, len, stats, (ex) => { ex.recvTime = t; onExpect(ex); }, true);
  }).then(() => stats);
}

/** Expectation events (conntrack -E expect): NEW, UPDATE and DESTROY of the expectation table. */
export class ExpectEventSource extends SocketSource {
  readonly sock: NativeNetlinkSocket;
  readonly decodeStats: DecodeStats = newDecodeStats();
  rcvbuf: number;

  constructor(opts: { netns?: string; rcvbuf?: number; coalesceMs?: number }) {
    super();
    this.sock = new (native().NetlinkSocket)({ protocol: NETLINK_NETFILTER, netns: opts.netns, groups: 0, coalesceMs: opts.coalesceMs ?? 0, slotSize: 4096, slots: 64 });
    try {
      this.rcvbuf = this.sock.setRcvbuf(opts.rcvbuf ?? DEFAULT_RCVBUF);
      for (const g of [NFNLGRP_CONNTRACK_EXP_NEW, NFNLGRP_CONNTRACK_EXP_UPDATE, NFNLGRP_CONNTRACK_EXP_DESTROY]) this.sock.addMembership(g);
    } catch (e) {
      this.sock.close();
      throw e;
    }
  }

  start(h: { record: (ex: ExpectEvent) => void; batchEnd: () => void }, onError: (err: Error) => void): void {
    let buf: Buffer;
    buf = this.sock.start((len) => {
      const t = nowMicros();
      if (len > 0) decodeExpectBatch(buf, len, this.decodeStats, (ex) => { ex.recvTime = t; h.record(ex); });
      h.batchEnd();
    }, onError);
  }

  close(): void { this.sock.close(); }
}
