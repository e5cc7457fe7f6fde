// The NFLOG source's configuration: its keys, defaults and docs (the
// daemon's schema is assembled from each component's own).
import { NETNS_PROP, RCVBUF_MAX, RCVBUF_MIN } from '../source.js';
import { NFLOG_DEFAULT_QTHRESHOLD } from './constants.js';

export interface NflogSourceConfig {
  name: string;
  type: 'nflog';
  netns?: string;
  groups: number[];
  copy_mode: 'packet' | 'meta';
  copy_range: number;
  qthreshold: number;
  nlbufsiz?: number;
  timeout_ms: number;
  conntrack: boolean;
  buffer_size: number;
  buffer_max: number;
  batch_delay_ms: number;
  store: boolean;
}

export const NFLOG_SOURCE_SCHEMA = {
  type: 'object',
  description: 'An NFLOG packet source: the packets that log rules hand to user space (nftables `log group N`, iptables `-j NFLOG --nflog-group N`), from one or several groups in one network namespace, as `conntrail packets`. Only one socket per namespace can bind a group: a peer logger (ulogd) needs a group of its own.',
  additionalProperties: false,
  required: ['type', 'groups'],
  properties: {
    name: { type: 'string', minLength: 1, default: 'nflog', description: 'Name that sinks refer to in `sources`.' },
    type: { const: 'nflog', description: 'The kind of source (NFLOG packet logs).' },
    netns: NETNS_PROP,
    groups: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 65535 }, minItems: 1, uniqueItems: true, description: 'NFLOG groups to bind (0-65535), as the rules\' `group`.' },
    copy_mode: { enum: ['packet', 'meta'], default: 'packet', description: '`packet`: the packet\'s bytes up to `copy_range` (headers, for the line formats and pcap); `meta`: only what the kernel says about it (prefix, interfaces, mark, times).' },
    copy_range: { type: 'integer', minimum: 0, maximum: 65535, default: 0, description: 'Bytes of each packet to copy (0: all of it, up to 65535).' },
    qthreshold: { type: 'integer', minimum: 1, maximum: 65535, default: NFLOG_DEFAULT_QTHRESHOLD, description: 'Packets the kernel gathers into one netlink message before it sends them, at most (kernel-side batching: under load one message carries as many as fit `nlbufsiz`; the rest of the time the kernel sends what it has at `timeout_ms`; 1: each packet at once).' },
    nlbufsiz: { type: 'integer', minimum: 4096, maximum: 131072, description: 'The kernel\'s buffer for one message of gathered packets, bytes (NFULA_CFG_NLBUFSIZ); default: the kernel\'s own (about 4 KiB, some 16 to 32 small packets). Larger: more packets per message under load; each message queued takes this much of `buffer_size` however few packets it holds.' },
    timeout_ms: { type: 'integer', minimum: 0, maximum: 60000, default: 0, description: 'Longest the kernel holds gathered packets before it sends them, in ms (10 ms steps; 0: until its next timer tick, a few ms). Packets logged at the output and postrouting hooks carry no kernel timestamp: they get the time conntrail read them, later by up to this much.' },
    conntrack: { type: 'boolean', default: true, description: 'Ask for each packet\'s conntrack entry (NFULNL_CFG_F_CONNTRACK); a kernel without it (no CONFIG_NETFILTER_NETLINK_GLUE_CT) is told once in the log and the packets come without it.' },
    buffer_size: { type: 'integer', minimum: RCVBUF_MIN, maximum: RCVBUF_MAX, default: 33554432, description: 'Netlink receive buffer to ask for, in bytes (the kernel accounts twice that): a burst of packets the daemon cannot format at once waits there.' },
    buffer_max: { type: 'integer', minimum: RCVBUF_MIN, maximum: RCVBUF_MAX, default: 268435456, description: 'After an overrun (ENOBUFS) the receive buffer grows at once (eight times its size, or twice what was queued and dropped), up to this many bytes. Packets lost to an overrun cannot be recovered; they are counted and reported, as are the gaps the per-group sequence numbers show.' },
    batch_delay_ms: { type: 'integer', minimum: 0, maximum: 1000, default: 0, description: 'After a wake-up, wait this long before reading again (the kernel already batches, `qthreshold`).' },
    store: { type: 'boolean', default: true, description: 'Write the packets to the store (`[store]`, with its retention), for `conntrail packets --db` and `conntrail flows --packets`; `false`: to the sinks only.' },
  },
} as const;
