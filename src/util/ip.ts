// IP address text <-> bytes, as inet_ntop/inet_pton do it, and CIDRs.
import { isIPv4, isIPv6 } from 'node:net';

// Recently seen IPv4 addresses keep their text: a flood of events mostly
// repeats a small set of addresses, and building the text is the costly part.
const V4_CACHE_MAX = 1 << 16;
let v4cache = new Map<number, string>();

export function ipv4ToString(b: Uint8Array, o: number): string {
  const key = ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  let s = v4cache.get(key);
  if (s === undefined) {
    s = b[o] + '.' + b[o + 1] + '.' + b[o + 2] + '.' + b[o + 3];
    if (v4cache.size >= V4_CACHE_MAX) v4cache = new Map();
    v4cache.set(key, s);
  }
  return s;
}

/** IPv6 text exactly as glibc's inet_ntop writes it (RFC 5952 style). */
export function ipv6ToString(b: Uint8Array, o: number): string {
  const w = new Array<number>(8);
  for (let i = 0; i < 8; i++) w[i] = (b[o + 2 * i] << 8) | b[o + 2 * i + 1];
  // longest run of zero words (at least 2), first one wins a tie
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (w[i] === 0) {
      if (curBase < 0) { curBase = i; curLen = 1; } else curLen++;
    } else if (curBase >= 0) {
      if (curLen > bestLen) { bestBase = curBase; bestLen = curLen; }
      curBase = -1;
    }
  }
  if (curBase >= 0 && curLen > bestLen) { bestBase = curBase; bestLen = curLen; }
  if (bestLen < 2) bestBase = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    // IPv4-compatible (::a.b.c.d) or IPv4-mapped (::ffff:a.b.c.d)
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      s += ipv4ToString(b, o + 12);
      break;
    }
    s += w[i].toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) s += ':';
  return s;
}

/** Parses an IPv4 or IPv6 address to 4 or 16 bytes; undefined if invalid. */
export function parseIp(text: string): Uint8Array | undefined {
  if (isIPv4(text)) {
    return Uint8Array.from(text.split('.').map((x) => Number(x)));
  }
  if (!isIPv6(text)) return undefined;
  let head = text;
  let v4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) > 0) {
    v4 = text.slice(lastColon + 1).split('.').map((x) => Number(x));
    head = text.slice(0, lastColon + 1) + '0:0';
  }
  const halves = head.split('::');
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((x) => parseInt(x, 16)));
  const left = parse(halves[0]);
  const right = halves.length > 1 ? parse(halves[1]) : [];
  const words = halves.length > 1
    ? [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right]
    : left;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) { out[2 * i] = words[i] >> 8; out[2 * i + 1] = words[i] & 0xff; }
  if (v4.length === 4) out.set(v4, 12);
  return out;
}

export interface Cidr {
  family: 4 | 6;
  /** network address, masked */
  bytes: Uint8Array;
  prefix: number;
  text: string;
}

/** Parses "ADDR" or "ADDR/LEN"; throws a one-line Error naming the input. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const addr = parseIp(addrText);
  if (!addr) throw new Error(`"${text}" is not an IPv4 or IPv6 address or CIDR`);
  const max = addr.length * 8;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      throw new Error(`"${text}": prefix length must be 0..${max}`);
    }
    prefix = Number(p);
  }
  const bytes = new Uint8Array(addr);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] &= (0xff << (8 - bits)) & 0xff;
  }
  return { family: addr.length === 4 ? 4 : 6, bytes, prefix, text };
}

/** Does the textual address `addr` (as decoded) fall in `cidr`? */
export function cidrContains(cidr: Cidr, addr: Uint8Array): boolean {
  if (addr.length !== cidr.bytes.length) return false;
  let bits = cidr.prefix;
  for (let i = 0; i < addr.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((addr[i] & mask) !== cidr.bytes[i]) return false;
  }
  return true;
}
