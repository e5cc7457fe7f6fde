// Builds NFLOG packet messages and packets by hand, for decoder tests.
import * as C from '../../src/sources/nflog/constants.js';

export function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}
export const nest = (type: number, ...attrs: Buffer[]) => attr(type | 0x8000, Buffer.concat(attrs));
export const be16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
export const be32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };

export interface MsgOpts {
  family?: number; group?: number; hwProtocol?: number; hook?: number; prefix?: string; mark?: number;
  time?: [number, number]; indev?: number; outdev?: number; uid?: number; gid?: number; seq?: number; seqGlobal?: number;
  hwaddr?: number[]; hwtype?: number; hwheader?: Buffer; vlan?: [number, number]; extra?: Buffer[];
}

/** One NFULNL_MSG_PACKET message carrying `payload`. */
export function nflogMessage(payload: Buffer | undefined, o: MsgOpts = {}): Buffer {
  const attrs: Buffer[] = [];
  const hdr = Buffer.alloc(4);
  hdr.writeUInt16BE(o.hwProtocol ?? 0x0800, 0);
  hdr.writeUInt8(o.hook ?? 2, 2);
  attrs.push(attr(C.NFULA_PACKET_HDR, hdr));
  if (o.mark !== undefined) attrs.push(attr(C.NFULA_MARK, be32(o.mark)));
  if (o.time) {
    const t = Buffer.alloc(16);
    t.writeBigUInt64BE(BigInt(o.time[0]), 0);
    t.writeBigUInt64BE(BigInt(o.time[1]), 8);
    attrs.push(attr(C.NFULA_TIMESTAMP, t));
  }
  if (o.indev !== undefined) attrs.push(attr(C.NFULA_IFINDEX_INDEV, be32(o.indev)));
  if (o.outdev !== undefined) attrs.push(attr(C.NFULA_IFINDEX_OUTDEV, be32(o.outdev)));
  if (o.hwaddr) {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(o.hwaddr.length, 0);
    Buffer.from(o.hwaddr).copy(h, 4);
    attrs.push(attr(C.NFULA_HWADDR, h));
  }
  if (o.hwtype !== undefined) attrs.push(attr(C.NFULA_HWTYPE, be16(o.hwtype)));
  if (o.hwheader) { attrs.push(attr(C.NFULA_HWHEADER, o.hwheader)); attrs.push(attr(C.NFULA_HWLEN, be16(o.hwheader.length))); }
  if (o.prefix !== undefined) attrs.push(attr(C.NFULA_PREFIX, Buffer.from(o.prefix + '\0', 'latin1')));
  if (o.uid !== undefined) attrs.push(attr(C.NFULA_UID, be32(o.uid)));
  if (o.gid !== undefined) attrs.push(attr(C.NFULA_GID, be32(o.gid)));
  if (o.seq !== undefined) attrs.push(attr(C.NFULA_SEQ, be32(o.seq)));
  if (o.seqGlobal !== undefined) attrs.push(attr(C.NFULA_SEQ_GLOBAL, be32(o.seqGlobal)));
  if (o.vlan) attrs.push(nest(C.NFULA_VLAN, attr(C.NFULA_VLAN_PROTO, be16(o.vlan[0])), attr(C.NFULA_VLAN_TCI, be16(o.vlan[1]))));
  if (payload) attrs.push(attr(C.NFULA_PAYLOAD, payload));
  for (const e of o.extra ?? []) attrs.push(e);
  const body = Buffer.concat(attrs);
  const b = Buffer.alloc(16 + 4 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(C.NFLOG_PACKET, 4);
  b.writeUInt8(o.family ?? 2, 16);
  b.writeUInt16BE(o.group ?? 32, 18);
  body.copy(b, 20);
  return b;
}

function csum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length & 1) s += b[b.length - 1] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

export interface V4 { src?: string; dst?: string; proto: number; tos?: number; ttl?: number; id?: number; frag?: number; options?: Buffer; totalLen?: number }
export function ipv4(h: V4, l4: Buffer): Buffer {
  const opt = h.options ?? Buffer.alloc(0);
  const ihl = 20 + opt.length;
  const b = Buffer.alloc(ihl + l4.length);
  b[0] = 0x40 | (ihl / 4);
  b[1] = h.tos ?? 0;
  b.writeUInt16BE(h.totalLen ?? b.length, 2);
  b.writeUInt16BE(h.id ?? 0x1234, 4);
  b.writeUInt16BE(h.frag ?? 0x4000, 6);
  b[8] = h.ttl ?? 64;
  b[9] = h.proto;
  Buffer.from((h.src ?? '10.0.0.1').split('.').map(Number)).copy(b, 12);
  Buffer.from((h.dst ?? '10.0.0.2').split('.').map(Number)).copy(b, 16);
  opt.copy(b, 20);
  b.writeUInt16BE(csum(b.subarray(0, ihl)), 10);
  l4.copy(b, ihl);
  return b;
}

function v6bytes(a: string): Buffer {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const hw = head ? head.split(':') : [];
  const tw = tail !== undefined && tail ? tail.split(':') : [];
  const words = [...hw, ...Array(8 - hw.length - tw.length).fill('0'), ...tw];
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(parseInt(w, 16), i * 2));
  return b;
}

export interface V6 { src?: string; dst?: string; next: number; tc?: number; flow?: number; hop?: number }
export function ipv6(h: V6, rest: Buffer): Buffer {
  const b = Buffer.alloc(40 + rest.length);
  b.writeUInt32BE(((6 << 28) | ((h.tc ?? 0) << 20) | (h.flow ?? 0)) >>> 0, 0);
  b.writeUInt16BE(rest.length, 4);
  b[6] = h.next;
  b[7] = h.hop ?? 64;
  v6bytes(h.src ?? 'fd00::1').copy(b, 8);
  v6bytes(h.dst ?? 'fd00::2').copy(b, 24);
  rest.copy(b, 40);
  return b;
}

export interface Tcp { sport: number; dport: number; seq?: number; ack?: number; flags: number; win?: number; urg?: number; res?: number; options?: Buffer; data?: Buffer }
export function tcp(t: Tcp): Buffer {
  const opt = t.options ?? Buffer.alloc(0);
  const hl = 20 + opt.length;
  const b = Buffer.alloc(hl + (t.data?.length ?? 0));
  b.writeUInt16BE(t.sport, 0);
  b.writeUInt16BE(t.dport, 2);
  b.writeUInt32BE(t.seq ?? 1000, 4);
  b.writeUInt32BE(t.ack ?? 0, 8);
  b[12] = ((hl / 4) << 4) | (t.res ?? 0);
  b[13] = t.flags;
  b.writeUInt16BE(t.win ?? 64240, 14);
  b.writeUInt16BE(t.urg ?? 0, 18);
  opt.copy(b, 20);
  t.data?.copy(b, hl);
  return b;
}

export function udp(sport: number, dport: number, data = Buffer.alloc(4)): Buffer {
  const b = Buffer.alloc(8 + data.length);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt16BE(b.length, 4);
  data.copy(b, 8);
  return b;
}

export function icmp(type: number, code: number, rest: Buffer = Buffer.alloc(4)): Buffer {
  const b = Buffer.alloc(4 + rest.length);
  b[0] = type;
  b[1] = code;
  rest.copy(b, 4);
  return b;
}
