// An expectation: a connection a conntrack helper (FTP, SIP, ...) expects
// because of one it tracks, its master (`conntrack -L expect`, `-E expect`).
import { emptyTuple, type Tuple } from './event.js';

/** NF_CT_EXPECT_* flags (linux/netfilter/nf_conntrack_common.h) */
export const NF_CT_EXPECT_PERMANENT = 0x1;
export const NF_CT_EXPECT_INACTIVE = 0x2;
export const NF_CT_EXPECT_USERSPACE = 0x4;

export type ExpectEventType = 'NEW' | 'UPDATE' | 'DESTROY' | 'DUMP';

export interface ExpectEvent {
  type: ExpectEventType;
  /** address family of the message: 2 (IPv4) or 10 (IPv6) */
  family: number;
  /** the connection expected: its tuple, and the mask it is matched under */
  expected: Tuple;
  /** layer-4 protocol of the expected tuple */
  proto: number;
  mask: Tuple;
  maskProto: number;
  /** the master's original tuple */
  master: Tuple;
  masterProto: number;
  /** seconds left */
  timeout: number | undefined;
  id: number | undefined;
  helper: string | undefined;
  /** the master's zone (sent when not the default one) */
  zone: number | undefined;
  /** NF_CT_EXPECT_* bits */
  flags: number | undefined;
  class: number | undefined;
  /** the NAT the expected connection gets: the direction and the tuple */
  natDir: number | undefined;
  nat: Tuple | undefined;
  /** the helper's function for it (CTA_EXPECT_FN) */
  fn: string | undefined;
  /** netlink portid of the process that caused it (0: the kernel) */
  portid: number;
  /** when conntrail received it: µs since the epoch */
  recvTime: number;
}

export function emptyExpect(): ExpectEvent {
  return {
    type: 'DUMP', family: 0, expected: emptyTuple(), proto: 0, mask: emptyTuple(), maskProto: 0, master: emptyTuple(), masterProto: 0,
    timeout: undefined, id: undefined, helper: undefined, zone: undefined, flags: undefined, class: undefined,
    natDir: undefined, nat: undefined, fn: undefined, portid: 0, recvTime: 0,
  };
}
