// What every flow store does: take batches from the daemon, answer queries.
import type { FlowRecord } from '../flow/record.js';
import type { AddrPort, Buckets, FlowSearch, TopKey, Window } from './sql.js';

/** A flow as read back from a store: the record without the daemon's key. */
export type StoredFlow = Omit<FlowRecord, 'key' | 'family'>;

export interface TopRow {
  key: string;
  flows: number;
  bytes: number;
  packets: number;
}

/** What the daemon hands a store at each flush. */
export interface StoreBatch {
  /** flows opened since the last flush and still open: into the current table */
  opened: FlowRecord[];
  /** ended flows */
  closed: FlowRecord[];
  /** keys of ended flows that were written to the current table earlier */
  unopen: number[];
  /** flows in the current table that ended unseen */
  settled: Array<{ key: number; end: number; flags: number }>;
}

export interface OpenRow { key: number; start: number; flags: number; proto: number; sport: number | null; dport: number | null }

export interface FlowReader {
  who(pub: AddrPort, w: Window, proto: number | undefined, remote: AddrPort | undefined): Promise<StoredFlow[]>;
  search(s: FlowSearch): Promise<StoredFlow[]>;
  top(s: FlowSearch, key: TopKey, by: 'bytes' | 'flows', limit: number): Promise<TopRow[]>;
  namespaces(): Promise<Map<number, string>>;
  /** the first and last start minute of the stored flows (none: undefined) */
  bounds(): Promise<Buckets | undefined>;
  close(): Promise<void>;
}

export interface FlowStore extends FlowReader {
  readonly kind: string;
  /** Writes one batch in one transaction (rejects if it could not). */
  write(b: StoreBatch): Promise<void>;
  /** Flows the current table held when the daemon stopped. */
  openFlows(): Promise<OpenRow[]>;
  setNamespaces(names: string[]): Promise<void>;
  /** Deletes up to `max` flows that ended before `cutoff` (ms); returns how many. */
  expire(cutoff: number, max: number): Promise<number>;
}

/** The records a batch carries (the `unopen` deletions are not records). */
export function batchSize(b: StoreBatch): number {
  return b.opened.length + b.closed.length + b.settled.length;
}
