// Printing stored packet logs: an aligned table for a terminal, JSON, or CSV.
import { HOOK_NAMES } from '../sources/nflog/constants.js';
import type { PacketTopRow, StoredPacket } from '../store/packets.js';
import { isoTime } from '../util/time.js';
import { alignedTable, csvCell, hostPort, protoName } from './flowfmt.js';
import { familyName } from '../formats/packet/json.js';

const TCP_FLAGS: Array<[number, string]> = [[0x02, 'SYN'], [0x10, 'ACK'], [0x01, 'FIN'], [0x04, 'RST'], [0x08, 'PSH'], [0x20, 'URG'], [0x40, 'ECE'], [0x80, 'CWR']];

export function hookName(p: StoredPacket): string {
  return p.family === 5 ? 'INGRESS' : HOOK_NAMES[p.hook] ?? String(p.hook);
}


function detail(p: StoredPacket): string {
  if (p.tcpFlags !== null) return TCP_FLAGS.filter(([b]) => p.tcpFlags! & b).map(([, n]) => n).join(',') || '-';
  if (p.icmpType !== null) return `type ${p.icmpType} code ${p.icmpCode ?? 0}`;
  return '-';
}

const HEAD = ['TIME', 'GROUP', 'HOOK', 'PREFIX', 'IN', 'OUT', 'PROTO', 'SOURCE', 'DESTINATION', 'LEN', 'FLAGS'];

function row(p: StoredPacket): string[] {
  const proto = p.proto ?? -1;
  return [isoTime(p.t), String(p.group), hookName(p), JSON.stringify(p.prefix), p.indev ?? '-', p.outdev ?? '-',
    p.proto === null ? '-' : protoName(p.proto), hostPort(p.src, p.sport, proto), hostPort(p.dst, p.dport, proto),
    p.len === null ? '-' : String(p.len), detail(p)];
}

export function packetsTable(ps: StoredPacket[], indent = ''): string {
  const t = alignedTable(HEAD, ps.map(row));
  return indent ? t.split('\n').map((l) => (l ? indent + l : l)).join('\n') : t;
}

export function packetJson(p: StoredPacket, ns: Map<number, string>): Record<string, unknown> {
  return {
    time: isoTime(p.t), time_us: p.t, group: p.group, family: familyName(p.family), hook: hookName(p), prefix: p.prefix,
    in: p.indev, out: p.outdev, proto: p.proto === null ? null : protoName(p.proto), proto_num: p.proto,
    src: p.src, sport: p.sport, dst: p.dst, dport: p.dport, len: p.len,
    tcp_flags: p.tcpFlags === null ? null : TCP_FLAGS.filter(([b]) => p.tcpFlags! & b).map(([, n]) => n),
    icmp_type: p.icmpType, icmp_code: p.icmpCode, mark: p.mark, uid: p.uid, ct_id: p.ctId, netns: ns.get(p.ns) ?? '',
  };
}


export const PACKET_CSV_HEAD = ['time', 'time_us', 'group', 'family', 'hook', 'prefix', 'in', 'out', 'proto', 'src', 'sport', 'dst', 'dport', 'len',
  'tcp_flags', 'icmp_type', 'icmp_code', 'mark', 'uid', 'netns'];

export function packetsCsv(ps: StoredPacket[], ns: Map<number, string>): string {
  const out = [PACKET_CSV_HEAD.join(',')];
  for (const p of ps) {
    out.push([isoTime(p.t), p.t, p.group, familyName(p.family), hookName(p), p.prefix, p.indev, p.outdev, p.proto === null ? '' : protoName(p.proto),
      p.src, p.sport, p.dst, p.dport, p.len, p.tcpFlags === null ? '' : detail(p).replace(/,/g, ' '), p.icmpType, p.icmpCode, p.mark, p.uid,
      ns.get(p.ns) ?? ''].map(csvCell).join(','));
  }
  return out.join('\n') + '\n';
}

export function packetTopTable(rows: PacketTopRow[], key: string): string {
  return alignedTable([key.toUpperCase(), 'PACKETS', 'BYTES'], rows.map((r) => [r.key, String(r.packets), String(r.bytes)]));
}

export function packetTopCsv(rows: PacketTopRow[], key: string): string {
  return [`${key},packets,bytes`, ...rows.map((r) => [r.key, r.packets, r.bytes].map(csvCell).join(','))].join('\n') + '\n';
}
