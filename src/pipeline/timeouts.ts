// When did a flow stop carrying packets? The kernel does not say, but it
// says enough: an entry that expired was destroyed exactly its timeout after
// its last packet (on kernels since 2021 the stop timestamp of an expired
// entry is its expiry time, not the moment the garbage collector found it;
// on older ones it is later, so an estimate from it errs on the side of
// activity), and the
// timeout in effect follows from the protocol, its state and status and the
// namespace's nf_conntrack_*_timeout sysctls. This module reads those
// sysctls and answers "which timeout was running when this entry expired".
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, IPS_ASSURED } from '../records/values.js';

const TCP_NAMES = ['', 'syn_sent', 'syn_recv', 'established', 'fin_wait', 'close_wait', 'last_ack', 'time_wait', 'close', 'syn_sent'];
const SCTP_NAMES = ['', 'closed', 'cookie_wait', 'cookie_echoed', 'established', 'shutdown_sent', 'shutdown_recd', 'shutdown_ack_sent', 'heartbeat_sent'];

/** every sysctl this module reads, as net.netfilter.NAME */
export const TIMEOUT_SYSCTLS: string[] = [
  ...[...new Set(TCP_NAMES.filter(Boolean))].map((n) => `nf_conntrack_tcp_timeout_${n}`),
  'nf_conntrack_tcp_timeout_max_retrans', 'nf_conntrack_tcp_timeout_unacknowledged',
  ...SCTP_NAMES.filter(Boolean).map((n) => `nf_conntrack_sctp_timeout_${n}`),
  'nf_conntrack_udp_timeout', 'nf_conntrack_udp_timeout_stream', 'nf_conntrack_icmp_timeout',
  'nf_conntrack_icmpv6_timeout', 'nf_conntrack_gre_timeout', 'nf_conntrack_gre_timeout_stream',
  'nf_conntrack_generic_timeout',
].map((n) => `net.netfilter.${n}`);

/** The kernel's tick (jiffy) in µs: expiry times are this precise. */
export function jiffyMicros(): number {
  try {
    const cfg = gunzipSync(readFileSync('/proc/config.gz')).toString('latin1');
    const hz = /^CONFIG_HZ=(\d+)$/m.exec(cfg);
    if (hz && Number(hz[1]) > 0) return Math.ceil(1e6 / Number(hz[1]));
  } catch { /* no config.gz: assume the coarsest common tick */ }
  return 10_000;
}

/** TCP: the states in which both directions have finished (or reset). */
export function tcpFinished(state: number): boolean {
  return state === 6 /* LAST_ACK */ || state === 7 /* TIME_WAIT */ || state === 8 /* CLOSE */;
}
/** SCTP: both sides shut down, or aborted. */
export function sctpFinished(state: number): boolean {
  return state === 7 /* SHUTDOWN_ACK_SENT */ || state === 1 /* CLOSED */;
}

export class Timeouts {
  /** seconds by sysctl name (without the net.netfilter. prefix) */
  private readonly s = new Map<string, number>();

  /** values: what readSysctl returned for TIMEOUT_SYSCTLS, in that order */
  constructor(values: Array<string | null>) {
    values.forEach((v, i) => {
      if (v !== null && /^\d+$/.test(v.trim())) this.s.set(TIMEOUT_SYSCTLS[i].slice('net.netfilter.'.length), Number(v));
    });
  }

  get size(): number { return this.s.size; }

  private get(name: string): number | undefined {
    return this.s.get(`nf_conntrack_${name}`);
  }

  /**
   * The shortest timeout (seconds) that can have been running when an entry
   * of this protocol, final state and status expired; undefined when it
   * cannot be known. The shortest, because a shorter timeout puts the last
   * packet later: the estimate may make a flow look active a little longer,
   * never shorter, than it was.
   */
  seconds(proto: number, state: number | undefined, status: number): number | undefined {
    switch (proto) {
      case IPPROTO_TCP: {
        const name = state !== undefined ? TCP_NAMES[state] : undefined;
        const t = name ? this.get(`tcp_timeout_${name}`) : undefined;
        if (t === undefined) return undefined;
        // retransmissions, unacknowledged data and a zero window shorten it
        return Math.min(t, this.get('tcp_timeout_max_retrans') ?? t, this.get('tcp_timeout_unacknowledged') ?? t);
      }
      case IPPROTO_UDP:
      case IPPROTO_UDPLITE:
        // ASSURED is set by the packet that moves the entry to the stream timeout
        return status & IPS_ASSURED ? this.get('udp_timeout_stream') : this.get('udp_timeout');
      case IPPROTO_ICMP: return this.get('icmp_timeout');
      case IPPROTO_ICMPV6: return this.get('icmpv6_timeout');
      case IPPROTO_GRE: return status & IPS_ASSURED ? this.get('gre_timeout_stream') : this.get('gre_timeout');
      case IPPROTO_SCTP: {
        const name = state !== undefined ? SCTP_NAMES[state] : undefined;
        return name ? this.get(`sctp_timeout_${name}`) : undefined;
      }
      default: return this.get('generic_timeout');
    }
  }
}
