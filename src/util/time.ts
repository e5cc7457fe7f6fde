// Time text helpers.
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => (n < 10 ? '0' + n : String(n));

/** ctime(3) without the newline, local time: "Mon Nov 23 19:39:37 2026" */
export function ctime(epochSec: number): string {
  const d = new Date(epochSec * 1000);
  const day = d.getDate();
  return DAYS[d.getDay()] + ' ' + MONTHS[d.getMonth()] + ' ' + (day < 10 ? ' ' + day : String(day)) + ' ' +
    p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds()) + ' ' + d.getFullYear();
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

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000 };

/** "90d", "12h", "30m", "45s", "500ms", "2w" -> ms; throws naming the text. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration (a number and one of ms, s, m, h, d, w: "90d", "10m", "30s")`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2]]);
}

/**
 * A point in time for the command line, in ms since the epoch: ISO 8601
 * ("2026-11-23T14:05:09Z", "2026-11-23 14:05:09.250" in local time, a date
 * alone), epoch seconds ("@1795000000.5"), "now", or "now-10m" / "-10m"
 * (that long ago). Throws naming the text.
 */
export function parseTime(text: string, now = Date.now()): number {
  const t = text.trim();
  if (t === 'now') return now;
  const rel = /^(?:now)?-(.+)$/.exec(t);
  if (rel) {
    try { return now - parseDuration(rel[1]); } catch { /* fall through to the error below */ }
  }
  const epoch = /^@(\d+(?:\.\d+)?)$/.exec(t);
  if (epoch) return Math.round(Number(epoch[1]) * 1000);
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(t)) {
    // a date alone is local midnight (Date would read it as UTC)
    const s = /^\d{4}-\d{2}-\d{2}$/.test(t) ? t + 'T00:00:00' : t.replace(' ', 'T');
    const ms = Date.parse(s.replace(/(\.\d{3})\d+/, '$1'));
    if (!Number.isNaN(ms)) return ms;
  }
  throw new Error(`"${text}" is not a time (ISO 8601 like "2026-11-23T14:05:09Z" or "2026-11-23 14:05:09", "@EPOCH_SECONDS", "now" or "-10m")`);
}

/** ms since the epoch as ISO 8601 UTC with milliseconds */
export function isoMillis(ms: number): string {
  return new Date(ms).toISOString();
}
