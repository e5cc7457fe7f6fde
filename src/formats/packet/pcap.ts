// pcap files of packet logs, in two link types:
//  - RAW (101): the packet from its network header, as ulogd2's PCAP output
//    (package ulogd2-pcap) writes it, byte for byte: the same file header,
//    and each record's original length from the IP header as BASE reads it
//  - NFLOG (239): the NFLOG message itself (nfgenmsg and its attributes), as
//    `tcpdump -i nflog:N -w` writes it, so Wireshark shows the prefix, the
//    interfaces, the mark, the uid... next to the packet
// Little-endian (host order, as both write on x86), microsecond timestamps.
import type { PacketLog } from '../../records/packet.js';
import { ulogdBase } from './ulogd-base.js';

export const LINKTYPE_RAW = 101;
export const LINKTYPE_NFLOG = 239;
export type PcapLinktype = 'raw' | 'nflog';

/** The 24-byte file header. */
export function pcapFileHeader(linktype: PcapLinktype, snaplen = 65536): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(0xa1b2c3d4, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeInt32LE(0, 8); // thiszone: UTC
  b.writeUInt32LE(0, 12); // sigfigs
  b.writeUInt32LE(linktype === 'nflog' ? 262144 : snaplen, 16);
  b.writeUInt32LE(linktype === 'nflog' ? LINKTYPE_NFLOG : LINKTYPE_RAW, 20);
  return b;
}

function record(p: PacketLog, data: Uint8Array, len: number): Buffer {
  const b = Buffer.alloc(16 + data.length);
  const sec = Math.floor(p.time / 1e6);
  b.writeUInt32LE(sec >>> 0, 0);
  b.writeUInt32LE(p.time - sec * 1e6, 4);
  b.writeUInt32LE(data.length, 8);
  b.writeUInt32LE(len >>> 0, 12);
  b.set(data, 16);
  return b;
}

/** One record of link type RAW: the packet, its length as ulogd takes it (IPv4 total length, IPv6 payload + 40). */
export function pcapRecordRaw(p: PacketLog): Buffer {
  let len = p.payload.length;
  if (p.family === 2) len = ulogdBase(p).totlen ?? 0;
  else if (p.family === 10) len = (ulogdBase(p).ip6PayloadLen ?? 0) + 40;
  return record(p, p.payload, len);
}

/** One record of link type NFLOG (the source must keep raw messages: NflogOptions.keepRaw). */
export function pcapRecordNflog(p: PacketLog): Buffer {
  if (!p.raw) throw new Error('pcap (nflog): the packet was read without its raw message');
  return record(p, p.raw, p.raw.length);
}
