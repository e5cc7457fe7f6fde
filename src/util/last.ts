// The last bytes seen, and what was made of them: the packets of one rule
// and link carry the same prefix, MAC header and address again and again,
// so the decoder and the formats keep the last result and give it back
// while the same bytes come.

export class LastBytes<T> {
  private bytes: Uint8Array | undefined;
  private value: T | undefined;

  /** what was kept with bytes equal to b[o, o+n), or undefined */
  get(b: Uint8Array, o: number, n: number): T | undefined {
    const last = this.bytes;
    if (last === undefined || last.length !== n) return undefined;
    for (let i = 0; i < n; i++) if (b[o + i] !== last[i]) return undefined;
    return this.value;
  }

  /** keeps `value` for `bytes` (a copy of the caller's own, not changed afterwards); returns value */
  keep(bytes: Uint8Array, value: T): T {
    this.bytes = bytes;
    this.value = value;
    return value;
  }
}
