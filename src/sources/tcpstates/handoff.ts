// A tcpstates source replaced at a SIGHUP hands over to the new one: both
// programs are attached for a moment, so the changes both record are kept
// once. Each old source recorded what its filter takes up to the time it was
// detached, and the few it recorded in the microseconds after (its tail);
// the new one keeps the rest.
import type { TcpStateChange } from '../../records/tcpstate.js';
import type { TcpstatesSourceConfig } from './schema.js';
import { netnsInode } from './source.js';

/** what a source's filter (its keys) takes, as the program decides it */
export function tcpstatesFilter(c: TcpstatesSourceConfig): (r: TcpStateChange) => boolean {
  const family = c.family === 'ipv4' ? 2 : c.family === 'ipv6' ? 10 : 0;
  let ino: number | undefined;
  try { ino = c.netns !== undefined ? netnsInode(c.netns) : undefined; } catch { ino = -1; }
  const lp = new Set(c.local_ports);
  const rp = new Set(c.remote_ports);
  return (r) => (!family || r.family === family) && (ino === undefined || r.netnsInode === ino) && (!lp.size || lp.has(r.sport)) &&
    (!rp.size || rp.has(r.dport)) && (c.pid === undefined || r.pid === c.pid) && (c.comm === undefined || r.comm === c.comm);
}

/** one socket's change, as two programs tracing the same changes both see it */
export const changeKey = (r: TcpStateChange): string => `${r.cookie} ${r.oldState} ${r.newState}`;

/** What one replaced source recorded. */
export interface HandedFrom { config: TcpstatesSourceConfig; until: number; tail: Set<string> }

export class Handoff {
  private readonly from: Array<{ takes: (r: TcpStateChange) => boolean; until: number; tail: Set<string> }>;
  private readonly last: number;
  /** a second past the last detach: nothing of theirs comes any more */
  over = false;

  constructor(from: HandedFrom[]) {
    this.from = from.map((f) => ({ takes: tcpstatesFilter(f.config), until: f.until, tail: f.tail }));
    this.last = Math.max(0, ...from.map((f) => f.until));
  }

  /** a change one of them recorded (dropped here) */
  drops(r: TcpStateChange): boolean {
    if (r.time > this.last + 1_000_000) { this.over = true; return false; }
    for (const h of this.from) {
      if (!h.takes(r)) continue;
      if (r.time <= h.until) return true;
      if (h.tail.delete(changeKey(r))) return true;
    }
    return false;
  }
}
