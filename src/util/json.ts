/** printable ASCII with nothing a JSON string escapes: written as it is, in quotes */
function plainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/**
 * A JSON string literal in pure ASCII (non-ASCII escaped as \uXXXX), so a
 * line stays one byte per char. With `kernelBytes`, the string holds raw
 * bytes one char each (kernel strings): they are read as UTF-8 first.
 */
export function asciiJsonString(s: string, kernelBytes = false): string {
  // most are printable ASCII with nothing to escape: as they are, in quotes
  if (plainAscii(s)) return '"' + s + '"';
  return asciiJson(kernelBytes ? Buffer.from(s, 'latin1').toString('utf8') : s);
}

/** JSON in pure ASCII (non-ASCII escaped as \uXXXX, as asciiJsonString writes strings) */
export function asciiJson(v: unknown): string {
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * A JSON string literal as jansson's json_dumps(…, 0) writes it (ulogd's
 * JSON plugin): UTF-8 as it is, `"` and `\` escaped, control characters as
 * \b \f \n \r \t or \u00XX (upper-case hex). The result is a byte string
 * (one char per byte, as the sinks write lines). With `kernelBytes`, `s`
 * holds raw bytes one char each (kernel strings); undefined when they are
 * not valid UTF-8: jansson refuses such a string, and ulogd then leaves the
 * key out.
 */
export function janssonString(s: string, kernelBytes = false): string | undefined {
  if (plainAscii(s)) return '"' + s + '"';
  let bytes: string;
  if (kernelBytes) {
    try { utf8Strict.decode(Buffer.from(s, 'latin1')); } catch { return undefined; }
    bytes = s;
  } else bytes = Buffer.from(s, 'utf8').toString('latin1');
  let out = '"';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20) out += bytes[i];
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else out += '\\u' + c.toString(16).toUpperCase().padStart(4, '0');
  }
  return out + '"';
}
