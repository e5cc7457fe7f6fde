// Time text helpers.
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => (n < 10 ? '0' + n : String(n));

let ctimeSec = NaN;
let ctimeText = '';
/** ctime(3) without the newline, local time: "Mon Nov 23 19:39:37 2026" (the last second's text is kept: lines come many to a second) */
export function ctime(epochSec: number): string {
  if (epochSec === ctimeSec) return ctimeText;
  const d = new Date(epochSec * 1000);
  const day = d.getDate();
  ctimeText = DAYS[d.getDay()] + ' ' + MONTHS[d.getMonth()] + ' ' + (day < 10 ? ' ' + day : String(day)) + ' ' +
    p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds()) + ' ' + d.getFullYear();
  ctimeSec = epochSec;
  return ctimeText;
}

const secPrefix = new Map<number, string>();
/** "YYYY-MM-DDTHH:MM:SS." for an epoch second, from a small cache */
export function isoPrefix(sec: number): string {
  let p = secPrefix.get(sec);
  if (p === undefined) {
    if (secPrefix.size > 4096) secPrefix.clear();
    p = new Date(sec * 1000).toISOString().slice(0, 19) + '.';
    secPrefix.set(sec, p);
  }
  return p;
}

/** ISO 8601 UTC with microseconds: 2026-11-23T19:39:37.123456Z */
export function isoMicros(us: number): string {
  const sec = Math.floor(us / 1e6);
  return isoPrefix(sec) + String(us - sec * 1e6).padStart(6, '0') + 'Z';
}

/** ISO 8601 UTC with nanoseconds from a ns bigint. */
export function isoNanos(ns: bigint): string {
  const sec = ns / 1000000000n;
  const frac = Number(ns - sec * 1000000000n);
  return isoPrefix(Number(sec)) + String(frac).padStart(9, '0') + 'Z';
}

/** Current time in µs since the epoch. */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Python's repr() of a float (what VyOS's logger prints for delta=). */
export function pyFloatRepr(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const e = Math.abs(x).toExponential(); // shortest round-trip digits
  const [mant, expText] = e.split('e');
  const digits = mant.replace('.', '');
  const exp = Number(expText);
  const decpt = exp + 1; // x = 0.DIGITS * 10^decpt
  if (decpt <= -4 || decpt > 16) {
    const m = digits.length > 1 ? digits[0] + '.' + digits.slice(1) : digits;
    const ae = Math.abs(exp);
    return sign + m + 'e' + (exp < 0 ? '-' : '+') + (ae < 10 ? '0' + ae : String(ae));
  }
  if (decpt <= 0) return sign + '0.' + '0'.repeat(-decpt) + digits;
  if (decpt >= digits.length) return sign + digits + '0'.repeat(decpt - digits.length) + '.0';
  return sign + digits.slice(0, decpt) + '.' + digits.slice(decpt);
}

const UNIT_MS: Record<string, number> = { us: 0.001, 'µs': 0.001, ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000 };
/** the longest duration accepted anywhere: 100 years */
export const MAX_DURATION_MS = 36500 * 86400000;

/** "90d", "12h", "30m", "45s", "500ms", "2w" -> ms; throws naming the text. */
export function parseDuration(text: string): number {
  return Math.round(parseDurationMicros(text) / 1000);
}

