// The pcap sink: the packet logs of NFLOG sources as a pcap file, in link
// type RAW (byte for byte ulogd2's PCAP output) or NFLOG (as `tcpdump -i
// nflog:N`), with the file sink's queue, writes, rotation and reopen on
// SIGHUP. A record sink: it takes the packets themselves, not lines. A file
// that exists is appended to when it is a pcap file of the same link type
// (as ulogd does); a new file, or a rotated one, starts with the header.
import { readSync } from 'node:fs';
import type { Kind, RecordOf } from '../records/index.js';
import type { PacketLog } from '../records/packet.js';
import { LINKTYPE_NFLOG, LINKTYPE_RAW, pcapFileHeader, pcapRecordNflog, pcapRecordRaw, type PcapLinktype } from '../formats/packet/pcap.js';
import { FileSink } from './file.js';
import { FILE_SINK_PROPS } from './file.js';

/** The keys of a pcap sink (with those of every sink but the format's). */
export const PCAP_SINK_PROPS = {
  path: { type: 'string', minLength: 1, description: 'pcap: the file to write (appended to if it is a pcap file of the same link type; created with `mode`; reopened on SIGHUP); its directory must exist.' },
  linktype: { enum: ['raw', 'nflog'], default: 'raw', description: 'pcap: `raw` (link type 101: the packet from its IP header, as ulogd2\'s PCAP output) or `nflog` (link type 239: the whole NFLOG message, prefix, interfaces and mark included, as `tcpdump -i nflog:N`).' },
  mode: FILE_SINK_PROPS.mode,
  fsync: FILE_SINK_PROPS.fsync,
  rotate_size: FILE_SINK_PROPS.rotate_size,
  rotate_keep: FILE_SINK_PROPS.rotate_keep,
} as const;

export interface PcapSinkOptions {
  name: string;
  path: string;
  linktype: PcapLinktype;
  mode?: number;
  fsync?: 'never' | 'batch';
  rotateSize?: number;
  rotateKeep?: number;
  queueSize: number;
  whenFull: 'block' | 'drop';
  warn: (msg: string) => void;
}

export class PcapSink extends FileSink {
  readonly takes = 'records' as const;
  private readonly encode: (p: PacketLog) => Buffer;

  constructor(o: PcapSinkOptions) {
    const want = o.linktype === 'nflog' ? LINKTYPE_NFLOG : LINKTYPE_RAW;
    super({
      name: o.name, target: o.path, mode: o.mode, fsync: o.fsync, rotateSize: o.rotateSize, rotateKeep: o.rotateKeep,
      queueSize: o.queueSize, whenFull: o.whenFull, warn: o.warn, header: pcapFileHeader(o.linktype),
      checkExisting: (fd, size) => {
        const h = Buffer.alloc(24);
        const n = size >= 24 ? readSync(fd, h, 0, 24, 0) : 0;
        if (n < 24 || h.readUInt32LE(0) !== 0xa1b2c3d4) throw new Error(`${o.path} exists and is not a pcap file (microsecond, little-endian); not appending to it`);
        const lt = h.readUInt32LE(20);
        if (lt !== want) throw new Error(`${o.path} is a pcap file of link type ${lt}, not ${want} (${o.linktype}); not appending to it`);
      },
    });
    this.encode = o.linktype === 'nflog' ? pcapRecordNflog : pcapRecordRaw;
  }

  override push(_line: string, rec?: RecordOf[Kind], kind?: Kind): void {
    if (kind !== 'packet' || !rec) return;
    this.pushBytes(this.encode(rec as PacketLog));
  }
}
