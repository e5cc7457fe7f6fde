// The NFLOG source: binds one or more nfnetlink_log groups in a network
// namespace, with the copy mode, kernel-side batching (queue threshold,
// timeout), per-group sequence numbers and the packets' conntrack entries,
// and reads the packets in batches through the native netlink socket.
// Losses are never silent: ENOBUFS (the socket overran) and sequence gaps
// (packets the kernel numbered but we never got) are counted and reported.
import { namespaceInode } from '../netns/watch.js';
import { SocketSource } from '../../netlink/socket-source.js';
import { native, type NativeNetlinkSocket, type NativeStats } from '../../netlink/native.js';
import { AF_UNSPEC, NETLINK_NETFILTER, NLM_F_ACK, NLM_F_REQUEST, NLMSG_HDRLEN } from '../../netlink/constants.js';
import { NFGENMSG_LEN, NFNETLINK_V0 } from '../conntrack/constants.js';
import { errnoName } from '../conntrack/socket.js';
import { nowMicros } from '../../util/time.js';
import type { PacketLog } from '../../records/packet.js';
import * as C from './constants.js';
import { NFLOG_DEFAULT_QTHRESHOLD } from './constants.js';
import { decodeNflogBatch, newNflogStats, SeqTracker, type NflogDecodeStats } from './decode.js';
import { LinkNames } from './links.js';

export const NFLOG_DEFAULT_RCVBUF = 32 * 1024 * 1024;

export interface NflogOptions {
  netns?: string;
  groups: number[];
  /** 'packet' (default), 'meta' (no payload), 'none' */
  copyMode?: 'packet' | 'meta' | 'none';
  /** bytes of each packet to copy (0: the kernel's maximum, 0xffff) */
  copyRange?: number;
  /** packets the kernel queues before it sends them in one datagram (1: each at once; default NFLOG_DEFAULT_QTHRESHOLD) */
  qthreshold?: number;
  /** at most this long (ms, 10 ms steps) before a partly filled queue is sent (0: at the kernel's next timer tick) */
  timeoutMs?: number;
  /** kernel-side buffer for one datagram, bytes */
  nlbufsiz?: number;
  /** receive buffer to ask for, bytes */
  rcvbuf?: number;
  /** ask for the conntrack entry of each packet (default true) */
  conntrack?: boolean;
  /** resolve interface names in the namespace (default true) */
  resolveNames?: boolean;
  /** keep each message's raw bytes (PacketLog.raw), for pcap with link type NFLOG */
  keepRaw?: boolean;
  coalesceMs?: number;
}

export interface PacketSink {
  packet(p: PacketLog): void;
  batchEnd(): void;
  /** the socket overran (ENOBUFS): `total` so far */
  overrun?(total: number): void;
  /** the sequence numbers show `n` packets of `group` were lost (before `p`) */
  gap?(n: number, group: number, p: PacketLog): void;
}

export interface NflogStats extends NativeStats, NflogDecodeStats {
  rcvbuf: number;
}

let seq = 1;
/** One NFULNL_MSG_CONFIG message for `group` (AF_UNSPEC) with the given attributes, asking for an ACK. */
export function configMessage(group: number, attrs: Array<[number, Buffer]>): Buffer {
  let len = NLMSG_HDRLEN + NFGENMSG_LEN;
  for (const [, v] of attrs) len += (4 + v.length + 3) & ~3;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(C.NFLOG_CONFIG, 4);
  b.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
  b.writeUInt32LE(seq++ >>> 0, 8);
  b.writeUInt32LE(0, 12);
  b.writeUInt8(AF_UNSPEC, 16);
  b.writeUInt8(NFNETLINK_V0, 17);
  b.writeUInt16BE(group, 18);
  let o = NLMSG_HDRLEN + NFGENMSG_LEN;
  for (const [t, v] of attrs) {
    b.writeUInt16LE(4 + v.length, o);
    b.writeUInt16LE(t, o + 2);
    v.copy(b, o + 4);
    o += (4 + v.length + 3) & ~3;
  }
  return b;
}

const u8b = (n: number) => Buffer.from([n]);
const be16b = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const be32b = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };

