// The daemon's configuration, assembled from each component's own schema
// (sources/*/schema.ts, the sinks' *_SINK_PROPS): the single source of
// validation (config/load.ts checks each [[source]] and [[sink]] table
// against its type's schema) and of docs/ (generated from it; a test checks
// the pages are current).
import { QUEUE_MAX, SINK_COMMON_PROPS } from '../sinks/sink.js';
import { FILE_SINK_PROPS } from '../sinks/file.js';
import { SYSLOG_SINK_PROPS } from '../sinks/syslog.js';
import { JOURNAL_SINK_PROPS, MEMFD_THRESHOLD_MAX } from '../sinks/journal.js';
import { PCAP_SINK_PROPS } from '../sinks/pcap.js';
import { IPFIX_SINK_PROPS } from '../sinks/ipfix.js';
import type { Kind } from '../records/index.js';
import { AGGREGATE_KEYS, type AggregateKey } from '../records/aggregate.js';
import { RCVBUF_MAX, RCVBUF_MIN } from '../sources/source.js';
import { CONNTRACK_SOURCE_SCHEMA, type ConntrackSourceConfig } from '../sources/conntrack/schema.js';
import { NFLOG_SOURCE_SCHEMA, type NflogSourceConfig } from '../sources/nflog/schema.js';
import { TCPSTATES_SOURCE_SCHEMA, type TcpstatesSourceConfig } from '../sources/tcpstates/schema.js';

export type { ConntrackSourceConfig, NflogSourceConfig, TcpstatesSourceConfig };
export type SourceConfig = ConntrackSourceConfig | NflogSourceConfig | TcpstatesSourceConfig;

export const SINK_TYPES = ['stdout', 'file', 'syslog', 'journal', 'pcap', 'ipfix'] as const;
export type SinkType = (typeof SINK_TYPES)[number];

interface SinkCommon {
  name: string;
  sources: string[];
  /** 'flows': one record per ended flow of the conntrack sources taken, not their events */
  records: 'sources' | 'flows';
  /** undefined: each kind of record in its default format */
  format?: string;
  output: string[];
  labelmap?: string;
  queue_size: number;
  when_full: 'block' | 'drop';
  ulogd_device: string;
  ulogd_eventv1: boolean;
  ulogd_hwhdr: boolean;
  netns_prefix: boolean;
  /** the aggregation stage whose records it takes instead of the sources' (the loader sets `records` to 'flows') */
  aggregate?: string;
}
export interface StdoutSinkConfig extends SinkCommon { type: 'stdout' }
export interface FileSinkConfig extends SinkCommon {
  type: 'file';
  path?: string;
  mode: string;
  fsync: 'never' | 'batch';
  rotate_size: number;
  rotate_keep: number;
}
export interface SyslogSinkConfig extends SinkCommon {
  type: 'syslog';
  address: string;
  protocol: 'rfc3164' | 'rfc5424';
  facility: string;
  severity: string;
  tag: string;
  sd_id: string;
}
export interface JournalSinkConfig extends SinkCommon {
  type: 'journal';
  severity: string;
  tag: string;
  journal_socket: string;
  memfd_threshold: number;
}
export interface PcapSinkConfig extends Pick<SinkCommon, 'name' | 'sources' | 'queue_size' | 'when_full'> {
  records?: undefined;
  type: 'pcap';
  path: string;
  linktype: 'raw' | 'nflog';
  mode: string;
  fsync: 'never' | 'batch';
  rotate_size: number;
  rotate_keep: number;
  /** (takes no aggregated records) */
  aggregate?: undefined;
  // (no format: the sink encodes the packets itself)
  format?: undefined;
  output?: undefined;
  labelmap?: undefined;
}
export interface IpfixSinkConfig extends Pick<SinkCommon, 'name' | 'sources' | 'queue_size' | 'when_full'> {
  /** set by the loader: an IPFIX sink takes flow records */
  records: 'flows';
  type: 'ipfix';
  address: string;
  observation_domain: number;
  template_refresh: number;
  max_message_size: number;
  nat_events: boolean;
  nat_event_numbers: 'rfc8158' | 'historic';
  active_timeout: number;
  inactive_timeout: number;
  /** the aggregation stage whose records it exports instead of the flows */
  aggregate?: string;
  // (no format: the sink encodes the records itself)
  format?: undefined;
  output?: undefined;
  labelmap?: undefined;
}
export type SinkConfig = StdoutSinkConfig | FileSinkConfig | SyslogSinkConfig | JournalSinkConfig | PcapSinkConfig | IpfixSinkConfig;
/** the sink types that take records and encode them themselves, and the kinds they take */
export const RECORD_SINKS: Readonly<Partial<Record<SinkType, readonly Kind[]>>> = { pcap: ['packet'] };

