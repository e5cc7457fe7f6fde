// TCP state changes in the store: one row per change a tcpstates source
// saw, the queries of `conntrail tcpstates --db`, and the join that names
// the process holding a stored flow's socket. Written once for SQLite and
// PostgreSQL, like sql.ts. Every time is in µs since the epoch.
//
// The join: a socket on this host and a conntrack flow are the same
// connection when they are in the same namespace, overlap in time, and the
// socket's (local, remote) endpoints are the flow's original direction
// (this host opened it: before SNAT) or its reply direction (this host
// accepted it: after DNAT). A socket's changes share its cookie (unique
// within one boot of the kernel: rows carry the boot, and so do the
// daemon's runs, so a flow is joined only to sockets of the boot it was
// seen in); the rows that
// name its holder (`holder`, see records/tcpstate.ts namesHolder) may have
// other endpoints than the one matched (at connect() the local port is
// still 0), so the holder is looked up by the cookies of the matching rows.
// A socket may have been the flow only if it has a change since the
// daemon's run that first saw the flow began (a close while no daemon ran
// would not be known) and its life fits the flow's: made (its connect(), or
// its creation from a listener, where the trail has it) by BORN_SLACK_US
// after the flow began, and not closed before the flow may have begun.
// One such socket names its holder; several make the answer ambiguous,
// each listed (flowHolderQuery below).
import { namesHolder, TCP_STATE_NAMES, type TcpStateChange } from '../records/tcpstate.js';
import type { Cidr } from '../util/ip.js';
import type { StoredFlow } from './store.js';
import { Params, type Built, type Dialect } from './sql.js';
import { addrOrNull } from './rows.js';

/** A TCP state change as the store keeps it. */
export interface TcpStateRow {
  t: number;
  /** the store's id of the namespace */
  ns: number;
  /** the namespace's inode */
  netns: number;
  family: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  oldState: number;
  newState: number;
  /** µs since the socket's previous change (null: not seen) */
  spanUs: number | null;
  pid: number;
  tid: number;
  comm: string;
  kthread: boolean;
  /** this change names the socket's holder */
  holder: boolean;
  cookie: number;
  /** the kernel's boot (the first 32 bits of its boot_id): cookies count from 1 again at each */
  boot: number;
}

export const TCPSTATE_COLUMNS = [
  't', 'ns', 'netns', 'family', 'src', 'sport', 'dst', 'dport', 'old_state', 'new_state', 'span', 'pid', 'tid', 'comm', 'kthread', 'holder', 'cookie', 'boot',
] as const;
export const TCPSTATE_COLUMN_LIST = TCPSTATE_COLUMNS.join(', ');

/** an IPv4-mapped IPv6 address (a dual-stack socket's IPv4 peer) as the IPv4 address conntrack has */
const unmapped = (a: string) => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);

/** The row of a state change, in namespace `ns` of the store, in kernel boot `boot`. */
export function tcpStateRow(r: TcpStateChange, ns: number, boot: number): TcpStateRow {
  return {
    t: r.time, ns, netns: r.netnsInode, family: r.family, src: unmapped(r.saddr), sport: r.sport, dst: unmapped(r.daddr), dport: r.dport,
    oldState: r.oldState, newState: r.newState, spanUs: r.deltaNs === undefined ? null : Math.floor(r.deltaNs / 1000),
    pid: r.pid, tid: r.tid, comm: r.comm, kthread: r.kthread, holder: namesHolder(r), cookie: r.cookie, boot,
  };
}

/** a row's values in TCPSTATE_COLUMNS order, addresses through the dialect (into `out` from `at`, or a new array) */
export function tcpStateValues(r: TcpStateRow, addr: (a: string) => unknown, out: unknown[] = new Array(TCPSTATE_COLUMNS.length), at = 0): unknown[] {
  out[at] = r.t; out[at + 1] = r.ns; out[at + 2] = r.netns; out[at + 3] = r.family; out[at + 4] = addr(r.src); out[at + 5] = r.sport;
  out[at + 6] = addr(r.dst); out[at + 7] = r.dport; out[at + 8] = r.oldState; out[at + 9] = r.newState; out[at + 10] = r.spanUs;
  out[at + 11] = r.pid; out[at + 12] = r.tid; out[at + 13] = r.comm; out[at + 14] = r.kthread ? 1 : 0; out[at + 15] = r.holder ? 1 : 0;
  out[at + 16] = r.cookie; out[at + 17] = r.boot;
  return out;
}

