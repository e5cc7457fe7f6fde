// `conntrack -L -o save` / `conntrack -E -o save` (conntrack-tools 1.4.7),
// byte for byte: each entry as the options that would make it again
// (`-A`, `-U`, `-D`, then -t, -u, zones, the addresses, -p and the
// protocol's own), for `conntrack -I -` / `-R`. What it leaves out, it
// leaves out here too (the mark, counters, labels, helpers).
import { IPPROTO_DCCP, IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, IPS_DST_NAT_DONE, IPS_SRC_NAT_DONE, DCCP_STATES, SCTP_STATES, TCP_STATES } from '../records/values.js';
import type { FlowEvent } from '../records/event.js';
import { userspaceSuffix } from './conntrack.js';

/** the -u names conntrack prints, by bit */
const STATUS_NAMES: ReadonlyArray<[number, string]> = [[0, 'EXPECTED'], [1, 'SEEN_REPLY'], [2, 'ASSURED'], [10, 'FIXED_TIMEOUT']];

/** a state past the extension's table: printf of a NULL string */
const named = (names: readonly string[], n: number) => names[n] ?? '(null)';

/**
 * conntrack prints a verification tag byte-swapped (the library converts it
 * to host order and the extension converts it again), and `-I --orig-vtag`
 * swaps it back: a tag as conntrack's own options take it.
 */
const bswap32 = (v: number) => (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;

export interface ConntrackSaveOptions {
  /** resolve "[USERSPACE] portid=N progname=NAME" (events only) */
  progname?: (portid: number) => string | undefined;
}

/** The line conntrack -o save prints for `ev`, without the newline. */
export function formatConntrackSave(ev: FlowEvent, o: ConntrackSaveOptions = {}): string {
  // (a dump's entries are printed as NEW ones)
  const parts: string[] = [ev.type === 'UPDATE' ? '-U' : ev.type === 'DESTROY' ? '-D' : '-A'];
  if (ev.timeout !== undefined) parts.push('-t', String(ev.timeout));
  if (ev.status !== undefined) {
    const names = STATUS_NAMES.filter(([bit]) => ev.status! & (1 << bit)).map(([, n]) => n);
    parts.push('-u', names.length ? names.join(',') : 'UNSET');
  }
  if (ev.secmark !== undefined) parts.push('-c', String(ev.secmark));
  if (ev.zone !== undefined) parts.push('-w', String(ev.zone));
  if (ev.orig.zone !== undefined) parts.push('--orig-zone', String(ev.orig.zone));
  if (ev.reply.zone !== undefined) parts.push('--reply-zone', String(ev.reply.zone));
  if (ev.family === 2 || ev.family === 10) {
    // as libnetfilter_conntrack tells NAT: the status bit (when the status is known) and the whole address changed
    const nat = (flag: number, a: string, b: string) => (ev.status === undefined || (ev.status & flag) !== 0) && a !== b;
    parts.push('-s', ev.orig.src, '-d', ev.orig.dst);
    parts.push(nat(IPS_DST_NAT_DONE, ev.reply.src, ev.orig.dst) ? '-g' : '-r', ev.reply.src);
    parts.push(nat(IPS_SRC_NAT_DONE, ev.reply.dst, ev.orig.src) ? '-n' : '-q', ev.reply.dst);
  }
  const ports = (name: string, ...pairs: Array<[string, number | undefined]>) => {
    parts.push('-p', name);
    for (const [flag, v] of pairs) if (v !== undefined) parts.push(flag, String(v));
  };
  const { orig: t, reply: r } = ev;
  switch (ev.proto) {
    case IPPROTO_TCP:
      ports('tcp', ['--sport', t.sport], ['--dport', t.dport], ['--reply-port-src', r.sport], ['--reply-port-dst', r.dport]);
      if (ev.tcpState !== undefined) parts.push('--state', named(TCP_STATES, ev.tcpState));
      break;
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
      ports(ev.proto === IPPROTO_UDP ? 'udp' : 'udplite', ['--sport', t.sport], ['--dport', t.dport], ['--reply-port-src', r.sport], ['--reply-port-dst', r.dport]);
      break;
    case IPPROTO_SCTP:
      ports('sctp', ['--sport', t.sport], ['--dport', t.dport], ['--reply-port-src', r.sport], ['--reply-port-dst', r.dport]);
      if (ev.sctpState !== undefined) parts.push('--state', named(SCTP_STATES, ev.sctpState));
      if (ev.sctpVtagOrig !== undefined) parts.push('--orig-vtag', String(bswap32(ev.sctpVtagOrig)));
      if (ev.sctpVtagReply !== undefined) parts.push('--reply-vtag', String(bswap32(ev.sctpVtagReply)));
      break;
    case IPPROTO_DCCP:
      ports('dccp', ['--sport', t.sport], ['--dport', t.dport], ['--reply-port-src', r.sport], ['--reply-port-dst', r.dport]);
      if (ev.dccpState !== undefined) parts.push('--state', named(DCCP_STATES, ev.dccpState));
      break;
    case IPPROTO_GRE:
      ports('gre', ['--srckey', t.sport], ['--dstkey', t.dport], ['--reply-key-src', r.sport], ['--reply-key-dst', r.dport]);
      break;
    case IPPROTO_ICMP:
      ports('icmp', ['--icmp-type', t.icmpType], ['--icmp-code', t.icmpCode], ['--icmp-id', t.icmpId]);
      break;
    case IPPROTO_ICMPV6:
      ports('icmpv6', ['--icmpv6-type', t.icmpType], ['--icmpv6-code', t.icmpCode], ['--icmpv6-id', t.icmpId]);
      break;
    default:
      parts.push('-p', String(ev.proto));
  }
  return parts.join(' ') + userspaceSuffix(ev, o.progname);
}
