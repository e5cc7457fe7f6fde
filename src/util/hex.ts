// Hex text of bytes, from tables (the packet formats print a MAC header and
// a few hex fields per line).
import { LastBytes } from './last.js';

/** "00".."ff" for each byte value */
export const HEX2: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** "00".."FF" for each byte value */
export const HEX2U: readonly string[] = HEX2.map((s) => s.toUpperCase());

// The packets of one link carry the same header again and again: the last
// text is kept with its bytes and given back when they are the same.
const lastMac = new LastBytes<string>();

/** "aa:bb:cc" for b[0, n); a byte past the end of `b` prints as 00 */
export function colonHex(b: Uint8Array, n = b.length): string {
  const cacheable = n <= b.length;
  if (cacheable) {
    const t = lastMac.get(b, 0, n);
    if (t !== undefined) return t;
  }
  let s = n > 0 ? HEX2[b[0] ?? 0] : '';
  for (let i = 1; i < n; i++) s += ':' + HEX2[b[i] ?? 0];
  // flat, so every line that reuses it copies it without walking a rope
  return cacheable ? lastMac.keep(Uint8Array.prototype.slice.call(b, 0, n), flat(s)) : s;
}

/** a string V8 holds in one piece (a concatenation is a tree until it is flattened) */
export function flat(s: string): string {
  // Number() of a non-numeric string flattens it in place and is cheap
  void Number(s);
  return s;
}
