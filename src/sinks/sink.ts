// The sink interface: formatted lines in, written somewhere, through a
// bounded queue with a declared policy when it is full.
import type { Kind, RecordOf } from '../records/index.js';

/** records a sink may queue (in memory) */
export const QUEUE_MAX = 16777216;

/** The keys every sink takes, whatever its transport. */
export const SINK_COMMON_PROPS = {
  name: { type: 'string', minLength: 1, description: 'Name in logs and counters (default: TYPE and its index).' },
  sources: { type: 'array', items: { type: 'string' }, default: [], description: 'Names of the sources to take records from; empty: all (with `records = "flows"`: all conntrack sources).' },
  records: { enum: ['sources', 'flows'], default: 'sources', description: '`sources`: the records the sources send (conntrack events, packet logs, TCP state changes); `flows`: one record per flow of the conntrack sources it takes, when the flow ends (its DESTROY, or a table dump that no longer has it), with its start, end, NAT translation and counters: the record the flow store keeps, with or without a store.' },
  format: { type: 'string', description: 'Line format of the records: for conntrack events one of `conntrack`, `vyos`, `json`, `logemu`, `ulogd-json` (as `conntrail events --format`), for packet logs one of `logemu`, `ulogd-json`, `kernel`, `json` (as `conntrail packets --format`), for TCP state changes one of `tcpstates`, `tcpstates-wide`, `tcpstates-csv`, `tcpstates-message`, `json`, for flow records (`records = "flows"`) `json` (the objects of `conntrail flows --json`), for aggregated records (`aggregate`) `json`; it must exist for every kind of record the sink takes (checked against the sources it takes). Default: `conntrack` for events, `logemu` for packets, `tcpstates` for TCP state changes, `json` for flow records and aggregated records.' },
  output: { type: 'array', items: { enum: ['extended', 'id', 'timestamp', 'ktimestamp', 'labels'] }, default: [], description: 'conntrack format options, as `-o`.' },
  labelmap: { type: 'string', minLength: 1, description: 'With `output = ["labels"]`: the connlabel.conf naming the labels, instead of /etc/xtables/connlabel.conf (as conntrack --labelmap), read when the sink is started.' },
  queue_size: { type: 'integer', minimum: 1, maximum: QUEUE_MAX, default: 65536, description: 'Records the sink may hold before it is full (the queue is in memory).' },
  when_full: { enum: ['block', 'drop'], default: 'block', description: '`block`: pause the sources until the sink catches up (the kernel buffer absorbs, then overruns are counted); `drop`: drop new records and count them.' },
  ulogd_device: { type: 'string', default: 'Netfilter', description: 'ulogd-json: the "dvc" value.' },
  ulogd_eventv1: { type: 'boolean', default: false, description: 'ulogd-json: Logstash event v1 fields.' },
  netns_prefix: { type: 'boolean', default: false, description: 'Begin each line of a record from another network namespace than the daemon\'s with `[NAMESPACE] ` (its `ip netns` name, or `net:[INODE]`): the line after it stays byte-identical to its format, so one file can hold the records of many namespaces. The JSON formats and the journal carry the namespace in a field anyway.' },
  aggregate: { type: 'string', minLength: 1, description: 'The name of an `[[aggregate]]` stage: the sink takes that stage\'s aggregated records (one per interval and key) instead of the sources\' records, as JSON lines (`format = "json"`, the only format of them; the journal with an AGG_* field for each key); `sources`, `records`, `netns_prefix`, `output` and `labelmap` do not apply (the stage chooses its flows; its records fold every namespace it takes), nor an IPFIX sink\'s `nat_events` and timeouts.' },
  ulogd_hwhdr: { type: 'boolean', default: false, description: 'ulogd-json of packet logs: as ulogd\'s stack with HWHDR (the `mac.*` keys).' },
} as const;

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
  /** flow records not exported because they correct one exported before (IPFIX) */
  skipped?: number;
}

export interface Sink {
  readonly name: string;
  /** 'records': the sink encodes the records itself (pcap) and gets no line */
  readonly takes?: 'lines' | 'records';
  /** "block": the pipeline pauses its sources while this sink is full */
  readonly blocking: boolean;
  /** Takes one record: its line in the sink's format (no newline), and the
   * record itself (and its kind) for sinks with structured fields. Never throws; counts a
   * drop if it must. */
  push(line: string, rec?: RecordOf[Kind], kind?: Kind): void;
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