/** The configuration messages for one group, in the order they are sent (bind first). */
export function groupConfig(group: number, o: NflogOptions): Buffer[] {
  const mode = o.copyMode === 'none' ? C.NFULNL_COPY_NONE : o.copyMode === 'meta' ? C.NFULNL_COPY_META : C.NFULNL_COPY_PACKET;
  const modeBuf = Buffer.alloc(6); // packed: be32 copy_range, u8 copy_mode, u8 pad
  modeBuf.writeUInt32BE(o.copyRange ?? 0xffff, 0);
  modeBuf.writeUInt8(mode, 4);
  let flags = C.NFULNL_CFG_F_SEQ | C.NFULNL_CFG_F_SEQ_GLOBAL;
  if (o.conntrack !== false) flags |= C.NFULNL_CFG_F_CONNTRACK;
  const msgs = [
    configMessage(group, [[C.NFULA_CFG_CMD, u8b(C.NFULNL_CFG_CMD_BIND)]]),
    configMessage(group, [[C.NFULA_CFG_MODE, modeBuf]]),
    configMessage(group, [[C.NFULA_CFG_FLAGS, be16b(flags)]]),
    configMessage(group, [[C.NFULA_CFG_QTHRESH, be32b(o.qthreshold ?? NFLOG_DEFAULT_QTHRESHOLD)]]),
    configMessage(group, [[C.NFULA_CFG_TIMEOUT, be32b(Math.round((o.timeoutMs ?? 0) / 10))]]),
  ];
  if (o.nlbufsiz !== undefined) msgs.push(configMessage(group, [[C.NFULA_CFG_NLBUFSIZ, be32b(o.nlbufsiz)]]));
  return msgs;
}

/**
 * The receive slot for one datagram. The kernel gathers packets into an skb
 * of max(nlbufsiz, the first packet's size) bytes, but the skb it gets is a
 * power-of-two allocation above that and it fills all of it (skb_tailroom),
 * so a datagram can be almost twice nlbufsiz, or ~128 KiB after one whole
 * 64 KiB packet. A smaller slot would cut the datagram short (MSG_TRUNC) and
 * lose every packet in it.
 */
export function nflogSlotSize(nlbufsiz: number | undefined, copyRange: number): number {
  const n = Math.max(nlbufsiz ?? 4096, Math.min(copyRange, 0xffff) + 1024) + 512;
  return Math.max(16384, 2 ** Math.ceil(Math.log2(n)));
}

/** "N datagrams of packets dropped by the kernel" ('' for none) */
export function droppedText(dropped: number): string {
  return dropped ? `${dropped} datagram${dropped > 1 ? 's' : ''} of packets dropped by the kernel` : '';
}

/**
 * What was lost since the last report, as the daemon's log and `packets`
 * say it: `overruns` ENOBUFS, `dropped` datagrams the kernel dropped (it
 * says ENOBUFS once per overrun: a later count alone means it went on),
 * `gaps` packets missing by sequence number (`gapsTotal` so far).
 */
export function nflogLossText(overruns: number, dropped: number, gaps: number, gapsTotal: number): string {
  const d = droppedText(dropped);
  return 'packets lost: ' + (overruns > 0 ? `netlink overrun (ENOBUFS) x${overruns}${d ? ` (${d})` : ''}, ` : d ? `${d} (the overrun went on), ` : '') +
    `${gaps} missing by sequence number (${gapsTotal} so far)`;
}

export class NflogError extends Error {
  constructor(message: string, readonly errno: number) { super(message); }
}

export class NflogSource extends SocketSource {
  readonly sock: NativeNetlinkSocket;
  readonly decodeStats = newNflogStats();
  rcvbuf: number;
  private readonly seqs = new SeqTracker();
  private readonly links: LinkNames | undefined;
  private pendingAcks = 0;
  private ready: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private closed = false;
  /** the kernel gives each packet's conntrack entry (false: it cannot, or it was not asked) */
  conntrack: boolean;

  constructor(private readonly opts: NflogOptions) {
    super();
    this.conntrack = opts.conntrack !== false;
    if (!opts.groups.length) throw new Error('nflog: at least one group');
    const copy = opts.copyRange ?? 0xffff;
    this.sock = new (native().NetlinkSocket)({
      protocol: NETLINK_NETFILTER,
      netns: opts.netns,
      groups: 0,
      coalesceMs: opts.coalesceMs ?? 0,
      slotSize: nflogSlotSize(opts.nlbufsiz, copy),
      slots: 32,
    });
    try {
      this.rcvbuf = this.sock.setRcvbuf(opts.rcvbuf ?? NFLOG_DEFAULT_RCVBUF);
      this.links = opts.resolveNames === false ? undefined : new LinkNames(opts.netns);
    } catch (e) {
      this.sock.close();
      throw e;
    }
  }