/** "90d", "1.5s", "250us" -> µs (at most 100 years); throws naming the text. */
export function parseDurationMicros(text: string): number {
  const m = /^(\d{1,15}(?:\.\d{1,9})?)(us|µs|ms|s|m|h|d|w)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration (a number and one of us, ms, s, m, h, d, w: "90d", "10m", "30s", "5ms")`);
  const ms = Number(m[1]) * UNIT_MS[m[2]];
  if (ms > MAX_DURATION_MS) throw new Error(`"${text}" is longer than 100 years`);
  return Math.round(ms * 1000);
}

/** The times conntrail accepts: 1970 to 2200 (µs since the epoch stay exact integers). */
export const TIME_MIN_US = 0;
export const TIME_MAX_US = Date.UTC(2200, 0, 1) * 1000;

/** A time as the user wrote it: the interval it means, in µs, `hi` excluded. */
export interface TimeInterval { lo: number; hi: number }

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * A time for the command line, at the precision it was written: ISO 8601
 * ("2026-11-23T14:05:09Z" is that whole second, "…:09.250Z" that
 * millisecond, "2026-11-23 14:05" that minute in local time, a date alone
 * that day), epoch seconds ("@1795000000", "@1795000000.123456"), "now" or
 * "now-10m" / "-10m" (that long ago: an instant). Throws naming the text.
 */
export function parseTimeInterval(text: string, nowUs = Date.now() * 1000): TimeInterval {
  const t = text.trim();
  const bad = () => new Error(`"${text}" is not a time (ISO 8601 like "2026-11-23T14:05:09Z" or "2026-11-23 14:05:09", "@EPOCH_SECONDS", "now" or "-10m")`);
  let iv: TimeInterval | undefined;
  if (t === 'now') iv = { lo: nowUs, hi: nowUs + 1 };
  const rel = /^(?:now)?-(.+)$/.exec(t);
  if (!iv && rel) {
    let d: number | undefined;
    try { d = parseDurationMicros(rel[1]); } catch { /* not a duration: the error below */ }
    if (d !== undefined) iv = { lo: nowUs - d, hi: nowUs - d + 1 };
  }
  const epoch = /^@(\d{1,13})(?:\.(\d{1,9}))?$/.exec(t);
  if (!iv && epoch) iv = withFraction(Number(epoch[1]) * 1e6, epoch[2], 1e6);
  const m = iv ? null : ISO.exec(t);
  if (m) {
    const [, y, mo, d, hh, mi, ss, frac, zone] = m;
    const local = zone === undefined;
    const base = (Y: number, M: number, D: number, h = 0, mn = 0, sc = 0) => {
      const ms = local ? new Date(Y, M - 1, D, h, mn, sc).getTime() : Date.UTC(Y, M - 1, D, h, mn, sc) - zoneOffsetMs(zone!);
      return ms * 1000;
    };
    const Y = Number(y);
    const M = Number(mo);
    const D = Number(d);
    if (M < 1 || M > 12 || D < 1 || D > 31 || (hh !== undefined && (Number(hh) > 23 || Number(mi) > 59)) || (ss !== undefined && Number(ss) > 59)) throw bad();
    // the date must exist (no 31 February)
    const check = new Date(Date.UTC(Y, M - 1, D));
    if (check.getUTCMonth() !== M - 1) throw bad();
    if (hh === undefined) iv = { lo: base(Y, M, D), hi: base(Y, M, D + 1) };
    else if (ss === undefined) iv = { lo: base(Y, M, D, Number(hh), Number(mi)), hi: base(Y, M, D, Number(hh), Number(mi) + 1) };
    else iv = withFraction(base(Y, M, D, Number(hh), Number(mi), Number(ss)), frac, 1e6);
  }
  if (!iv || !Number.isFinite(iv.lo) || !Number.isFinite(iv.hi)) throw bad();
  if (iv.lo < TIME_MIN_US || iv.hi > TIME_MAX_US) throw new Error(`"${text}" is outside 1970-01-01 to 2200-01-01`);
  return iv;
}

/** `unitUs` from a whole unit plus decimal digits: the interval those digits pin down */
function withFraction(baseUs: number, frac: string | undefined, unitUs: number): TimeInterval {
  if (frac === undefined) return { lo: baseUs, hi: baseUs + unitUs };
  const scale = 10 ** frac.length;
  const step = unitUs / scale;
  const lo = baseUs + Number(frac) * step;
  // more digits than µs: the µs that contains it
  return step >= 1 ? { lo, hi: lo + step } : { lo: Math.floor(lo), hi: Math.floor(lo) + 1 };
}

function zoneOffsetMs(zone: string): number {
  if (zone === 'Z') return 0;
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) * 60000;
}

/** The start of the time the text means (µs). */
export function parseTime(text: string, nowUs = Date.now() * 1000): number {
  return parseTimeInterval(text, nowUs).lo;
}

/** ms since the epoch as ISO 8601 UTC with milliseconds */
export function isoMillis(ms: number): string {
  return new Date(ms).toISOString();
}

// the text of the last few seconds formatted (a flow's times, and the next
// flow's, mostly fall in the same few seconds)
const isoSec = new Float64Array(8).fill(-1);
const isoHead: string[] = new Array<string>(8).fill('');

/** µs since the epoch as ISO 8601 UTC, with as many decimals as it needs (0, 3 or 6) */
export function isoTime(us: number): string {
  const sec = Math.floor(us / 1e6);
  const frac = us - sec * 1e6;
  const slot = sec & 7;
  let head: string;
  if (isoSec[slot] === sec) head = isoHead[slot];
  else {
    head = new Date(sec * 1000).toISOString().slice(0, 19);
    isoSec[slot] = sec;
    isoHead[slot] = head;
  }
  if (frac === 0) return head + 'Z';
  if (frac % 1000 === 0) return `${head}.${String(frac / 1000).padStart(3, '0')}Z`;
  return `${head}.${String(frac).padStart(6, '0')}Z`;
}

/**
 * The zone suffix ulogd 2.0.8's JSON plugin puts after a local time: none
 * at offset 0, else "+HHMM" for an offset east of UTC and "-HHMM" otherwise
 * (its sign test is `tm_gmtoff > 0`).
 */
export function ulogdZoneSuffix(d: Date): string {
  const off = -d.getTimezoneOffset() * 60;
  if (off === 0) return '';
  const a = Math.abs(off);
  const p2 = (n: number) => (n < 10 ? '0' + n : String(n));
  return (off > 0 ? '+' : '-') + p2(Math.floor(a / 3600)) + p2(Math.floor(a / 60) % 60);
}
