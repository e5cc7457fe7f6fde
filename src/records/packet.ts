// The packet log: one packet an NFLOG rule handed to user space (nftables
// `log group N`, iptables `-j NFLOG`), with what the kernel said about it
// and what its headers say. Plain data: the source fills it, formats and
// sinks read it.
import type { FlowEvent } from './event.js';

export interface PacketLog {
  /** network namespace it was read from ('' = conntrail's own) */
  netns: string;
  /** that namespace's inode (0 for conntrail's own, or when it could not be read) */
  netnsInode: number;
  /** the NFLOG group */
  group: number;
  /** the rule's family (nfgenmsg): 2 IPv4, 10 IPv6, 7 bridge, 3 ARP, 0 (netdev) ... */
  family: number;
  /** link-layer protocol of the packet (EtherType, NFULA_PACKET_HDR) */
  hwProtocol: number;
  /** netfilter hook: 0 PREROUTING, 1 INPUT, 2 FORWARD, 3 OUTPUT, 4 POSTROUTING (ingress: 0 in netdev) */
  hook: number;
  /** the rule's log prefix ('' if none) */
  prefix: string;
  mark: number | undefined;
  /** µs since the epoch: the kernel's packet timestamp if it sent one, else when it was read */
  time: number;
  /** `time` came from the kernel (NFULA_TIMESTAMP) */
  kernelTime: boolean;
  /** interface indexes (0: none) and their names in the packet's namespace ('' unknown) */
  indev: number;
  outdev: number;
  physindev: number;
  physoutdev: number;
  indevName: string;
  outdevName: string;
  physindevName: string;
  physoutdevName: string;
  /** NFULA_HWADDR: the source hardware address */
  hwAddr: Uint8Array | undefined;
  /** NFULA_HWTYPE (ARPHRD_*), NFULA_HWHEADER (the link-layer header), NFULA_HWLEN */
  hwType: number | undefined;
  hwHeader: Uint8Array | undefined;
  hwLen: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  /** per-group and global sequence numbers (NFULNL_CFG_F_SEQ, _SEQ_GLOBAL) */
  seq: number | undefined;
  seqGlobal: number | undefined;
  vlanProto: number | undefined;
  vlanTci: number | undefined;
  /** NFULA_L2HDR (bridge family) */
  l2hdr: Uint8Array | undefined;
  /** the packet's conntrack entry (NFULNL_CFG_F_CONNTRACK) and its ctinfo */
  ct: FlowEvent | undefined;
  ctInfo: number | undefined;
  /** the packet as copied, from the network header (copy range may cut it) */
  payload: Uint8Array;
  /** the message as the kernel sent it, from its nfgenmsg on (kept only when asked: pcap with link type NFLOG) */
  raw: Uint8Array | undefined;

  // ---- decoded from `payload` (see sources/nflog/packet.ts) ----
  /** 4, 6, or 0 when the payload is not IP */
  ipVersion: number;
  /** addresses, inet_ntop form ('' when not IP) */
  src: string;
  dst: string;
  /** IPv4 total length / IPv6 payload length + 40 */
  ipLen: number;
  /** IPv4 TOS / IPv6 traffic class */
  tos: number;
  /** IPv4 TTL / IPv6 hop limit */
  ttl: number;
  /** IPv4 identification / IPv6 fragment header id (undefined: no fragment header) */
  ipId: number | undefined;
  /** IPv4 header length in bytes (0 for IPv6) */
  ihl: number;
  /** IPv4 flags bits of the frag_off word: 0x8000 CE(reserved), 0x4000 DF, 0x2000 MF; IPv6: 0x2000 M */
  ipFlags: number;
  /** fragment offset in bytes (0: first or not a fragment) */
  fragOff: number;
  /** IPv6 flow label */
  flowLabel: number;
  /** the transport protocol (after IPv6 extension headers), -1 when unknown */
  proto: number;
  /** offset of the transport header in `payload`, -1 if absent (a later fragment, cut, not IP) */
  l4Off: number;
  /** ports (TCP, UDP, UDP-Lite, SCTP, DCCP) */
  sport: number | undefined;
  dport: number | undefined;
  /** TCP: flag byte (FIN 0x01 … CWR 0x80), reserved bits, seq, ack, window, urgent pointer, header length */
  tcpFlags: number | undefined;
  tcpRes: number | undefined;
  tcpSeq: number | undefined;
  tcpAck: number | undefined;
  tcpWindow: number | undefined;
  tcpUrgp: number | undefined;
  tcpHdrLen: number | undefined;
  /** ICMP / ICMPv6 type and code; echo id and sequence */
  icmpType: number | undefined;
  icmpCode: number | undefined;
  icmpId: number | undefined;
  icmpSeq: number | undefined;
  /** the payload ends before the headers it claims (counted, still logged) */
  truncated: boolean;
}

export function emptyPacket(): PacketLog {
  return {
    netns: '', netnsInode: 0, group: 0, family: 0, hwProtocol: 0, hook: 0, prefix: '', mark: undefined,
    time: 0, kernelTime: false, indev: 0, outdev: 0, physindev: 0, physoutdev: 0,
    indevName: '', outdevName: '', physindevName: '', physoutdevName: '',
    hwAddr: undefined, hwType: undefined, hwHeader: undefined, hwLen: undefined,
    uid: undefined, gid: undefined, seq: undefined, seqGlobal: undefined,
    vlanProto: undefined, vlanTci: undefined, l2hdr: undefined, ct: undefined, ctInfo: undefined,
    payload: EMPTY, raw: undefined,
    ipVersion: 0, src: '', dst: '', ipLen: 0, tos: 0, ttl: 0, ipId: undefined, ihl: 0,
    ipFlags: 0, fragOff: 0, flowLabel: 0, proto: -1, l4Off: -1,
    sport: undefined, dport: undefined, tcpFlags: undefined, tcpRes: undefined, tcpSeq: undefined,
    tcpAck: undefined, tcpWindow: undefined, tcpUrgp: undefined, tcpHdrLen: undefined,
    icmpType: undefined, icmpCode: undefined, icmpId: undefined, icmpSeq: undefined,
    truncated: false,
  };
}

const EMPTY = new Uint8Array(0);
