// A TCP state change: one socket moved from one TCP state to another (the
// kernel's sock:inet_sock_set_state), with the process that was current
// when it did. Plain data: the tcpstates source fills it, formats read it.
//
// The process is the one running when the change happened. Changes made in
// softirq context (a passive open's SYN_RECV -> ESTABLISHED, a RST from the
// peer) run in whatever task the CPU was in: pid 0 (swapper) or an
// unrelated one. It names the owner only for changes the owner's own system
// calls make (connect, listen, close, shutdown): `namesHolder` says which
// changes those are.

export interface TcpStateChange {
  /** µs since the epoch */
  time: number;
  /** the kernel's socket address (hex, as tcpstates prints it) */
  skaddr: string;
  /** the socket's cookie (unique for the kernel's uptime; a counter, exact as a number) */
  cookie: number;
  /** the socket's network namespace inode */
  netnsInode: number;
  /** the namespace's name: the daemon's own '', an `ip netns` name, or "net:[INODE]" (the CLI names it only with --netns; '' otherwise) */
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
  /** the current task was a kernel thread (ksoftirqd, a NAPI or MPTCP worker): not a process */
  kthread: boolean;
  /** the socket is the kernel's own (CIFS, NFS, iSCSI): no process holds it, whichever task opened it */
  kernelSocket: boolean;
}

// TCP_* of include/net/tcp_states.h
const ESTABLISHED = 1, SYN_SENT = 2, SYN_RECV = 3, FIN_WAIT1 = 4, CLOSE = 7, CLOSE_WAIT = 8, LAST_ACK = 9, LISTEN = 10;

/**
 * Does this change name the process that held the socket? Only changes
 * that nothing but a system call on the socket makes do: connect()
 * (CLOSE -> SYN_SENT), listen() (CLOSE -> LISTEN), and close() or
 * shutdown() (ESTABLISHED or SYN_RECV -> FIN_WAIT1, CLOSE_WAIT ->
 * LAST_ACK, LISTEN -> CLOSE), also when the process exits with the socket
 * open; never from a kernel thread, nor on a socket the kernel holds.
 * Every other change can run in softirq context (a segment received, a
 * timer), where the current task is whichever the CPU was running. A
 * passive open's holder is so known only once it closes or shuts down its
 * side. (A socket passed to another process names the process that made
 * the change.)
 */
export function namesHolder(r: TcpStateChange): boolean {
  if (r.kthread || r.kernelSocket) return false;
  const o = r.oldState, n = r.newState;
  return (o === CLOSE && (n === SYN_SENT || n === LISTEN)) || (n === FIN_WAIT1 && (o === ESTABLISHED || o === SYN_RECV)) ||
    (o === CLOSE_WAIT && n === LAST_ACK) || (o === LISTEN && n === CLOSE);
}

/** "ipv4" or "ipv6", as the JSON formats name a socket's family */
export const familyText = (family: number): string => (family === 10 ? 'ipv6' : 'ipv4');

/** the kernel's names of the TCP states (include/net/tcp_states.h), as tcpstates prints them */
export const TCP_STATE_NAMES: readonly string[] = ['', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE',
  'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV', 'UNKNOWN'];
