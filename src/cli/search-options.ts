// Option values shared by the commands that search the store (flows, packets).
import { parseCidr, type Cidr } from '../util/ip.js';
import { parseTimeInterval } from '../util/time.js';
import { UsageError } from '../util/errors.js';
import { list } from '../util/args.js';

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