  /**
   * Starts reading and binds the groups; resolves when the kernel has
   * acknowledged every configuration message (rejects naming the group if
   * one is refused: EBUSY means another socket in this namespace has it).
   */
  start(sink: PacketSink, onError: (err: Error) => void): Promise<void> {
    let buf: Buffer;
    const stats = this.decodeStats;
    let overruns = 0;
    const netns = this.opts.netns ?? '';
    const inode = namespaceInode(this.opts.netns);
    const onPacket = (p: PacketLog): void => {
      p.netns = netns;
      p.netnsInode = inode;
      if (this.links) {
        if (p.indev) p.indevName = this.links.name(p.indev);
        if (p.outdev) p.outdevName = this.links.name(p.outdev);
        if (p.physindev) p.physindevName = this.links.name(p.physindev);
        if (p.physoutdev) p.physoutdevName = this.links.name(p.physoutdev);
      }
      const gap = this.seqs.check(p);
      if (gap > 0) { stats.seqGaps += gap; sink.gap?.(gap, p.group, p); }
      sink.packet(p);
    };
    const onBatch = (len: number, _count: number, total: number): void => {
      if (len > 0) {
        const r = decodeNflogBatch(buf, len, stats, nowMicros(), onPacket, this.opts.keepRaw === true);
        if (this.ready) this.acked(r.acks, r.errors);
        else if (r.errors.length) onError(new NflogError(`nflog: the kernel reported ${errnoName(r.errors[0][0])}`, r.errors[0][0]));
      }
      if (total > overruns) { overruns = total; sink.overrun?.(total); }
      sink.batchEnd();
    };
    return new Promise<void>((resolve, reject) => {
      try {
        buf = this.sock.start(onBatch, onError);
      } catch (e) {
        reject(e as Error);
        return;
      }
      // names first, so the first packets have theirs
      void (this.links?.ready() ?? Promise.resolve()).then(() => {
        if (this.closed) { reject(new NflogError('nflog: closed before the groups were bound', 4)); return; }
        const msgs = this.opts.groups.flatMap((g) => groupConfig(g, this.opts));
        for (const g of this.opts.groups) this.seqs.bound(g);
        this.pendingAcks = msgs.length;
        this.ready = { resolve, reject };
        try {
          for (const m of msgs) this.sock.send(m);
        } catch (e) {
          this.ready = undefined;
          reject(e as Error);
        }
      });
    });
  }

  private acked(acks: number, errors: Array<[number, number]>): void {
    const r = this.ready!;
    this.pendingAcks -= acks;
    for (const [error, group] of errors) {
      this.pendingAcks--; // an error answers its message instead of an ack
      if (error === 95 && this.opts.conntrack !== false) {
        // EOPNOTSUPP: only NFULNL_CFG_F_CONNTRACK gives it (a kernel without
        // CONFIG_NETFILTER_NETLINK_GLUE_CT): the same flags without it, once
        // for every group (each group's flags message is refused alike)
        if (this.conntrack) {
          this.conntrack = false;
          const flags = C.NFULNL_CFG_F_SEQ | C.NFULNL_CFG_F_SEQ_GLOBAL;
          try {
            for (const g of this.opts.groups) {
              this.pendingAcks++;
              this.sock.send(configMessage(g, [[C.NFULA_CFG_FLAGS, be16b(flags)]]));
            }
          } catch (e) {
            this.ready = undefined;
            r.reject(e as Error);
            return;
          }
        }
        continue;
      }
      this.ready = undefined;
      const why = error === 16 || error === 1
        ? `was refused (${errnoName(error)}): another socket in this namespace has it bound (another logger, such as ulogd?), or this process lacks CAP_NET_ADMIN`
        : `was refused: ${errnoName(error)}`;
      const ns = this.opts.netns ? ` in namespace ${this.opts.netns}` : '';
      r.reject(new NflogError(`nflog group ${group >= 0 ? group : this.opts.groups.join(', ')}${ns} ${why}`, error));
      return;
    }
    if (this.pendingAcks <= 0) { this.ready = undefined; r.resolve(); }
  }

  stats(): NflogStats {
    return { ...this.sock.stats(), ...this.decodeStats, rcvbuf: this.rcvbuf };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // unbinding is implicit: the kernel frees the instances when the socket closes
    this.links?.close();
    this.sock.close();
    if (this.ready) {
      const r = this.ready;
      this.ready = undefined;
      r.reject(new NflogError('nflog: closed before the groups were bound', 4));
    }
  }
}
