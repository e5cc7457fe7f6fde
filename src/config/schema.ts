// The daemon's configuration: one JSON Schema, the single source of
// validation and of docs/config.md (generated from it; a test checks the
// page is current).
import { FORMATS } from '../formats/index.js';
import { FACILITIES, SEVERITIES } from '../sinks/syslog.js';

export const SINK_TYPES = ['stdout', 'file', 'syslog', 'journal'] as const;
export type SinkType = (typeof SINK_TYPES)[number];

export interface SourceConfig {
  name: string;
  type: 'conntrack';
  netns?: string;
  buffer_size: number;
  batch_delay_ms: number;
  buffer_max: number;
  resync: boolean;
  sync_at_start: boolean;
  enable_accounting: boolean;
  enable_timestamps: boolean;
  reliable: boolean;
  flows: boolean;
  enable_events: boolean;
  events: Array<'new' | 'update' | 'destroy'>;
  family?: 'ipv4' | 'ipv6';
  proto: Array<string | number>;
  not_proto: Array<string | number>;
  src: string[];
  dst: string[];
  not_src: string[];
  not_dst: string[];
  port: string[];
  not_port: string[];
  mark: string[];
  zone: number[];
}

export interface SinkConfig {
  name: string;
  type: SinkType;
  sources: string[];
  format: (typeof FORMATS)[number];
  output: string[];
  path?: string;
  mode: string;
  fsync: 'never' | 'batch';
  rotate_size: number;
  rotate_keep: number;
  queue_size: number;
  when_full: 'block' | 'drop';
  ulogd_device: string;
  ulogd_eventv1: boolean;
  address: string;
  protocol: 'rfc3164' | 'rfc5424';
  facility: string;
  severity: string;
  tag: string;
  journal_socket: string;
  memfd_threshold: number;
}

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

export interface DaemonConfig {
  log_level: 'error' | 'warn' | 'info' | 'debug';
  listen?: string;
  source: SourceConfig[];
  sink: SinkConfig[];
  store: StoreConfig;
}

/** systemd's StateDirectory= (or /var/lib/conntrail) */
export function stateDirectory(): string {
  return (process.env.STATE_DIRECTORY ?? '').split(':')[0] || '/var/lib/conntrail';
}

/** netlink receive buffer bounds, bytes: the kernel doubles SO_RCVBUF and keeps it in an int */
export const RCVBUF_MIN = 4096;
export const RCVBUF_MAX = 1073741824;
/** records a sink may queue (in memory) */
export const QUEUE_MAX = 16777216;
/** journal: a memfd threshold beyond journald's largest entry (768 MiB) means nothing more */
export const MEMFD_THRESHOLD_MAX = 805306368;

const strList = (description: string) => ({ type: 'array', items: { type: 'string' }, default: [], description });

export const SOURCE_SCHEMA = {
  type: 'object',
  description: 'A conntrack event source: one netlink subscription in one network namespace, with its filters (evaluated in the kernel where possible, as for `conntrail events`).',
  additionalProperties: false,
  required: [],
  properties: {
    name: { type: 'string', minLength: 1, default: 'conntrack', description: 'Name that sinks refer to in `sources`.' },
    type: { const: 'conntrack', default: 'conntrack', description: 'The kind of source (conntrack events).' },
    netns: { type: 'string', minLength: 1, description: 'Network namespace to read (`/run/netns/NAME` or a path); default: the daemon\'s own.' },
    buffer_size: { type: 'integer', minimum: RCVBUF_MIN, maximum: RCVBUF_MAX, default: 16777216, description: 'Netlink receive buffer to ask for, in bytes (at most 1 GiB: the kernel doubles the value and keeps it in an int).' },
    batch_delay_ms: { type: 'integer', minimum: 0, maximum: 1000, default: 1, description: 'After a wake-up, wait this long before reading again.' },
    buffer_max: { type: 'integer', minimum: RCVBUF_MIN, maximum: RCVBUF_MAX, default: 268435456, description: 'After an overrun (ENOBUFS) the receive buffer grows at once to what the burst needed (eight times its size, or twice what was queued and dropped, whichever is more), up to this many bytes (at least `buffer_size`, at most 1 GiB). A limit, not memory: the kernel uses only what is queued.' },
    resync: { type: 'boolean', default: true, description: 'After an overrun, dump the conntrack table and pass every entry on (as `dump` records), so the flows open after the loss are known again.' },
    sync_at_start: { type: 'boolean', default: false, description: 'At start, dump the table and pass every entry on (as `dump` records), so flows that began earlier are known.' },
    enable_accounting: { type: 'boolean', default: false, description: 'At start, turn on nf_conntrack_acct in the source\'s namespace (packet and byte counters on DESTROY), and say so in the log.' },
    enable_timestamps: { type: 'boolean', default: false, description: 'At start, turn on nf_conntrack_timestamp in the source\'s namespace (start/stop times, so DESTROY carries the duration), and say so in the log.' },
    reliable: { type: 'boolean', default: false, description: 'Reliable event delivery (NETLINK_BROADCAST_ERROR + NETLINK_NO_ENOBUFS): the kernel keeps an event it cannot deliver and retries it, which can make it drop packets instead of events under extreme load.' },
    flows: { type: 'boolean', default: true, description: 'Feed the flow store with this source\'s flows (one record per flow). Only one source per network namespace may: set `false` on the others.' },
    enable_events: { type: 'boolean', default: true, description: 'With `flows`: at start, set nf_conntrack_events to 1 in the source\'s namespace (and say so in the log), so that connections that begin while no listener runs (the daemon restarting) still report their end; by default (2) the kernel gives them no events at all. Flows the daemon first sees in a table dump are checked by further dumps until they end.' },
    events: { type: 'array', items: { enum: ['new', 'update', 'destroy'] }, minItems: 1, uniqueItems: true, default: ['new', 'update', 'destroy'], description: 'Event types to subscribe to.' },
    family: { enum: ['ipv4', 'ipv6'], description: 'Only this address family.' },
    proto: { type: 'array', items: { type: ['string', 'integer'] }, default: [], description: 'Only these layer-4 protocols (names or numbers).' },
    not_proto: { type: 'array', items: { type: ['string', 'integer'] }, default: [], description: 'Never these protocols.' },
    src: strList('Original source in one of these addresses or CIDRs.'),
    dst: strList('Original destination in one of these addresses or CIDRs.'),
    not_src: strList('Original source in none of these.'),
    not_dst: strList('Original destination in none of these.'),
    port: strList('A port of either tuple in one of these ports or ranges ("80", "1000-2000").'),
    not_port: strList('No port of either tuple in these.'),
    mark: strList('Connection mark: "VALUE[/MASK]", any of them.'),
    zone: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 65535 }, default: [], description: 'Conntrack zones, any of them.' },
  },
} as const;

