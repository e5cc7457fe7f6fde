// A TCP state change: one socket moved from one TCP state to another (the
// kernel's sock:inet_sock_set_state), with the process that was current
// when it did. Plain data: the tcpstates source fills it, formats read it.
//
// The process is the one running when the change happened. Changes made in
// softirq context (a passive open's SYN_RECV -> ESTABLISHED, a RST from the
// peer) run in whatever task the CPU was in: pid 0 (swapper) or an
// unrelated one. It names the owner only for changes the owner's own system
// calls make (connect, close, listen).

export interface TcpStateChange {
  /** µs since the epoch */
  time: number;
  /** the kernel's socket address (hex, as tcpstates prints it) */
  skaddr: string;
  /** the socket's cookie (unique for the kernel's uptime; a counter, exact as a number) */
  cookie: number;
  /** the socket's network namespace inode */
  netnsInode: number;
  /** the namespace's name where conntrail knows it ('' otherwise) */
  netns: string;
  /** the process (thread group) and thread current at the change */
  pid: number;
  tid: number;
  /** its command (task comm, at most 15 chars) */
  comm: string;
  /** 2 (IPv4) or 10 (IPv6) */
  family: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  /** TCP states (TCP_ESTABLISHED 1 ... TCP_NEW_SYN_RECV 12) */
  oldState: number;
  newState: number;
  /** ns since this socket's previous change, undefined when not seen */
  deltaNs: number | undefined;
}

/** the kernel's names of the TCP states (include/net/tcp_states.h), as tcpstates prints them */
export const TCP_STATE_NAMES: readonly string[] = ['', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE',
  'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV', 'UNKNOWN'];
