// What every flow store does: take batches from the daemon, answer queries.
import type { FlowRecord } from '../records/flow.js';
import type { SettledRef } from '../pipeline/flow-table.js';
import type { AddrPort, Buckets, FlowSearch, TopKey, Window } from './sql.js';
import type { PacketRow, PacketSearch, PacketTopKey, PacketTopRow, StoredPacket } from './packets.js';
import type { FlowHolders, StoredTcpState, TcpStateRow, TcpStateSearch } from './tcpstates.js';
import type { AggregateRecord } from '../records/aggregate.js';
import type { AggregateSearch } from './aggregates.js';

/** A flow as read back from a store: the record without the daemon's key. */
export type StoredFlow = Omit<FlowRecord, 'key' | 'family'>;

export interface TopRow {
  key: string;
  /** hosts and pairs: the store's id of their namespace */
  ns?: number;
  flows: number;
  bytes: number;
  packets: number;
}

/**
 * A time (µs) when records of a namespace were lost: conntrack events
 * (flows of then may be missing), or packet logs (packets of then may be).
 */
export interface Gap { ns: number; since: number; until: number; reason: string; kind?: GapKind }
export type GapKind = 'events' | 'packets' | 'tcpstates';

/** A run of the daemon as the store knows it (µs). */
export interface Run {
  id: number; started: number; alive: number; stopped: number | null;
  /** the kernel's boot it ran in (util/boot.ts; absent in a spool written before schema 5) */
  boot?: number;
}

/** A flow settled unseen: its open row becomes a flows row ending so. */
export interface Settle { key: number; end: number; endErr: number; activeEnd: number; flags: number }

/** What the daemon hands a store at each flush. */
export interface StoreBatch {
  /** flows opened since the last flush and still open: into the current table */
  opened: FlowRecord[];
  /** open flows (already in the current table) that stopped being active */
  activity: Array<{ key: number; at: number }>;
  /** ended flows */
  closed: FlowRecord[];
  /** keys of ended flows that were written to the current table earlier */
  unopen: number[];
  /** flows in the current table that ended unseen */
  settled: Settle[];
  /** settled flows (already written) whose DESTROY came late: the row is replaced */
  corrections: Array<{ ref: SettledRef; rec: FlowRecord }>;
  /** times events were lost */
  gaps: Gap[];
  /** packet logs (NFLOG sources) */
  packets: PacketRow[];
  /** TCP state changes (tcpstates sources) */
  tcpStates: TcpStateRow[];
  /** aggregated flow records (stages with store = true) */
  aggregates: AggregateRecord[];
  /** this run, as of the batch */
  run?: Run;
  /** unique per batch ("run-seq"): a store applies a batch once, so a replay
   * of one already written (a crash before its spool file was removed, a
   * commit the client did not hear of) changes nothing */
  id?: string;
  /** namespace names under ids chosen while the store could not be asked */
  namespaces?: Array<{ id: number; name: string; inode?: number }>;
}

export function emptyBatch(): StoreBatch {
  return { opened: [], activity: [], closed: [], unopen: [], settled: [], corrections: [], gaps: [], packets: [], tcpStates: [], aggregates: [] };
}

/** A batch as read back from the spool (written by any version): every list there. */
export function normalizeBatch(b: Partial<StoreBatch>): StoreBatch {
  return { ...emptyBatch(), ...b };
}

/** A flow left open in the store, as the flow table needs it to continue. */
export interface OpenRow {
  key: number; start: number; startErr: number; flags: number; activeEnd: number | null; status: number;
  proto: number; src: string; sport: number | null; dst: string; dport: number | null; zone: number; ctId: number; ns: number;
}

/** What a write did (rows, not requests: a settle of a row no longer there is not counted). */
export interface WriteResult {
  /** rows added to flows */
  flows: number;
  /** rows written to the current table */
  open: number;
  /** settled rows replaced by their late DESTROY's record */
  corrected: number;
  /** packet rows added (present when the batch had packets) */
  packets?: number;
  /** TCP state change rows added (present when the batch had some) */
  tcpStates?: number;
  /** aggregated record rows added (present when the batch had some) */
  aggregates?: number;
}

