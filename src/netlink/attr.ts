// The one netlink attribute (nlattr) iterator every decoder uses, and the
// readers for what attributes carry. Zero allocation: a cursor is reused
// for every message (one per nesting depth, owned by the decoder), and
// fields are read straight from the receive buffer.
import { NLA_TYPE_MASK } from './constants.js';

/** Thrown (one shared instance) for an attribute that is not whole or well-formed. */
export class Malformed extends Error {}
export const MALFORMED = new Malformed('malformed');

/**
 * A cursor over the attributes in b[start, end). After each `next()` that
 * returns true: `type` (flags masked off), `nested` (NLA_F_NESTED), the
 * payload at b[p, p + plen), and `end` (= p + plen) for a nest to walk.
 * A length that is short or runs past `end` throws MALFORMED.
 */
export class Nla {
  b: Uint8Array = new Uint8Array(0);
  type = 0;
  nested = false;
  p = 0;
  plen = 0;
  private o = 0;
  private limit = 0;

  /** starts over on b[start, end) */
  reset(b: Uint8Array, start: number, end: number): this {
    this.b = b;
    this.o = start;
    this.limit = end;
    return this;
  }

  next(): boolean {
    const o = this.o;
    if (o + 4 > this.limit) return false;
    const b = this.b;
    const len = b[o] | (b[o + 1] << 8);
    if (len < 4 || o + len > this.limit) throw MALFORMED;
    const t = b[o + 2] | (b[o + 3] << 8);
    this.type = t & NLA_TYPE_MASK;
    this.nested = (t & 0x8000) !== 0;
    this.p = o + 4;
    this.plen = len - 4;
    this.o = o + ((len + 3) & ~3);
    return true;
  }

  get end(): number {
    return this.p + this.plen;
  }

  /** the payload must hold at least n bytes */
  need(n: number): void {
    if (this.plen < n) throw MALFORMED;
  }

  u8(): number { this.need(1); return this.b[this.p]; }
  be16(): number { this.need(2); return be16(this.b, this.p); }
  be32(): number { this.need(4); return be32(this.b, this.p); }
  /** a 64-bit big-endian number as a double (exact up to 2^53) */
  be64n(): number { this.need(8); return be32(this.b, this.p) * 4294967296 + be32(this.b, this.p + 4); }
  be64(): bigint { this.need(8); return be64(this.b, this.p); }
  /** a NUL-terminated (or not) string, one char per byte */
  str(): string { return cstring(this.b, this.p, this.plen); }
  /** a copy of the payload (the receive buffer is reused for the next batch) */
  bytes(): Uint8Array { return copyBytes(this.b, this.p, this.p + this.plen); }
}

export const u16 = (b: Uint8Array, o: number): number => b[o] | (b[o + 1] << 8);
export const u32 = (b: Uint8Array, o: number): number => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
export const be16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
export const be32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

// 64-bit values through a DataView over the (reused) receive buffer: one
// bigint allocation instead of four
let dvBuf: ArrayBufferLike | undefined;
let dv: DataView | undefined;
export function be64(b: Uint8Array, o: number): bigint {
  if (b.buffer !== dvBuf) {
    dvBuf = b.buffer;
    dv = new DataView(b.buffer);
  }
  return dv!.getBigUint64(b.byteOffset + o);
}

/**
 * A copy of b[start, end) that owns its bytes. (`slice` would not do: on a
 * Node Buffer, such as the native receive buffer, it is a view, and the
 * next batch overwrites what it shows.)
 */
export function copyBytes(b: Uint8Array, start: number, end: number): Uint8Array {
  const out = Buffer.allocUnsafe(end - start);
  out.set(b.subarray(start, end));
  return out;
}

/** b[o, o+len) up to the first NUL, one char per byte (printed back byte for byte) */
export function cstring(b: Uint8Array, o: number, len: number): string {
  let end = o;
  const max = o + len;
  while (end < max && b[end] !== 0) end++;
  return Buffer.from(b.buffer, b.byteOffset + o, end - o).toString('latin1');
}
