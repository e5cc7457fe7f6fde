/**
 * A JSON string literal in pure ASCII (non-ASCII escaped as \uXXXX), so a
 * line stays one byte per char. With `kernelBytes`, the string holds raw
 * bytes one char each (kernel strings): they are read as UTF-8 first.
 */
export function asciiJsonString(s: string, kernelBytes = false): string {
  const u = kernelBytes ? Buffer.from(s, 'latin1').toString('utf8') : s;
  return JSON.stringify(u).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}
