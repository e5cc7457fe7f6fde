import type { FlowEvent } from '../records/event.js';

// The sink interface: formatted lines in, written somewhere, through a
// bounded queue with a declared policy when it is full.

export interface SinkStats {
  name: string;
  /** lines written */
  written: number;
  /** lines dropped because the queue was full (when_full = "drop") */
  dropped: number;
  /** lines waiting */
  queued: number;
  /** write errors (each retried) */
  errors: number;
  /** records sent again after a connection was lost before the peer acknowledged them (TCP syslog) */
  resent?: number;
}

export interface Sink {
  readonly name: string;
  /** "block": the pipeline pauses its sources while this sink is full */
  readonly blocking: boolean;
  /** Takes one record: its line in the sink's format (no newline), and the
   * record itself for sinks with structured fields. Never throws; counts a
   * drop if it must. */
  push(line: string, ev?: FlowEvent): void;
  /** Starts writing what is queued (called at the end of each batch). */
  flush(): void;
  /** Is the queue at its limit? */
  full(): boolean;
  /** Called when a full queue has room again. */
  onDrain(cb: () => void): void;
  /** Reopens the destination (log rotation). */
  reopen(): void;
  /** Writes everything queued, then releases the destination. */
  close(): Promise<void>;
  stats(): SinkStats;
}
