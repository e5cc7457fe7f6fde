// connlabel.conf: the names of conntrack's connection labels (bit numbers),
// shared by the conntrack format (-o labels) and the filter (-l).
import { readFileSync } from 'node:fs';
import { UsageError } from './errors.js';

export const CONNLABEL_CONF = '/etc/xtables/connlabel.conf';

/** libnetfilter_conntrack takes bit numbers below this (the kernel keeps 128) */
const MAX_BITS = 1024;
/** it reads the file with fgets into 1,024 bytes: a longer line is read as several */
const LINE_MAX = 1023;

/**
 * The label map of a connlabel.conf's text, read line by line as
 * libnetfilter_conntrack reads it:
 * - a line that begins with `#` is a comment (a `#` later in a line is not);
 * - the bit is a C number (`strtoul` base 0: decimal, `0x` hex, leading `0`
 *   octal; blanks and a sign before it), below 1024; a line without one is
 *   skipped, as is a bit named already;
 * - the name is the rest of the line without the blanks around it (no blank
 *   is needed after the number): letters, digits, `-` and spaces only, else
 *   the line is skipped; a name given already keeps its first bit.
 * Undefined when no line names a label (conntrack then has no map).
 */
export function parseLabelMap(text: string): Map<number, string> | undefined {
  const map = new Map<number, string>();
  const names = new Set<string>();
  for (const line of fgetsLines(text)) {
    if (line[0] === '#') continue;
    const num = strtoul0(line);
    if (num === undefined || num.value >= MAX_BITS || map.has(num.value)) continue;
    const name = trimPosix(line.slice(num.end));
    if (!name || !/^[A-Za-z0-9 -]+$/.test(name) || names.has(name)) continue;
    map.set(num.value, name);
    names.add(name);
  }
  return map.size ? map : undefined;
}

/** The map of a connlabel.conf; undefined if the file cannot be read or names no label. */
export function loadLabelMap(path = CONNLABEL_CONF): Map<number, string> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
  return parseLabelMap(text);
}

/** the strings fgets(buf, 1024) returns: lines with their '\n', cut at 1,023 bytes, each ending at a NUL byte if it holds one */
function* fgetsLines(text: string): Generator<string> {
  let i = 0;
  while (i < text.length) {
    const nl = text.indexOf('\n', i);
    const end = Math.min(nl < 0 ? text.length : nl + 1, i + LINE_MAX);
    const chunk = text.slice(i, end);
    i = end;
    const nul = chunk.indexOf('\0');
    yield nul < 0 ? chunk : chunk.slice(0, nul);
  }
}

const isCSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';

/** strtoul(s, &end, 0) as glibc reads it; undefined where it converts nothing (value 0, end = s); a value that overflows is past any bit */
function strtoul0(s: string): { value: number; end: number } | undefined {
  let i = 0;
  while (i < s.length && isCSpace(s[i])) i++;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') { neg = s[i] === '-'; i++; }
  let base = 10;
  if (s[i] === '0') {
    if ((s[i + 1] === 'x' || s[i + 1] === 'X') && /[0-9a-fA-F]/.test(s[i + 2] ?? '')) { base = 16; i += 2; }
    else base = 8;
  }
  const digit = base === 16 ? /[0-9a-fA-F]/ : base === 8 ? /[0-7]/ : /[0-9]/;
  const start = i;
  let value = 0;
  while (i < s.length && digit.test(s[i])) { value = Math.min(value * base + parseInt(s[i], 16), Number.MAX_SAFE_INTEGER); i++; }
  if (i === start) return undefined;
  // -N is 2^64 - N: past any bit, but -0
  return { value: neg && value !== 0 ? Number.MAX_SAFE_INTEGER : value, end: i };
}

/** libnetfilter_conntrack's trim: POSIX blanks (not '\n') before, the line's end at '\n', blanks after */
function trimPosix(s: string): string {
  const nl = s.indexOf('\n');
  return (nl < 0 ? s : s.slice(0, nl)).replace(/^[ \f\r\t\v]+/, '').replace(/[ \f\r\t\v]+$/, '');
}

/**
 * The map of a connlabel.conf named on the command line or in the config
 * (`what` names it in the error): a file that cannot be read is an error
 * here, not an empty map; one that names no label gives no map, as
 * conntrack's --labelmap.
 */
export function labelMapFile(path: string, what: string): Map<number, string> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch (e) {
    throw new UsageError(`${what}: cannot read "${path}" (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); expected a connlabel.conf ("BIT NAME" lines)`);
  }
  return parseLabelMap(text);
}
