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
