// Hex text of bytes, from tables (the packet formats print a MAC header and
// a few hex fields per line).

/** "00".."ff" for each byte value */
export const HEX2: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** "00".."FF" for each byte value */
export const HEX2U: readonly string[] = HEX2.map((s) => s.toUpperCase());

// The packets of one link carry the same header again and again: the last
// text is kept with its bytes and given back when they are the same.
const lastBytes = new Uint8Array(64);
let lastLen = -1;
let lastText = '';

/** "aa:bb:cc" for b[0, n); a byte past the end of `b` prints as 00 */
export function colonHex(b: Uint8Array, n = b.length): string {
  const cacheable = n <= b.length && n <= lastBytes.length;
  if (cacheable && n === lastLen) {
    let i = 0;
    while (i < n && b[i] === lastBytes[i]) i++;
    if (i === n) return lastText;
  }
  let s = n > 0 ? HEX2[b[0] ?? 0] : '';
  for (let i = 1; i < n; i++) s += ':' + HEX2[b[i] ?? 0];
  if (cacheable) {
    lastBytes.set(b.subarray(0, n));
    lastLen = n;
    // flat, so every line that reuses it copies it without walking a rope
    lastText = flat(s);
  }
  return s;
}

/** a string V8 holds in one piece (a concatenation is a tree until it is flattened) */
export function flat(s: string): string {
  // Number() of a non-numeric string flattens it in place and is cheap
  void Number(s);
  return s;
}
