// What the values in a record mean: conntrack status bits, protocol numbers
// and names, protocol state names (the kernel's enums, as conntrack prints them).
// enum ip_conntrack_status
export const IPS_EXPECTED = 1 << 0;
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;
export const IPS_SEQ_ADJUST = 1 << 6;
export const IPS_SRC_NAT_DONE = 1 << 7;
export const IPS_DST_NAT_DONE = 1 << 8;
export const IPS_DYING = 1 << 9;
export const IPS_FIXED_TIMEOUT = 1 << 10;
export const IPS_TEMPLATE = 1 << 11;
export const IPS_UNTRACKED = 1 << 12;
export const IPS_HELPER = 1 << 13;
export const IPS_OFFLOAD = 1 << 14;
export const IPS_HW_OFFLOAD = 1 << 15;

export const STATUS_NAMES: ReadonlyArray<readonly [number, string]> = [
  [IPS_EXPECTED, 'EXPECTED'],
  [IPS_SEEN_REPLY, 'SEEN_REPLY'],
  [IPS_ASSURED, 'ASSURED'],
  [IPS_CONFIRMED, 'CONFIRMED'],
  [IPS_SRC_NAT, 'SRC_NAT'],
  [IPS_DST_NAT, 'DST_NAT'],
  [IPS_SEQ_ADJUST, 'SEQ_ADJUST'],
  [IPS_SRC_NAT_DONE, 'SRC_NAT_DONE'],
  [IPS_DST_NAT_DONE, 'DST_NAT_DONE'],
  [IPS_DYING, 'DYING'],
  [IPS_FIXED_TIMEOUT, 'FIXED_TIMEOUT'],
  [IPS_TEMPLATE, 'TEMPLATE'],
  [IPS_UNTRACKED, 'UNTRACKED'],
  [IPS_HELPER, 'HELPER'],
  [IPS_OFFLOAD, 'OFFLOAD'],
  [IPS_HW_OFFLOAD, 'HW_OFFLOAD'],
];

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_GRE = 47;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;

/** protocol names as conntrack-tools prints and parses them */
export const PROTO_NAMES: Readonly<Record<number, string>> = {
  [IPPROTO_TCP]: 'tcp',
  [IPPROTO_UDP]: 'udp',
  [IPPROTO_UDPLITE]: 'udplite',
  [IPPROTO_ICMP]: 'icmp',
  [IPPROTO_ICMPV6]: 'icmpv6',
  [IPPROTO_SCTP]: 'sctp',
  [IPPROTO_GRE]: 'gre',
  [IPPROTO_DCCP]: 'dccp',
};

export function protoName(num: number): string {
  return PROTO_NAMES[num] ?? 'unknown';
}

/** TCP conntrack states (nf_conntrack_tcp.h; 9 was LISTEN, now SYN_SENT2) */
export const TCP_STATES = [
  'NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT',
  'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2',
] as const;

export const SCTP_STATES = [
  'NONE', 'CLOSED', 'COOKIE_WAIT', 'COOKIE_ECHOED', 'ESTABLISHED',
  'SHUTDOWN_SENT', 'SHUTDOWN_RECD', 'SHUTDOWN_ACK_SENT', 'HEARTBEAT_SENT',
  'HEARTBEAT_ACKED',
] as const;

export const DCCP_STATES = [
  'NONE', 'REQUEST', 'RESPOND', 'PARTOPEN', 'OPEN', 'CLOSEREQ', 'CLOSING',
  'TIMEWAIT', 'IGNORE', 'INVALID',
] as const;
