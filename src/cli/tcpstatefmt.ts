// Printing stored TCP state changes and the processes that held a flow's
// socket: an aligned table for a terminal, JSON, or CSV.
import { familyText, TCP_STATE_NAMES } from '../records/tcpstate.js';
import type { FlowHolder, StoredTcpState } from '../store/tcpstates.js';
import { isoTime } from '../util/time.js';
import { alignedTable, csvCell, hostPort } from './flowfmt.js';

const state = (n: number) => TCP_STATE_NAMES[n] || String(n);
const ms = (us: number | null) => (us === null ? '-' : (us / 1000).toFixed(3));

const HEAD = ['TIME', 'PID', 'COMM', 'LOCAL', 'REMOTE', 'OLDSTATE', 'NEWSTATE', 'MS', 'HOLDER', 'NETNS', 'COOKIE'];

export function tcpStatesTable(rows: StoredTcpState[], ns: Map<number, string>): string {
  return alignedTable(HEAD, rows.map((r) => [
    isoTime(r.t), String(r.pid), (r.kthread ? `[${r.comm}]` : r.comm) || '-', hostPort(r.src, r.sport, 6), hostPort(r.dst, r.dport, 6),
    state(r.oldState), state(r.newState), ms(r.spanUs), r.holder ? 'yes' : '-', ns.get(r.ns) || '-', String(r.cookie),
  ]));
}

export function tcpStateJson(r: StoredTcpState, ns: Map<number, string>): Record<string, unknown> {
  return {
    time: isoTime(r.t), time_us: r.t, netns: ns.get(r.ns) ?? '', netns_inode: r.netns, family: familyText(r.family),
    saddr: r.src, sport: r.sport, daddr: r.dst, dport: r.dport, old_state: state(r.oldState), new_state: state(r.newState), span_us: r.spanUs,
    pid: r.pid, tid: r.tid, comm: r.comm, kthread: r.kthread, holder: r.holder, cookie: r.cookie,
  };
}

export const TCPSTATE_CSV_HEAD = ['time', 'time_us', 'netns', 'netns_inode', 'family', 'saddr', 'sport', 'daddr', 'dport', 'old_state', 'new_state',
  'span_us', 'pid', 'tid', 'comm', 'kthread', 'holder', 'cookie'];

export function tcpStatesCsv(rows: StoredTcpState[], ns: Map<number, string>): string {
  const out = [TCPSTATE_CSV_HEAD.join(',')];
  for (const r of rows) {
    out.push([isoTime(r.t), r.t, ns.get(r.ns) ?? '', r.netns, familyText(r.family), r.src, r.sport, r.dst, r.dport, state(r.oldState),
      state(r.newState), r.spanUs, r.pid, r.tid, r.comm, r.kthread ? 1 : 0, r.holder ? 1 : 0, r.cookie].map(csvCell).join(','));
  }
  return out.join('\n') + '\n';
}

/** What `--process` says of one flow. */
export interface HeldBy {
  holders: FlowHolder[];
  /** sockets that may have been the flow: more than one is ambiguous (listed, never one chosen) */
  sockets: number;
  /** those of them with no process known */
  unnamed: number;
  /** TCP state changes of the flow's time were lost, or more matched than were read */
  incomplete: boolean;
}

export const NOT_HELD: HeldBy = { holders: [], sockets: 0, unnamed: 0, incomplete: false };

/** "4242/curl (connect)"; none: "-"; and what makes it uncertain */
export function holdersText(h: HeldBy): string {
  let s = h.holders.length ? h.holders.map((x) => `${x.pid}/${x.comm} (${x.at})`).join(', ') : '-';
  if (h.sockets > 1) s = `ambiguous, ${h.sockets} sockets on this tuple then: ${s}${h.unnamed ? ` and ${h.unnamed} with no process known` : ''}`;
  return h.incomplete ? `${s} (changes lost then: may be incomplete)` : s;
}

/** `processes` (each holder), `processes_sockets`, `processes_ambiguous`, `processes_incomplete` */
export function holdersJson(h: HeldBy): Record<string, unknown> {
  return {
    processes: h.holders.map((x) => ({ pid: x.pid, comm: x.comm, seen_at: x.at, time: isoTime(x.t), cookie: x.cookie })),
    processes_sockets: h.sockets, processes_ambiguous: h.sockets > 1, processes_incomplete: h.incomplete,
  };
}
