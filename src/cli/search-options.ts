// Option values shared by the commands that search the store (flows, packets, tcpstates, aggregates).
import { parseCidr, type Cidr } from '../util/ip.js';
import { parseTimeInterval } from '../util/time.js';
import { UsageError } from '../util/errors.js';
import { list } from '../util/args.js';
import { parseProto } from '../sources/conntrack/filter.js';

export const cidrList = (vals: string[] | undefined, opt: string): Cidr[] => list(vals, opt).map((v) => {
  try { return parseCidr(v); } catch (e) { throw new UsageError(`${opt}: ${(e as Error).message}`); }
});

/** --since from the start of the time given, --until to its end ("--until 2026-11-23": that whole day) */
export function timeOpt(v: string | undefined, opt: string, dflt: number, end: boolean): number {
  if (v === undefined) return dflt;
  try { const iv = parseTimeInterval(v); return end ? iv.hi - 1 : iv.lo; } catch (e) { throw new UsageError(`${opt}: ${(e as Error).message}`); }
}

export function intOpt(v: string | undefined, opt: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) > max) throw new UsageError(`${opt}: "${v}" is not an integer from 0 to ${max}`);
  return Number(v);
}

/** ports, each once */
export function portList(vals: string[] | undefined, opt: string, max: number): number[] {
  const ports = [...new Set(list(vals, opt).map((p) => {
    if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) throw new UsageError(`${opt}: "${p}" is not a port (0-65535)`);
    return Number(p);
  }))];
  if (ports.length > max) throw new UsageError(`${opt}: ${ports.length} ports, at most ${max}`);
  return ports;
}

/** --since and --until: the time searched (default: all of it, to a day from now) */
export function searchWindow(o: { since?: string; until?: string }): { since: number; until: number } {
  const since = timeOpt(o.since, '--since', 0, false);
  const until = timeOpt(o.until, '--until', (Date.now() + 86400000) * 1000, true);
  if (since > until) throw new UsageError('--since is after --until');
  return { since, until };
}

/** --proto: protocols by name or number, each once */
export function protoList(vals: string[] | undefined): number[] {
  return [...new Set(list(vals, '--proto').map((p) => parseProto(p, '--proto')))];
}