export type StoredTcpState = TcpStateRow;

export function rowToTcpState(x: Record<string, unknown>): StoredTcpState {
  return {
    t: Number(x.t), ns: Number(x.ns), netns: Number(x.netns), family: Number(x.family), src: addrOrNull(x.src) ?? '', sport: Number(x.sport),
    dst: addrOrNull(x.dst) ?? '', dport: Number(x.dport), oldState: Number(x.old_state), newState: Number(x.new_state),
    spanUs: x.span === null || x.span === undefined ? null : Number(x.span), pid: Number(x.pid), tid: Number(x.tid), comm: String(x.comm),
    kthread: Number(x.kthread) === 1, holder: Number(x.holder) === 1, cookie: Number(x.cookie), boot: Number(x.boot),
  };
}

export interface TcpStateSearch {
  since: number;
  until: number;
  /** any of these on either side */
  hosts: Cidr[];
  /** any of these ports on either side */
  ports: number[];
  pids: number[];
  /** commands, exactly */
  comms: string[];
  /** the new state, any of these */
  states: number[];
  limit?: number;
}

/** the newest `limit` matches, newest first */
export function tcpStateSearchQuery(d: Dialect, s: TcpStateSearch): Built {
  const P = new Params(d);
  const { p } = P;
  const c = [`t >= ${p(s.since)}`, `t <= ${p(s.until)}`];
  const any = (parts: string[]) => { if (parts.length) c.push(`(${parts.join(' OR ')})`); };
  any(s.hosts.flatMap((h) => [d.inCidr('src', h, p), d.inCidr('dst', h, p)]));
  any(s.ports.flatMap((x) => { const ph = p(x); return [`sport = ${ph}`, `dport = ${ph}`]; }));
  if (s.pids.length) c.push(`pid IN (${s.pids.map((x) => p(x)).join(', ')})`);
  if (s.comms.length) c.push(`comm IN (${s.comms.map((x) => p(x)).join(', ')})`);
  if (s.states.length) c.push(`new_state IN (${s.states.map((x) => p(x)).join(', ')})`);
  const sql = `SELECT ${TCPSTATE_COLUMN_LIST} FROM tcp_states WHERE ${c.join(' AND ')} ORDER BY t DESC, id DESC` +
    (s.limit !== undefined ? ` LIMIT ${p(s.limit)}` : '');
  return { sql, values: P.values };
}

/**
 * Slack around a flow's times: a socket's first change (connect()) comes
 * just before its flow's start (the SYN it sends creates the entry), its
 * holder may close it a little after the flow's last known end, and each
 * side's clock reading is taken apart (conntrack's event, the probe's).
 */
export const HOLDER_SLACK_US = 1_000_000;

/** the most holder rows read for one flow (more: the answer says it may be incomplete) */
export const HOLDER_LIMIT = 100;

/** how much earlier than the flow's start its socket's close may be read (the two clocks are read apart) */
export const CLOSE_SLACK_US = 1_000;

/**
 * How much later than the flow's start its socket may have been made: a
 * passive open's socket is made when the handshake ends, which a lost
 * SYN-ACK or SYN puts a second or two after the first SYN.
 */
export const BORN_SLACK_US = 3_000_000;

/** The times a flow's socket may have changed state in (µs): its possible extent, with the slack. */
export function holderExtent(f: StoredFlow, now: number): { lo: number; hi: number } {
  return { lo: f.startErr >= Number.MAX_SAFE_INTEGER ? 0 : f.start - f.startErr - HOLDER_SLACK_US, hi: (f.end ?? now) + HOLDER_SLACK_US };
}

/**
 * The sockets that may have been a stored flow (TCP only), each with its
 * changes that name its holder (a row of NULLs for a socket with none):
 * same namespace and boot, a change since the daemon's run that first saw
 * the flow began and within the flow's possible extent, with the socket's
 * endpoints the flow's original or reply direction; made (its connect(),
 * or its creation from a listener, when the trail has it) by BORN_SLACK_US
 * after the flow began, and not closed before the flow may have begun.
 * Rows are ordered by socket, then time; `sock_boot`, `sock_cookie` name
 * the socket of each.
 */
