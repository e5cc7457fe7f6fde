/**
 * A JSON string literal in pure ASCII (non-ASCII escaped as \uXXXX), so a
 * line stays one byte per char. With `kernelBytes`, the string holds raw
 * bytes one char each (kernel strings): they are read as UTF-8 first.
 */
export function asciiJsonString(s: string, kernelBytes = false): string {
  // most are printable ASCII with nothing to escape: as they are, in quotes
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) { plain = false; break; }
  }
  if (plain) return '"' + s + '"';
  const u = kernelBytes ? Buffer.from(s, 'latin1').toString('utf8') : s;
  return JSON.stringify(u).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}