export interface StoreConfig {
  type: 'sqlite' | 'postgres' | 'none';
  path: string;
  url?: string;
  retention: string;
  flush_interval_ms: number;
  batch_size: number;
  spool_dir: string;
  queue_size: number;
  mode: string;
}

export interface AggregateConfig {
  name: string;
  sources: string[];
  keys: AggregateKey[];
  src_prefix: number;
  src_prefix6: number;
  dst_prefix: number;
  dst_prefix6: number;
  interval: number;
  delay: number;
  max_keys: number;
  store: boolean;
}

export interface DaemonConfig {
  log_level: 'error' | 'warn' | 'info' | 'debug';
  listen?: string;
  source: SourceConfig[];
  aggregate: AggregateConfig[];
  sink: SinkConfig[];
  store: StoreConfig;
}

/** systemd's StateDirectory= (or /var/lib/conntrail) */
export function stateDirectory(): string {
  return (process.env.STATE_DIRECTORY ?? '').split(':')[0] || '/var/lib/conntrail';
}

export { RCVBUF_MAX, RCVBUF_MIN };
export { MEMFD_THRESHOLD_MAX, QUEUE_MAX };

/** Each source type's own schema, and what kind of record it emits. */
export const SOURCE_TYPES = {
  conntrack: { schema: CONNTRACK_SOURCE_SCHEMA, emits: 'event' },
  nflog: { schema: NFLOG_SOURCE_SCHEMA, emits: 'packet' },
  tcpstates: { schema: TCPSTATES_SOURCE_SCHEMA, emits: 'tcpstate' },
} as const;
export type SourceType = keyof typeof SOURCE_TYPES;

const { name: SINK_NAME_PROP, ...SINK_REST_PROPS } = SINK_COMMON_PROPS;

const sinkSchema = (type: SinkType, description: string, own: object) => ({
  type: 'object',
  description,
  additionalProperties: false,
  required: ['type'],
  properties: { name: SINK_NAME_PROP, type: { const: type, description: 'The kind of sink.' }, ...SINK_REST_PROPS, ...own },
});

/** A sink that encodes records itself: no format keys; its queue's, the key it needs (`required`), and its own. */
const recordSinkSchema = <T extends SinkType, P extends object>(type: T, description: string, required: string, own: P) => ({
  type: 'object',
  description,
  additionalProperties: false,
  required: ['type', required],
  properties: {
    name: SINK_NAME_PROP, type: { const: type, description: 'The kind of sink.' },
    queue_size: SINK_COMMON_PROPS.queue_size, when_full: SINK_COMMON_PROPS.when_full, ...own,
  },
});

/** Each sink type's own schema: the keys every sink takes, and its transport's. */
export const SINK_SCHEMAS = {
  stdout: sinkSchema('stdout', 'Records on standard output, one line each.', {}),
  file: sinkSchema('file', 'Records appended to a file, one line each.', FILE_SINK_PROPS),
  syslog: sinkSchema('syslog', 'One syslog message per record.', SYSLOG_SINK_PROPS),
  journal: sinkSchema('journal', 'One journal entry per record, with a field for every record field.', JOURNAL_SINK_PROPS),
  pcap: recordSinkSchema('pcap', 'The packet logs of NFLOG sources as a pcap file.', 'path', { sources: SINK_COMMON_PROPS.sources, ...PCAP_SINK_PROPS }),
  ipfix: recordSinkSchema('ipfix', 'Flow records exported to an IPFIX collector over UDP or TCP, with the NAT translation (and RFC 8158 NAT session events).', 'address', {
    sources: { type: 'array', items: { type: 'string' }, default: [], description: 'Names of the conntrack sources whose flow records it exports; empty: every conntrack source that keeps flows.' },
    ...IPFIX_SINK_PROPS,
  }),
} as const;

/** the conntrack source's schema (the default source type) */
export const SOURCE_SCHEMA = CONNTRACK_SOURCE_SCHEMA;

