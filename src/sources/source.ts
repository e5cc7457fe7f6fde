// What every source is to the pipeline: it opens its kernel side, decodes,
// and hands records on; it never knows where they go. Overruns, buffer
// growth and (where the kernel allows) recovery are the source's own.
import type { Kind, RecordOf } from '../records/index.js';

/** netlink receive buffer bounds, bytes: the kernel doubles SO_RCVBUF and keeps it in an int */
export const RCVBUF_MIN = 4096;
export const RCVBUF_MAX = 1073741824;

/**
 * The `netns` key of conntrack and nflog sources: one namespace (a name
 * under /run/netns or a path), or the namespaces to follow by pattern (the
 * daemon attaches to each that matches as it appears and detaches when it
 * goes: src/sources/netns/watch.ts).
 */
export const NETNS_PROP = {
  type: ['string', 'array'], minLength: 1, minItems: 1, items: { type: 'string', minLength: 1 },
  description: 'Network namespace to read: an `ip netns` name (`/run/netns/NAME`) or a path; or the namespaces to follow, by shell pattern on their `ip netns` names (`"qrouter-*"`, `"*"` for every named namespace) or a list of names and patterns (`["qrouter-*", "snat-*"]`): the daemon reads each matching namespace that exists at start or appears later (as source `NAME@NAMESPACE`), and closes everything it held there when the name goes. Default: the daemon\'s own.',
} as const;

/** Where a source says what happened (the daemon's logger fits). */
export interface SourceLog {
  error(m: string): void;
  warn(m: string): void;
  info(m: string): void;
  debug(m: string): void;
}

/** The warning when the kernel granted less receive buffer than a source's `buffer_size` asked for, or undefined. */
export function rcvbufShortfall(name: string, asked: number, granted: number): string | undefined {
  if (granted >= Math.min(asked * 2, 2 ** 31 - 1)) return undefined;
  return `source ${name}: asked for a receive buffer of ${asked} bytes, the kernel granted ${granted} (${granted / 2} usable): without CAP_NET_ADMIN it is capped by net.core.rmem_max`;
}

/** Counters every source has (the metrics and SIGUSR1 read these). */
export interface BaseSourceStats {
  name: string;
  type: string;
  /** records handed on (before the pipeline's filters) */
  records: number;
  datagrams: number;
  bytes: number;
  /** receive buffer overruns (ENOBUFS) */
  enobufs: number;
  /** the kernel's drop count for the socket (SO_MEMINFO), -1 if unknown */
  kernelDrops: number;
  /** messages the decoder rejected */
  malformed: number;
  /** receive buffer the kernel granted */
  rcvbuf: number;
}

export interface SourceOut<R> {
  /** One record; `toSinks` false: for the flow table only (a dump nobody asked to see). */
  record(r: R, toSinks: boolean): void;
  /** The end of one receive batch: a good moment to flush. */
  batchEnd(): void;
}

export interface Source<K extends Kind = Kind> {
  readonly name: string;
  readonly kind: K;
  /** Starts reading; resolves when the kernel has accepted the subscription. */
  start(out: SourceOut<RecordOf[K]>): Promise<void>;
  pause(): void;
  resume(): void;
  /** Once a second: what no batch reported (an overrun with nothing to read after it). */
  tick(): void;
  /** The daemon is stopping: report what was lost and not recovered; read nothing more. */
  stopping(): void;
  stats(): BaseSourceStats;
  close(): void;
}
