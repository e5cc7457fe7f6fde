// The one record that crosses from the conntrack source to the pipeline and
// the sinks: a conntrack event (NEW / UPDATE / DESTROY) or a table entry
// from a dump.

export type FlowEventType = 'NEW' | 'UPDATE' | 'DESTROY' | 'DUMP';

export interface Tuple {
  /** source address, IPv4 dotted quad or compressed IPv6 (inet_ntop form) */
  src: string;
  dst: string;
  /** ports for tcp, udp, udplite, sctp, dccp; GRE keys (16 bit) for gre */
  sport: number | undefined;
  dport: number | undefined;
  icmpType: number | undefined;
  icmpCode: number | undefined;
  icmpId: number | undefined;
  /** per-direction conntrack zone (CTA_TUPLE_ZONE) */
  zone: number | undefined;
}

export interface FlowEvent {
  type: FlowEventType;
  /** address family: 2 (IPv4) or 10 (IPv6) */
  family: number;
  /** layer-4 protocol number of the original tuple */
  proto: number;
  orig: Tuple;
  reply: Tuple;
  /** IPS_* bits */
  status: number | undefined;
  /** seconds left before the entry expires */
  timeout: number | undefined;
  mark: number | undefined;
  secmark: number | undefined;
  secctx: string | undefined;
  zone: number | undefined;
  use: number | undefined;
  id: number | undefined;
  tcpState: number | undefined;
  sctpState: number | undefined;
  dccpState: number | undefined;
  /** SCTP verification tags of the original and reply direction */
  sctpVtagOrig: number | undefined;
  sctpVtagReply: number | undefined;
  origPackets: number | undefined;
  origBytes: number | undefined;
  replyPackets: number | undefined;
  replyBytes: number | undefined;
  /** kernel timestamps (nf_conntrack_timestamp), ns since the epoch */
  start: bigint | undefined;
  stop: bigint | undefined;
  /** CTA_TIMESTAMP_EVENT: when the kernel generated the event, ns */
  eventTime: bigint | undefined;
  helper: string | undefined;
  /** connection labels bitmap (CTA_LABELS), as the kernel sent it */
  labels: Uint8Array | undefined;
  /** netlink portid of the user-space process that caused the event, 0 = kernel */
  portid: number;
  /** the name of that process, looked up as the event was received (as conntrack's
   * [USERSPACE] progname=): null when no process held the portid's socket any more,
   * undefined when not looked up */
  progname: string | null | undefined;
  /** when conntrail received the event: µs since the epoch */
  recvTime: number;
  /** the kernel generated it after this (µs): when the receive queue was last
   * seen empty before it was read (0: unknown) */
  recvFrom: number;
  /** network namespace it was read from ('' = conntrail's own) */
  netns: string;
  /** that namespace's inode (0 for conntrail's own, or when it could not be read) */
  netnsInode: number;
}

export function emptyTuple(): Tuple {
  return {
    src: '', dst: '', sport: undefined, dport: undefined,
    icmpType: undefined, icmpCode: undefined, icmpId: undefined, zone: undefined,
  };
}

export function emptyEvent(): FlowEvent {
  return {
    type: 'NEW', family: 0, proto: 0, orig: emptyTuple(), reply: emptyTuple(),
    status: undefined, timeout: undefined, mark: undefined, secmark: undefined,
    secctx: undefined, zone: undefined, use: undefined, id: undefined,
    tcpState: undefined, sctpState: undefined, dccpState: undefined, sctpVtagOrig: undefined, sctpVtagReply: undefined,
    origPackets: undefined, origBytes: undefined, replyPackets: undefined,
    replyBytes: undefined, start: undefined, stop: undefined, eventTime: undefined,
    helper: undefined, labels: undefined, portid: 0, progname: undefined, recvTime: 0, recvFrom: 0, netns: '', netnsInode: 0,
  };
}