export function flowHolderQuery(d: Dialect, f: StoredFlow, now: number): Built | undefined {
  if (f.proto !== 6 || f.sport === null || f.dport === null) return undefined;
  const P = new Params(d);
  const { p } = P;
  // original direction: this host opened it (its socket sees the addresses before SNAT);
  // reply direction: this host accepted it (after DNAT)
  const orig: [string, number, string, number] = [f.src, f.sport, f.dst, f.dport];
  const reply: [string, number, string, number] = [f.natDst ?? f.dst, f.natDport ?? f.dport, f.natSrc ?? f.src, f.natSport ?? f.sport];
  const is = ([a, ap, b, bp]: [string, number, string, number]) =>
    `(${d.addrEq('src', p(d.addr(a)))} AND sport = ${p(ap)} AND ${d.addrEq('dst', p(d.addr(b)))} AND dport = ${p(bp)})`;
  const { lo, hi } = holderExtent(f, now);
  const unbounded = f.startErr >= Number.MAX_SAFE_INTEGER;
  const bornBy = f.start + BORN_SLACK_US;
  // a flow first seen in a table dump (its start unbounded) was open when first seen
  const openAt = (unbounded ? f.start : f.start - f.startErr) - CLOSE_SLACK_US;
  // the daemon's run that first saw the flow: its boot, and when it began (a socket that left no
  // change since is not known to be open: its close may have come while no daemon ran)
  const sql = `WITH run AS (SELECT boot, started FROM runs WHERE started <= ${p(f.start)} ORDER BY started DESC LIMIT 1), ` +
    `cand AS (SELECT DISTINCT boot, cookie FROM tcp_states WHERE ns = ${p(f.ns)} AND t >= ${p(lo)} AND t <= ${p(hi)} ` +
    'AND t >= (SELECT started FROM run) AND boot = (SELECT boot FROM run) ' +
    `AND (${is(orig)} OR ${is(reply)})), ` +
    // made: connect() (CLOSE -> SYN_SENT) or from a listener (LISTEN/NEW_SYN_RECV -> SYN_RECV); NULL: before the trail
    'life AS (SELECT s.boot, s.cookie, min(CASE WHEN (s.old_state = 7 AND s.new_state = 2) OR (s.new_state = 3 AND s.old_state IN (10, 12)) THEN s.t END) AS born, ' +
    'max(CASE WHEN s.new_state = 7 THEN s.t END) AS closed ' +
    'FROM tcp_states s JOIN cand c ON s.boot = c.boot AND s.cookie = c.cookie GROUP BY s.boot, s.cookie), ' +
    `pick AS (SELECT boot, cookie FROM life WHERE (born IS NULL OR born <= ${p(bornBy)}) AND (closed IS NULL OR closed >= ${p(openAt)})) ` +
    `SELECT k.boot AS sock_boot, k.cookie AS sock_cookie, ${TCPSTATE_COLUMNS.map((c) => `s.${c}`).join(', ')} FROM pick k ` +
    'LEFT JOIN tcp_states s ON s.boot = k.boot AND s.cookie = k.cookie AND s.holder = 1 ' +
    `ORDER BY k.boot, k.cookie, s.t, s.id LIMIT ${p(HOLDER_LIMIT)}`;
  return { sql, values: P.values };
}

/** A process that held a flow's socket, and the change that says so. */
export interface FlowHolder { pid: number; comm: string; at: string; t: number; cookie: number }

/**
 * What flowHolderQuery's rows say: each socket's first holder change (a
 * process once); `sockets`: how many sockets may have been the flow (more
 * than one: the answer is ambiguous); `unnamed`: those of them with no
 * holder change; `truncated`: more rows than were read.
 */
export interface FlowHolders { holders: FlowHolder[]; sockets: number; unnamed: number; truncated: boolean }

export function holdersOf(rows: Array<Record<string, unknown>>): FlowHolders {
  const holders: FlowHolder[] = [];
  const seen = new Set<string>();
  let unnamed = 0;
  for (const x of rows) {
    const k = `${x.sock_boot}:${x.sock_cookie}`;
    if (seen.has(k)) continue;
    seen.add(k);
    if (x.t === null || x.t === undefined) { unnamed++; continue; }
    const r = rowToTcpState(x);
    if (holders.some((h) => h.pid === r.pid && h.comm === r.comm)) continue;
    holders.push({ pid: r.pid, comm: r.comm, at: holderCall(r), t: r.t, cookie: r.cookie });
  }
  return { holders, sockets: seen.size, unnamed, truncated: rows.length >= HOLDER_LIMIT };
}

/** the system call a holder row stands for */
function holderCall(r: StoredTcpState): string {
  const n = TCP_STATE_NAMES[r.newState];
  return n === 'SYN_SENT' ? 'connect' : n === 'LISTEN' ? 'listen' : 'close';
}