/** Every sink key of any type (for the docs' overview and the checks that each is documented). */
export const SINK_SCHEMA = {
  type: 'object',
  description: 'Where records go, in which format. Each sink has its own bounded queue, and takes only the keys of its type.',
  additionalProperties: false,
  required: ['type'],
  properties: {
    name: SINK_NAME_PROP,
    type: { enum: [...SINK_TYPES], description: '`stdout`, `file` (append to `path`), `syslog` (one message per record to `address`), `journal` (systemd-journald, with a CT_* field for every conntrack record field, a PKT_* field for every packet field, a FLOW_* field for every flow record field, and an AGG_* field for every key of an aggregated record), `pcap` (packet logs as a pcap file at `path`), or `ipfix` (flow records to an IPFIX collector at `address`).' },
    ...SINK_REST_PROPS, ...FILE_SINK_PROPS, ...SYSLOG_SINK_PROPS,
    address: { ...SYSLOG_SINK_PROPS.address, description: `${SYSLOG_SINK_PROPS.address.description} ${IPFIX_SINK_PROPS.address.description} (required, no default)` },
    ...JOURNAL_SINK_PROPS, linktype: PCAP_SINK_PROPS.linktype,
    observation_domain: IPFIX_SINK_PROPS.observation_domain, template_refresh: IPFIX_SINK_PROPS.template_refresh,
    max_message_size: IPFIX_SINK_PROPS.max_message_size, nat_events: IPFIX_SINK_PROPS.nat_events, nat_event_numbers: IPFIX_SINK_PROPS.nat_event_numbers,
    active_timeout: IPFIX_SINK_PROPS.active_timeout, inactive_timeout: IPFIX_SINK_PROPS.inactive_timeout,
    aggregate: { ...SINK_COMMON_PROPS.aggregate, description: `${SINK_COMMON_PROPS.aggregate.description} ${IPFIX_SINK_PROPS.aggregate.description}` },
  },
} as const;

export const STORE_SCHEMA = {
  type: 'object',
  description: 'The flow store: one record per flow (start, end, tuples, NAT translation, counters), and the flows open now, for `conntrail who` and `conntrail flows`. Without a `[store]` table the daemon writes SQLite to `$STATE_DIRECTORY/flows.db` (`/var/lib/conntrail/flows.db`).',
  additionalProperties: false,
  required: [],
  properties: {
    type: { enum: ['sqlite', 'postgres', 'none'], default: 'sqlite', description: '`sqlite` (embedded, the default), `postgres` (a PostgreSQL server at `url`), or `none` (no flow records).' },
    path: { type: 'string', minLength: 1, default: '$STATE_DIRECTORY/flows.db', description: 'sqlite: the database file (WAL mode; created with `mode`, its directory too if missing; not on procfs or sysfs). `$STATE_DIRECTORY` is systemd\'s, else /var/lib/conntrail.' },
    url: { type: 'string', pattern: '^postgres(ql)?://', description: 'postgres: connection URL, `postgres://USER:PASSWORD@HOST:PORT/DATABASE`: a host (or `?host=/socket/dir`), a port 1-65535 if not the default, and a database are required; PGUSER and PGPASSWORD fill in a user and password it leaves out.' },
    retention: { type: 'string', pattern: '^(0|forever|[0-9]+(\\.[0-9]+)?(ms|s|m|h|d|w))$', default: 'forever', description: 'Delete flows that ended longer ago than this ("90d", "12h"; at least 1s), in small steps that never stall ingest; `forever` (or "0") keeps them.' },
    flush_interval_ms: { type: 'integer', minimum: 10, maximum: 60000, default: 1000, description: 'Write a batch at least this often: flows opened since the last batch appear in the current table this late at most.' },
    batch_size: { type: 'integer', minimum: 1, maximum: 1000000, default: 10000, description: 'Write a batch as soon as this many records wait.' },
    spool_dir: { type: 'string', minLength: 1, default: '$STATE_DIRECTORY/spool', description: 'When the store cannot take a batch (PostgreSQL down, a full disk), batches are kept here and replayed in order when it can again.' },
    queue_size: { type: 'integer', minimum: 1000, maximum: 10000000, default: 200000, description: 'Records that may wait in memory when neither the store nor the spool takes them; then the sources pause (the kernel counts what it cannot deliver, and a resync recovers the open flows).' },
    mode: { type: 'string', pattern: '^0?[0-7]{3}$', default: '0640', description: 'sqlite: permissions of a database file the daemon creates (octal).' },
  },
} as const;