export interface FlowReader {
  who(pub: AddrPort, w: Window, proto: number | undefined, remote: AddrPort | undefined, nsIds?: number[]): Promise<StoredFlow[]>;
  search(s: FlowSearch): Promise<StoredFlow[]>;
  top(s: FlowSearch, key: TopKey, by: 'bytes' | 'flows', limit: number): Promise<TopRow[]>;
  namespaces(): Promise<Map<number, string>>;
  /** The inodes of the namespaces, by id, where known (stores from schema 6 on). */
  namespaceInodes(): Promise<Map<number, number>>;
  /** the first and last start minute of the stored flows (none: undefined) */
  bounds(): Promise<Buckets | undefined>;
  /** the daemon's runs, oldest first */
  runs(): Promise<Run[]>;
  /** times records of a kind (default: events) were lost that touch [since, until] */
  gaps(since: number, until: number, kind?: GapKind): Promise<Gap[]>;
  /** packet logs: the newest matches, newest first */
  packets(s: PacketSearch): Promise<StoredPacket[]>;
  packetTop(s: PacketSearch, key: PacketTopKey, limit: number): Promise<PacketTopRow[]>;
  /** the packets logged for a flow, oldest first */
  flowPackets(f: StoredFlow): Promise<StoredPacket[]>;
  /** TCP state changes: the newest matches, newest first */
  tcpStates(s: TcpStateSearch): Promise<StoredTcpState[]>;
  /** the processes that held a stored TCP flow's socket on this host (none: it was not a socket here, or no tcpstates source saw it), and how sure that is */
  flowHolders(f: StoredFlow): Promise<FlowHolders>;
  /** aggregated flow records: the newest matches, newest first */
  aggregates(s: AggregateSearch): Promise<AggregateRecord[]>;
  close(): Promise<void>;
}

/**
 * What the daemon's writer needs of a store: it takes batches of records
 * and knows nothing of queries. Another engine (a fleet store, say) that
 * takes the daemon's records implements this; the query side (FlowReader)
 * is what `who`, `flows` and `packets` open, apart.
 */
export interface StoreTarget {
  readonly kind: string;
  /** Writes one batch in one transaction (rejects if it could not). */
  write(b: StoreBatch): Promise<WriteResult>;
  /** Flows the current table held when the daemon stopped. */
  openFlows(): Promise<OpenRow[]>;
  /** The daemon's runs, oldest first (the last one's end is where this run's trail resumes). */
  runs(): Promise<Run[]>;
  /** The store's id of a namespace: its name ('' = the daemon's own) and inode (0: not known), created if new. */
  namespaceId(name: string, inode?: number): Promise<number>;
  /** Deletes up to `max` flows that ended before `cutoff` (µs); returns how many. */
  expire(cutoff: number, max: number): Promise<number>;
  /** Deletes up to `max` packet logs older than `cutoff` (µs); returns how many. */
  expirePackets(cutoff: number, max: number): Promise<number>;
  /** Deletes up to `max` TCP state changes older than `cutoff` (µs); returns how many. */
  expireTcpStates(cutoff: number, max: number): Promise<number>;
  /** Deletes up to `max` aggregated records whose interval began before `cutoff` (µs); returns how many. */
  expireAggregates(cutoff: number, max: number): Promise<number>;
  close(): Promise<void>;
}

/** The stores of this repository: written by the daemon, read by the query commands. */
export interface FlowStore extends FlowReader, StoreTarget {}

/** The records a batch carries (the `unopen` deletions are not records). */
export function batchSize(b: StoreBatch): number {
  return b.opened.length + b.closed.length + b.settled.length + b.corrections.length + b.activity.length + b.packets.length + b.tcpStates.length + b.aggregates.length;
}