export const SINK_SCHEMA = {
  type: 'object',
  description: 'Where records go, in which format. Each sink has its own bounded queue.',
  additionalProperties: false,
  required: ['type'],
  properties: {
    name: { type: 'string', minLength: 1, description: 'Name in logs and counters (default: TYPE and its index).' },
    type: { enum: [...SINK_TYPES], description: '`stdout`, `file` (append to `path`), `syslog` (one message per record to `address`), or `journal` (systemd-journald, with a CT_* field for every record field).' },
    sources: strList('Names of the sources to take records from; empty: all.'),
    format: { enum: [...FORMATS], default: 'conntrack', description: 'Line format, as `conntrail events --format`.' },
    output: { type: 'array', items: { enum: ['extended', 'id', 'timestamp', 'ktimestamp', 'labels'] }, default: [], description: 'conntrack format options, as `-o`.' },
    path: { type: 'string', minLength: 1, description: 'file: the file to append to (created with `mode`; reopened on SIGHUP); its directory must exist.' },
    mode: { type: 'string', pattern: '^0?[0-7]{3}$', default: '0640', description: 'file: permissions of a file the sink creates (octal).' },
    fsync: { enum: ['never', 'batch'], default: 'never', description: 'file: `batch` calls fsync after every written batch.' },
    rotate_size: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: 'file: rotate when the file reaches this many bytes (0: never; or rename it and send SIGHUP, as logrotate does).' },
    rotate_keep: { type: 'integer', minimum: 1, maximum: 1000, default: 5, description: 'file: rotated files kept, PATH.1 (newest) to PATH.N.' },
    queue_size: { type: 'integer', minimum: 1, maximum: QUEUE_MAX, default: 65536, description: 'Records the sink may hold before it is full (the queue is in memory).' },
    when_full: { enum: ['block', 'drop'], default: 'block', description: '`block`: pause the sources until the sink catches up (the kernel buffer absorbs, then overruns are counted); `drop`: drop new records and count them.' },
    address: { type: 'string', default: '/dev/log', description: 'syslog: a local unix datagram socket path, `udp://HOST:PORT` or `tcp://HOST:PORT` (HOST an IPv4 address, an IPv6 address in brackets or a host name; PORT 1–65535). TCP is at-least-once: a record counts as written once the collector acknowledged it; records not acknowledged when a connection is lost are sent again (counted as `resent`); it reconnects with backoff, records wait in the queue meanwhile.' },
    protocol: { enum: ['rfc3164', 'rfc5424'], default: 'rfc3164', description: 'syslog: message format.' },
    facility: { enum: Object.keys(FACILITIES), default: 'daemon', description: 'syslog: facility.' },
    severity: { enum: Object.keys(SEVERITIES), default: 'info', description: 'syslog: severity; journal: PRIORITY.' },
    tag: { type: 'string', pattern: '^[!-~]{1,48}$', default: 'conntrail', description: 'syslog: tag (APP-NAME); journal: SYSLOG_IDENTIFIER.' },
    journal_socket: { type: 'string', minLength: 1, default: '/run/systemd/journal/socket', description: 'journal: journald\'s native socket.' },
    memfd_threshold: { type: 'integer', minimum: 0, maximum: MEMFD_THRESHOLD_MAX, default: 0, description: 'journal: send entries of this many bytes or more in a sealed memfd (0: only those too large for one datagram).' },
    ulogd_device: { type: 'string', default: 'Netfilter', description: 'ulogd-json: the "dvc" value.' },
    ulogd_eventv1: { type: 'boolean', default: false, description: 'ulogd-json: Logstash event v1 fields.' },
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

export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    log_level: { enum: ['error', 'warn', 'info', 'debug'], default: 'info', description: 'Level of the daemon\'s own log (stderr).' },
    listen: { type: 'string', pattern: '^(\\[[0-9a-fA-F:.]+\\]|[0-9.]+|localhost):[0-9]{1,5}$', description: 'Serve Prometheus metrics at http://ADDRESS:PORT/metrics: an IPv4 address, a bracketed IPv6 address or `localhost`, and a port 1-65535 (e.g. "127.0.0.1:9405", "[::1]:9405"); default: no metrics server.' },
    source: { type: 'array', items: SOURCE_SCHEMA, default: [{}], description: '`[[source]]` tables; default: one conntrack source with no filter.' },
    sink: { type: 'array', items: SINK_SCHEMA, default: [], description: '`[[sink]]` tables: where event lines go; none by default.' },
    store: { ...STORE_SCHEMA, default: {} },
  },
} as const;