/** An aggregation stage (pipeline/aggregate.ts): flow records folded by keys over an interval. */
export const AGGREGATE_SCHEMA = {
  type: 'object',
  description: 'Flow records folded into one record per interval and key: the flows of the conntrack sources it takes that ended in the same interval (aligned to the epoch: `interval = 60` is each whole minute) and share the `keys` become one record with their count (`deltaFlowCount`), the sums of both directions\' packets and bytes, the earliest start and the latest end. An interval is sent `delay` seconds after it ended; a flow that comes later still (its DESTROY lost, found by a dump) makes a record of its own for its interval, so the collector\'s sums per interval and key stay right (counted `late`). At `max_keys` records held the oldest interval is sent early (`early`). A long flow counts at its end, whole. A sink with `aggregate = "NAME"` takes a stage\'s records: an IPFIX sink exports them, a file, stdout, syslog or journal sink writes them as JSON lines; raw flows and aggregates can go to different sinks side by side. A restart, or a reload that changes the stage, sends what it holds at once: an interval then has two records for a key (their sums add up).',
  additionalProperties: false,
  required: ['keys'],
  properties: {
    name: { type: 'string', minLength: 1, description: 'Its name, for `aggregate = "NAME"` in a sink and in the counters (default: aggregate and its index).' },
    sources: { type: 'array', items: { type: 'string' }, default: [], description: 'Names of the conntrack sources whose flow records it folds; empty: every conntrack source that keeps flows.' },
    keys: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [...AGGREGATE_KEYS] }, description: 'What a record is per: `src`, `dst` (the original direction\'s addresses, or their networks with `src_prefix`/`dst_prefix`), `sport`, `dport`, `proto`, `nat_src`, `nat_sport` (the source after SNAT: the public address and port; the flow\'s own without SNAT), `nat_dst`, `nat_dport` (the destination after DNAT). As nfdump -A\'s srcip, dstip, srcport, dstport, proto, xsrcip, xsrcport, xdstip, xdstport.' },
    src_prefix: { type: 'integer', minimum: 0, maximum: 32, default: 32, description: 'The IPv4 prefix length `src` and `nat_src` are cut to (24: per /24 network; nfdump -A srcip4/24).' },
    src_prefix6: { type: 'integer', minimum: 0, maximum: 128, default: 128, description: 'The IPv6 prefix length `src` and `nat_src` are cut to.' },
    dst_prefix: { type: 'integer', minimum: 0, maximum: 32, default: 32, description: 'The IPv4 prefix length `dst` and `nat_dst` are cut to.' },
    dst_prefix6: { type: 'integer', minimum: 0, maximum: 128, default: 128, description: 'The IPv6 prefix length `dst` and `nat_dst` are cut to.' },
    interval: { type: 'integer', minimum: 1, maximum: 86400, default: 300, description: 'Seconds: the length of an interval (flows by their end).' },
    delay: { type: 'integer', minimum: 0, maximum: 3600, default: 10, description: 'Seconds after an interval\'s end before it is sent: the flows that ended in it come a little later (a DESTROY read, a dump that no longer has a flow: a few seconds).' },
    max_keys: { type: 'integer', minimum: 1, maximum: 100000000, default: 1000000, description: 'Records held at most (memory: some 300 bytes each); at that many the oldest interval is sent early.' },
    store: { type: 'boolean', default: false, description: 'Write its records to the flow store too (SQLite or PostgreSQL, table `aggregates`, under the store\'s retention by interval start), for `conntrail aggregates`.' },
  },
} as const;

export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    log_level: { enum: ['error', 'warn', 'info', 'debug'], default: 'info', description: 'Level of the daemon\'s own log (stderr).' },
    listen: { type: 'string', pattern: '^(\\[[0-9a-fA-F:.]+\\]|[0-9.]+|localhost):[0-9]{1,5}$', description: 'Serve Prometheus metrics at http://ADDRESS:PORT/metrics: an IPv4 address, a bracketed IPv6 address or `localhost`, and a port 1-65535 (e.g. "127.0.0.1:9405", "[::1]:9405"); default: no metrics server.' },
    // each table is checked against its type's own schema (config/load.ts)
    source: { type: 'array', items: { type: 'object', properties: { type: { enum: Object.keys(SOURCE_TYPES), default: 'conntrack' } } }, default: [{}], description: '`[[source]]` tables: `conntrack` (the default), `nflog` or `tcpstates`; default: one conntrack source with no filter.' },
    aggregate: { type: 'array', items: AGGREGATE_SCHEMA, default: [], description: '`[[aggregate]]` tables: flow records folded by keys over an interval, for the sinks that name them (`aggregate = "NAME"`) and the flow store (`store = true`); none by default.' },
    sink: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: { enum: [...SINK_TYPES] } } }, default: [], description: '`[[sink]]` tables: where records go; none by default.' },
    store: { ...STORE_SCHEMA, default: {} },
  },
} as const;
