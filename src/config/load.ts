// Reads and validates the daemon's configuration before anything starts.
// Every error names the file, the line and the key, and what was expected.
// A file that is JSON with an "event" object is read as VyOS's
// conntrack-logger configuration (a drop-in for vyos-conntrack-logger).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseToml, TomlError } from 'smol-toml';
import {
  CONFIG_SCHEMA, QUEUE_MAX, SINK_SCHEMAS, SINK_TYPES, SOURCE_TYPES, stateDirectory,
  type ConntrackSourceConfig, type DaemonConfig, type NflogSourceConfig, type SinkConfig, type SourceType, type StoreConfig, type TcpstatesSourceConfig,
} from './schema.js';
import { checkTopology, sourceKind } from './topology.js';
export { sourceKind };
import { UsageError } from '../util/errors.js';
import { parseAddress } from '../sinks/syslog.js';
import { labelMapFile } from '../util/connlabel.js';
import { BPF_MAXINSNS, buildFilter, checkNetns, socketFilterSize, type FlowFilter } from '../sources/conntrack/filter.js';
import { isNetnsPattern } from '../sources/netns/watch.js';
import { checkDirUsable, checkFileUsable, kindOf } from '../util/fs.js';
import { parseDuration } from '../util/time.js';
import type { FlowEvent, FlowEventType } from '../records/event.js';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../records/values.js';

export class ConfigError extends UsageError {}

/** A conntrack source ready to open: its settings and compiled filter. */
export interface PlannedConntrack {
  type: 'conntrack';
  config: ConntrackSourceConfig;
  /** the namespaces to follow, by pattern on their names (then config.netns is unset; each one attached gets its own) */
  follow?: string[];
  filter: FlowFilter;
  /** an extra user-space predicate (the VyOS per-event protocol selection) */
  select?: (ev: FlowEvent) => boolean;
}
export interface PlannedNflog {
  type: 'nflog';
  config: NflogSourceConfig;
  /** as PlannedConntrack's */
  follow?: string[];
}
/** A source ready to open. */
export interface PlannedTcpstates {
  type: 'tcpstates';
  config: TcpstatesSourceConfig;
}
export type PlannedSource = PlannedConntrack | PlannedNflog | PlannedTcpstates;


export interface Plan {
  file: string;
  kind: 'toml' | 'vyos';
  config: DaemonConfig;
  sources: PlannedSource[];
}

/** What a plan is, for the log, check-config and systemd's STATUS. */
export function describePlan(plan: Plan): { kind: string; counts: string } {
  return {
    kind: plan.kind === 'vyos' ? 'VyOS conntrack-logger configuration' : 'TOML',
    counts: `${plan.config.source.length} source(s), ${plan.config.sink.length} sink(s), ` +
      (plan.config.store.type === 'none' ? 'no flow store' : plan.config.store.type === 'sqlite' ? `flow store ${plan.config.store.path}` : 'flow store postgres'),
  };
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validateTop = ajv.compile(CONFIG_SCHEMA);
const validateSource = Object.fromEntries(Object.entries(SOURCE_TYPES).map(([t, v]) => [t, ajv.compile(v.schema)]));
const validateSink = Object.fromEntries(Object.entries(SINK_SCHEMAS).map(([t, v]) => [t, ajv.compile(v)]));

/** An error of one table's own schema, its paths as if the whole file's. */
interface Found { e: ErrorObject; root: unknown }

/**
 * Validates the whole configuration: the top level first, then each
 * [[source]] and [[sink]] table against its own type's schema (a file sink
 * does not take `address`). Defaults are filled in. The first error, the
 * most specific (deepest) one, is returned.
 */
function validateConfig(raw: unknown): Found | undefined {
  const pick = (errs: ErrorObject[], root: unknown, prefix = '', schemaPrefix = '#'): Found | undefined => {
    if (!errs.length) return undefined;
    const e = [...errs].sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
    return { e: { ...e, instancePath: prefix + e.instancePath, schemaPath: e.schemaPath.replace(/^#/, schemaPrefix) }, root };
  };
  if (!validateTop(raw)) return pick(validateTop.errors ?? [], CONFIG_SCHEMA);
  const o = raw as { source: Array<{ type: SourceType }>; sink: Array<{ type: string }> };
  for (let i = 0; i < o.source.length; i++) {
    const t = o.source[i].type;
    const v = validateSource[t];
    if (!v(o.source[i])) return pick(v.errors ?? [], SOURCE_TYPES[t].schema, `/source/${i}`);
  }
  for (let i = 0; i < o.sink.length; i++) {
    const t = o.sink[i].type as keyof typeof SINK_SCHEMAS;
    const v = validateSink[t];
    if (!v(o.sink[i])) return pick(v.errors ?? [], SINK_SCHEMAS[t], `/sink/${i}`);
  }
  return undefined;
}

/** the other types of a table that take key `k` ("file sinks"), for a key its own type does not take */
function whoseKey(instancePath: string, k: string): string {
  const m = /^\/(source|sink)\/\d+$/.exec(instancePath);
  if (!m) return '';
  const owners = m[1] === 'sink'
    ? SINK_TYPES.filter((t) => Object.hasOwn(SINK_SCHEMAS[t].properties, k))
    : (Object.keys(SOURCE_TYPES) as SourceType[]).filter((t) => Object.hasOwn(SOURCE_TYPES[t].schema.properties, k));
  const names = owners.length > 1 ? `${owners.slice(0, -1).join(', ')} and ${owners[owners.length - 1]}` : owners[0];
  return owners.length ? ` for this ${m[1]} type (a key of ${names} ${m[1]}s)` : '';
}

/** "sink[1].format" for the JSON pointer "/sink/1/format" */
function keyPath(pointer: string, extra?: string): string {
  const parts = pointer.split('/').filter(Boolean);
  let s = '';
  for (const raw of parts) {
    const p = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    // a key of the user's that is no plain word is quoted (it may hold anything, a newline too)
    s += /^\d+$/.test(p) ? `[${p}]` : (s ? '.' : '') + (/^\w+$/.test(p) ? p : JSON.stringify(p));
  }
  if (extra) s += (s ? '.' : '') + (/^\w+$/.test(extra) ? extra : JSON.stringify(extra));
  return s || '(top level)';
}

/**
 * The line of a key in TOML text: the N-th [[table]] header for "sink[N]",
 * then the first "key =" inside it. 0 when not found.
 */
export function lineOf(text: string, path: string): number {
  const lines = text.split('\n');
  const m = /^(\w+)(?:\[(\d+)\])?(?:\.(\w+))?/.exec(path);
  if (!m) return 0;
  const [, table, idx, key] = m;
  const isHeader = (l: string) => /^\s*\[/.test(l);
  if (idx === undefined) {
    // a top-level key: before the first table header
    for (let i = 0; i < lines.length && !isHeader(lines[i]); i++) {
      if (new RegExp(`^\\s*${table}\\s*=`).test(lines[i])) return i + 1;
    }
    for (let i = 0; i < lines.length; i++) {
      if (!new RegExp(`^\\s*\\[\\[?\\s*${table}\\s*\\]`).test(lines[i])) continue;
      // a key of a [table]: its own line when it is there
      if (key) for (let j = i + 1; j < lines.length && !isHeader(lines[j]); j++) if (new RegExp(`^\\s*"?${key}"?\\s*=`).test(lines[j])) return j + 1;
      return i + 1;
    }
    return 0;
  }
  let seen = -1;
  for (let i = 0; i < lines.length; i++) {
    if (new RegExp(`^\\s*\\[\\[\\s*${table}\\s*\\]\\]`).test(lines[i]) && ++seen === Number(idx)) {
      if (!key) return i + 1;
      for (let j = i + 1; j < lines.length && !isHeader(lines[j]); j++) {
        if (new RegExp(`^\\s*"?${key}"?\\s*=`).test(lines[j])) return j + 1;
      }
      return i + 1;
    }
  }
  return 0;
}

function describe(e: ErrorObject, root: unknown): { key: string; message: string } {
  switch (e.keyword) {
    case 'additionalProperties': {
      const k = (e.params as { additionalProperty: string }).additionalProperty;
      return { key: keyPath(e.instancePath, k), message: `unknown key${whoseKey(e.instancePath, k)}` };
    }
    case 'required': {
      const k = (e.params as { missingProperty: string }).missingProperty;
      return { key: keyPath(e.instancePath, k), message: 'is required' };
    }
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues;
      return { key: keyPath(e.instancePath), message: `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}` };
    }
    case 'const':
      return { key: keyPath(e.instancePath), message: `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}` };
    case 'type': {
      const t = (e.params as { type: string | string[] }).type.toString().replace(',', ' or ');
      // [source] where [[source]] was meant
      if (t === 'array' && /^\/(source|sink)$/.test(e.instancePath)) {
        const k = e.instancePath.slice(1);
        return { key: k, message: `must be [[${k}]] tables (an array of tables), not a [${k}] table` };
      }
      return { key: keyPath(e.instancePath), message: `must be ${t}` };
    }
    case 'minimum':
    case 'maximum': {
      const b = bounds(e.schemaPath, root);
      return { key: keyPath(e.instancePath), message: `must be an integer from ${b.min} to ${b.max}${b.unit}` };
    }
    case 'minLength':
      return { key: keyPath(e.instancePath), message: 'must not be empty' };
    case 'minItems':
      return { key: keyPath(e.instancePath), message: 'must not be empty' };
    case 'uniqueItems':
      return { key: keyPath(e.instancePath), message: 'must not list a value twice' };
    case 'pattern':
      return {
        key: keyPath(e.instancePath),
        message: e.instancePath.endsWith('/listen') ? 'must be ADDRESS:PORT, e.g. "127.0.0.1:9405" or "[::1]:9405"'
          : e.instancePath.endsWith('/tag') ? 'must be 1 to 48 printable characters without spaces'
            : e.instancePath.endsWith('/sd_id') ? 'must be an RFC 5424 SD-ID NAME@NUMBER (a private enterprise number), e.g. "conntrail@32473"'
            : e.instancePath.endsWith('/retention') ? 'must be a duration such as "90d", "12h" or "30m", or "forever"'
              : e.instancePath.endsWith('/url') ? 'must be a PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE'
                : 'must be an octal mode such as "0640"',
      };
    default:
      return { key: keyPath(e.instancePath), message: e.message ?? 'is not valid' };
  }
}

/** The bounds of the integer a schema path ("#/properties/source/items/properties/buffer_size/minimum") points at. */
function bounds(schemaPath: string, root: unknown): { min: string; max: string; unit: string } {
  const parts = schemaPath.replace(/^#\//, '').split('/').slice(0, -1);
  let node: unknown = root;
  for (const part of parts) node = (node as Record<string, unknown> | undefined)?.[part];
  const n = (node ?? {}) as { minimum?: number; maximum?: number };
  const key = parts[parts.length - 1] === 'items' ? parts[parts.length - 2] : parts[parts.length - 1];
  const unit = /_ms$/.test(key) ? ' (ms)' : /^(buffer_size|buffer_max|rotate_size|memfd_threshold)$/.test(key) ? ' (bytes)' : '';
  return { min: String(n.minimum ?? 0), max: String(n.maximum ?? Number.MAX_SAFE_INTEGER), unit };
}

function fail(file: string, text: string, key: string, message: string): never {
  const line = lineOf(text, key);
  throw new ConfigError(`${file}${line ? `:${line}` : ''}: ${key}: ${message}`);
}

/** a configuration file is small: more than this is not one (and /dev/zero never ends) */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * What the configuration is loaded for: `run` (and check-config) checks that
 * the files and directories the daemon writes can be written; `read` (who,
 * flows: finding the store) does not, a reader needs none of them.
 */
export type Purpose = 'run' | 'read';

/** Reads and checks a configuration file; throws ConfigError with one line. */
export function loadConfig(file: string, purpose: Purpose = 'run'): Plan {
  const text = readConfigText(file);
  if (/^\s*\{/.test(text)) return loadVyos(file, text);
  return parseConfig(file, text, purpose);
}

function readConfigText(file: string): string {
  const cannot = (why: string): never => { throw new ConfigError(`${file}: cannot read the configuration file (${why})`); };
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return cannot(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code ?? (e as Error).message);
  }
  try {
    const st = fstatSync(fd);
    // a pipe (/dev/stdin) is read to its end; a device or directory never is
    if (!st.isFile() && !st.isFIFO()) cannot(`it is ${kindOf(st)}, not a file`);
    if (st.size > MAX_CONFIG_BYTES) cannot(`${st.size} bytes; a configuration file has at most ${MAX_CONFIG_BYTES}`);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const b = Buffer.allocUnsafe(65536);
      let n: number;
      try { n = readSync(fd, b, 0, b.length, null); } catch (e) { return cannot((e as NodeJS.ErrnoException).code ?? (e as Error).message); }
      if (n === 0) break;
      total += n;
      if (total > MAX_CONFIG_BYTES) cannot(`more than ${MAX_CONFIG_BYTES} bytes; not a configuration file`);
      chunks.push(b.subarray(0, n));
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The plan when there is no configuration file: one source, the SQLite store. */
export function defaultPlan(): Plan {
  return parseConfig('(built-in defaults)', '');
}

function parseConfig(file: string, text: string, purpose: Purpose = 'run'): Plan {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    if (e instanceof TomlError) {
      throw new ConfigError(`${file}:${e.line}: not valid TOML: ${e.message.split('\n')[0]}`);
    }
    // the parser's own limits (a RangeError, say) are still bad input
    throw new ConfigError(`${file}: not valid TOML: ${(e as Error).message}`);
  }
  const bad = validateConfig(raw);
  if (bad) {
    const d = describe(bad.e, bad.root);
    fail(file, text, d.key, d.message);
  }
  const config = raw as unknown as DaemonConfig;
  return { file, kind: 'toml', config, sources: plan(file, text, config, purpose) };
}

/** Does sink[i]'s table in the TOML text set `key` (not a default)? */
function lineOfKey(text: string, i: number, key: string): boolean {
  const at = lineOf(text, `sink[${i}].${key}`);
  return at > 0 && new RegExp(`^\\s*"?${key}"?\\s*=`).test(text.split('\n')[at - 1]);
}

/** What is wrong with a metrics address "HOST:PORT", or undefined. */
export function listenProblem(listen: string): string | undefined {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i);
  const port = listen.slice(i + 1);
  if (i < 0 || !/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return `"${port}" is not a port (1-65535)`;
  if (host === 'localhost') return undefined;
  if (/^\[.*\]$/.test(host) ? !isIPv6(host.slice(1, -1)) : !isIPv4(host)) {
    return `"${host}" is not an IPv4 address, a bracketed IPv6 address or "localhost" (e.g. "127.0.0.1:9405" or "[::1]:9405")`;
  }
  return undefined;
}

/**
 * What is wrong with a PostgreSQL connection URL, or undefined: the scheme,
 * a host (or a host= parameter: a unix socket directory), a port 1-65535
 * if given, a database name, and percent-encoding the driver can decode.
 */
export function postgresUrlProblem(url: string): string | undefined {
  const form = 'postgres://USER:PASSWORD@HOST:PORT/DATABASE';
  if (!/^postgres(ql)?:\/\//.test(url)) return `is not a PostgreSQL URL (${form})`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // the URL parser says only "Invalid URL": find the port it refused
    const port = /^[a-z]+:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#@]*):([^/?#]*)/.exec(url)?.[1];
    if (port) return `port "${port}" is not a port (1-65535)`;
    return `is not a valid URL (${form})`;
  }
  if (!u.hostname && !u.searchParams.get('host')) return `names no host (${form})`;
  if (u.port !== '' && Number(u.port) < 1) return `port "${u.port}" is not a port (1-65535)`;
  const db = u.pathname.replace(/^\//, '');
  if (!db) return `names no database (${form})`;
  for (const [what, v] of [['user name', u.username], ['password', u.password], ['database name', db]] as const) {
    try { decodeURIComponent(v); } catch { return `the ${what} is not percent-encoded properly (%XX)`; }
  }
  return undefined;
}

/** A URL for messages: the password hidden. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/, '$1:***@');
}

/** a filesystem check's message, led by the path as written unless it already is */
const withPath = (path: string, e: unknown): string => {
  const m = (e as Error).message;
  return m.startsWith(path) ? m : `${path}: ${m}`;
};

function plan(file: string, text: string, config: DaemonConfig, purpose: Purpose): PlannedSource[] {
  const names = new Set<string>();
  const st = config.store;
  st.path = st.path.replace('$STATE_DIRECTORY', stateDirectory());
  st.spool_dir = st.spool_dir.replace('$STATE_DIRECTORY', stateDirectory());
  if (st.type === 'postgres' && !st.url) fail(file, text, 'store.url', 'is required for a postgres store');
  if (st.type !== 'postgres' && st.url) fail(file, text, 'store.url', `only a postgres store has a url (this one is ${st.type})`);
  if (st.type === 'postgres') {
    const bad = postgresUrlProblem(st.url!);
    if (bad) fail(file, text, 'store.url', `${JSON.stringify(redactUrl(st.url!))}${bad.startsWith('is ') ? ' ' : ': '}${bad}`);
  }
  if (st.retention !== 'forever' && st.retention !== '0') {
    // a duration that rounds to nothing would keep everything; one of a
    // few ms would delete flows about as fast as they end
    const ms = parseDuration(st.retention);
    if (!(ms >= 1000)) fail(file, text, 'store.retention', `"${st.retention}" is shorter than 1s (use "0" or "forever" to keep flows)`);
  }
  if (config.listen !== undefined) {
    const bad = listenProblem(config.listen);
    if (bad) fail(file, text, 'listen', `"${config.listen}": ${bad}`);
  }
  if (purpose === 'run') {
    // what the daemon will create: check-config says now what run would say later
    try {
      if (st.type === 'sqlite') checkFileUsable(st.path, 'a database', { dirWrite: true });
    } catch (e) {
      fail(file, text, 'store.path', withPath(st.path, e));
    }
    // both stores spool when they cannot take a batch
    try {
      if (st.type !== 'none') checkDirUsable(st.spool_dir, 'the spool');
    } catch (e) {
      fail(file, text, 'store.spool_dir', withPath(st.spool_dir, e));
    }
  }
  const feeding = new Map<string, string>();
  const bound = new Map<string, string>();
  const sources = config.source.map((s, i): PlannedSource => {
    if (names.has(s.name)) fail(file, text, `source[${i}].name`, `"${s.name}" is used by another source`);
    names.add(s.name);
    if (s.type === 'tcpstates') return planTcpstates(s, i);
    const follow = followed(s, i);
    if (s.buffer_max < s.buffer_size) {
      fail(file, text, `source[${i}].buffer_max`, `${s.buffer_max} is less than buffer_size (${s.buffer_size}); it is what the buffer may grow to after an overrun`);
    }
    if (s.type === 'nflog') return planNflog(s, i, follow);
    // (a followed namespace is checked when it is attached)
    if (st.type !== 'none' && s.flows && !follow) {
      const ns = s.netns ?? '';
      const other = feeding.get(ns);
      if (other !== undefined) {
        fail(file, text, `source[${i}].flows`, `source "${other}" already feeds the flow store from ${ns ? `network namespace ${ns}` : 'this network namespace'}: set flows = false on one of them (one record per flow)`);
      }
      feeding.set(ns, s.name);
    }
    const label = (flag: string) => `source[${i}].${flag.replace(/^--/, '').replace(/-/g, '_').replace(/^event$/, 'events')}`;
    try {
      const filter = buildFilter({
        event: s.events.join(','), family: s.family, proto: s.proto.map(String), notProto: s.not_proto.map(String),
        src: s.src, dst: s.dst, notSrc: s.not_src, notDst: s.not_dst, port: s.port, notPort: s.not_port,
        mark: s.mark, zone: s.zone.map(String), netns: s.netns,
      }, label);
      // the daemon attaches the socket filter as it is; the kernel takes no larger one
      const insns = socketFilterSize(filter);
      if (insns > BPF_MAXINSNS) {
        fail(file, text, `source[${i}]`, `its filters need ${Number.isFinite(insns) ? insns : 'too many'} socket-filter instructions, the kernel takes at most ${BPF_MAXINSNS}: ` +
          'fewer src, dst, not_src, not_dst, proto, mark or zone values (or wider CIDRs)');
      }
      return follow ? { type: 'conntrack', config: s, filter, follow } : { type: 'conntrack', config: s, filter };
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      const m = /^([\w[\].]+): ([^]*)$/.exec((e as Error).message);
      if (m) fail(file, text, m[1], m[2]);
      throw e;
    }
  });
  /** a pattern (or list) in `netns`: the patterns, and netns unset (each namespace attached sets its own) */
  function followed(s: ConntrackSourceConfig | NflogSourceConfig | TcpstatesSourceConfig, i: number): string[] | undefined {
    const v = s.netns as string | string[] | undefined;
    if (!isNetnsPattern(v)) return undefined;
    const list = Array.isArray(v) ? v : [v];
    list.forEach((p, j) => {
      const key = Array.isArray(v) ? `source[${i}].netns[${j}]` : `source[${i}].netns`;
      if (p.includes('/')) fail(file, text, key, `"${p}": a pattern or a list matches names under /run/netns; a path names one namespace: give it alone, as a string`);
      try { checkNetns(p, key); } catch (e) { fail(file, text, key, (e as Error).message.replace(/^[^:]*: /, '')); }
    });
    delete s.netns;
    return list;
  }
  function planTcpstates(s: TcpstatesSourceConfig, i: number): PlannedTcpstates {
    const follow = followed(s, i);
    if (follow) return { type: 'tcpstates', config: { ...s, follow } };
    if (s.netns !== undefined && !/^\d+$/.test(s.netns)) {
      try {
        checkNetns(s.netns, `source[${i}].netns`);
      } catch (e) {
        fail(file, text, `source[${i}].netns`, (e as Error).message.replace(/^[^:]*: /, ''));
      }
    }
    return { type: 'tcpstates', config: s };
  }
  function planNflog(s: NflogSourceConfig, i: number, follow: string[] | undefined): PlannedNflog {
    if (follow) return { type: 'nflog', config: s, follow };
    try {
      if (s.netns !== undefined) checkNetns(s.netns, `source[${i}].netns`);
    } catch (e) {
      fail(file, text, `source[${i}].netns`, (e as Error).message.replace(/^[^:]*: /, ''));
    }
    // one socket per namespace can bind a group: a second would be refused at start
    for (const g of s.groups) {
      const key = `${s.netns ?? ''}\0${g}`;
      const other = bound.get(key);
      if (other !== undefined) fail(file, text, `source[${i}].groups`, `group ${g} is bound by source "${other}" already (one socket per network namespace can bind an NFLOG group)`);
      bound.set(key, s.name);
    }
    return { type: 'nflog', config: s };
  }
  // aggregation stages: each folds the flow records of conntrack sources that keep them
  const stages = new Set<string>();
  config.aggregate.forEach((a, i) => {
    a.name ??= `aggregate${i}`;
    if (stages.has(a.name)) fail(file, text, `aggregate[${i}].name`, `"${a.name}" is used by another aggregate`);
    stages.add(a.name);
    for (const src of a.sources) {
      const s = config.source.find((x) => x.name === src);
      if (!s) fail(file, text, `aggregate[${i}].sources`, `no source is named "${src}" (sources: ${[...names].join(', ')})`);
      if (s.type !== 'conntrack') fail(file, text, `aggregate[${i}].sources`, `an aggregate folds the flow records of conntrack sources, and source "${src}" is a ${s.type} source`);
      if (!s.flows) fail(file, text, `aggregate[${i}].sources`, `source "${src}" has flows = false: it keeps no flow records to fold`);
    }
    if (a.store && config.store.type === 'none') fail(file, text, `aggregate[${i}].store`, 'there is no flow store to write to ([store] type = "none")');
    if (!a.sources.length && !config.source.some((x) => x.type === 'conntrack' && x.flows)) {
      fail(file, text, `aggregate[${i}]`, 'an aggregate folds the flow records of conntrack sources, and there is none with flows = true');
    }
  });
  config.sink.forEach((k: SinkConfig, i) => {
    k.name ??= `${k.type}${i}`;
    if (k.aggregate !== undefined) {
      if (!stages.has(k.aggregate)) fail(file, text, `sink[${i}].aggregate`, `no [[aggregate]] is named "${k.aggregate}"${stages.size ? ` (aggregates: ${[...stages].join(', ')})` : ''}`);
      // the stage chooses the flows; what it sends is no flow to time out or to open a NAT session, nor a namespace's
      for (const key of ['sources', 'records', 'nat_events'] as const) {
        if (lineOfKey(text, i, key)) fail(file, text, `sink[${i}].${key}`, `does not apply to a sink with aggregate = "${k.aggregate}" (the aggregate's own keys choose its flows)`);
      }
      for (const key of ['active_timeout', 'inactive_timeout'] as const) {
        if (lineOfKey(text, i, key)) fail(file, text, `sink[${i}].${key}`, `does not apply to a sink with aggregate = "${k.aggregate}" (flows count at their end, whole)`);
      }
      if (lineOfKey(text, i, 'netns_prefix')) fail(file, text, `sink[${i}].netns_prefix`, `does not apply to a sink with aggregate = "${k.aggregate}" (an aggregated record folds the flows of every namespace the stage takes)`);
      for (const key of ['output', 'labelmap'] as const) {
        if (lineOfKey(text, i, key)) fail(file, text, `sink[${i}].${key}`, `does not apply to a sink with aggregate = "${k.aggregate}" (its records are written as JSON)`);
      }
      if (k.type === 'ipfix') {
        k.active_timeout = 0;
        k.inactive_timeout = 0;
      }
      // (a sink of aggregated records takes no source's records; topology.ts checks its format)
      k.records = 'flows';
    }
    for (const src of k.sources) {
      if (!names.has(src)) fail(file, text, `sink[${i}].sources`, `no source is named "${src}" (sources: ${[...names].join(', ')})`);
    }
    if (k.type === 'file' && !k.path) fail(file, text, `sink[${i}].path`, 'is required for a file sink');
    if (k.output?.length && (k.format ?? 'conntrack') !== 'conntrack') fail(file, text, `sink[${i}].output`, `applies to format "conntrack" only, not "${k.format}"`);
    if (k.labelmap !== undefined) {
      if (!k.output?.includes('labels')) fail(file, text, `sink[${i}].labelmap`, 'is read for output = ["labels"] only');
      try { labelMapFile(k.labelmap, 'labelmap'); } catch (e) { fail(file, text, `sink[${i}].labelmap`, (e as Error).message.replace(/^labelmap: /, '')); }
    }
    if (k.type === 'syslog') {
      try { parseAddress(k.address); } catch (e) { fail(file, text, `sink[${i}].address`, (e as Error).message); }
    }
    if (k.type === 'ipfix') {
      let kind: string;
      try { kind = parseAddress(k.address).kind; } catch (e) { fail(file, text, `sink[${i}].address`, (e as Error).message.replace(' is not a unix socket path, udp://HOST:PORT or tcp://HOST:PORT', ' is not udp://HOST:PORT or tcp://HOST:PORT')); }
      if (kind! === 'unix') fail(file, text, `sink[${i}].address`, `"${k.address}": an IPFIX collector is at udp://HOST:PORT or tcp://HOST:PORT`);
      // an IPFIX sink exports flow records (the topology check below sees to it that there are some)
      k.records = 'flows';
    }
    // (a NUL would cut the path short on its way to the kernel)
    if (k.type === 'journal' && k.journal_socket.includes('\0')) fail(file, text, `sink[${i}].journal_socket`, 'a path cannot contain a NUL character');
    if ((k.type === 'file' || k.type === 'pcap') && purpose === 'run') {
      // a file or pcap sink opens its file at start and creates no directory
      try {
        checkFileUsable(k.path!, k.type === 'pcap' ? 'a pcap file' : 'a log file', { dirMustExist: true, devicesOk: true, dirWrite: k.rotate_size > 0 });
      } catch (e) {
        fail(file, text, `sink[${i}].path`, withPath(k.path!, e));
      }
    }
  });
  // a collector keeps templates and sequence numbers per exporter address and observation domain: two sinks to one collector need two domains
  const exporters = new Map<string, number>();
  config.sink.forEach((k, i) => {
    if (k.type !== 'ipfix') return;
    const key = `${k.address}\0${k.observation_domain}`;
    const other = exporters.get(key);
    if (other !== undefined) {
      fail(file, text, `sink[${i}].observation_domain`, `sink[${other}] exports to ${k.address} in observation domain ${k.observation_domain} too: the collector would take the two sinks' sequence numbers (and an aggregate's templates) as one exporter's; give this sink another observation_domain`);
    }
    exporters.set(key, i);
  });
  // every sink can take what its sources send (config/topology.ts)
  const bad = checkTopology(config.source, config.sink);
  if (bad) fail(file, text, bad.key, bad.message);
  return sources;
}

// ---- VyOS conntrack-logger configuration ---------------------------------

const VYOS_PROTO_CLASS = (proto: number): string =>
  proto === IPPROTO_TCP ? 'tcp' : proto === IPPROTO_UDP ? 'udp' : proto === IPPROTO_ICMP ? 'icmp' : 'other';

function loadVyos(file: string, text: string): Plan {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  const o = raw as Record<string, unknown>;
  const bad = (key: string, msg: string): never => { throw new ConfigError(`${file}: ${key}: ${msg}`); };
  // a key of the file's, quoted unless it is a plain word (it may hold anything)
  const q = (k: string) => (/^\w+$/.test(k) ? k : JSON.stringify(k));
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('(top level)', 'must be an object');
  for (const k of Object.keys(o)) if (!['event', 'queue_size', 'log_level'].includes(k)) bad(q(k), 'unknown key (VyOS conntrack-logger keys: event, queue_size, log_level)');
  const ev = o.event;
  if (typeof ev !== 'object' || ev === null || Array.isArray(ev) || Object.keys(ev).length === 0) {
    bad('event', 'must be an object with at least one of "new", "update", "destroy" (the event filter is empty)');
  }
  const select = new Map<FlowEventType, Set<string> | 'all'>();
  for (const [name, protos] of Object.entries(ev as Record<string, unknown>)) {
    // own keys only: "constructor" or "toString" is no event group
    const groups = { new: 'NEW', update: 'UPDATE', destroy: 'DESTROY' } as const;
    const type = Object.hasOwn(groups, name) ? groups[name as keyof typeof groups] : undefined;
    if (!type) bad(`event.${q(name)}`, 'unexpected event group (one of "new", "update", "destroy")');
    if (typeof protos !== 'object' || protos === null || Array.isArray(protos)) bad(`event.${name}`, 'must be an object');
    const keys = Object.keys(protos as object);
    for (const p of keys) if (!['tcp', 'udp', 'icmp', 'other'].includes(p)) bad(`event.${name}.${q(p)}`, 'must be one of "tcp", "udp", "icmp", "other"');
    select.set(type!, keys.length === 0 ? 'all' : new Set(keys));
  }
  const qs = o.queue_size;
  const qmax = QUEUE_MAX;
  if (qs !== undefined && (!Number.isInteger(qs) || (qs as number) < 1 || (qs as number) > qmax)) bad('queue_size', `must be an integer from 1 to ${qmax}`);
  const level = o.log_level ?? 'info';
  if (typeof level !== 'string') bad('log_level', 'must be a string');
  const events = [...select.keys()].map((t) => t.toLowerCase() as 'new' | 'update' | 'destroy');
  // through the same validation as a TOML file's tables: the defaults live in the schema, once.
  // A drop-in for the VyOS logger writes its lines and feeds no flow store.
  const source = { type: 'conntrack', events, flows: false, enable_events: false } as ConntrackSourceConfig;
  if (!validateSource.conntrack(source)) throw new ConfigError(`${file}: ${validateSource.conntrack.errors?.[0]?.message ?? 'invalid'}`);
  const sink = { type: 'stdout', format: 'vyos' } as SinkConfig;
  if (qs !== undefined) sink.queue_size = qs as number;
  if (!validateSink.stdout(sink)) throw new ConfigError(`${file}: ${validateSink.stdout.errors?.[0]?.message ?? 'invalid'}`);
  sink.name = 'stdout';
  // a drop-in for the VyOS logger writes its lines and nothing else
  const store: StoreConfig = {
    type: 'none', path: '', retention: 'forever', flush_interval_ms: 1000, batch_size: 10000, spool_dir: '', queue_size: 200000, mode: '0640',
  };
  const config: DaemonConfig = { log_level: level === 'debug' ? 'debug' : 'info', source: [source], aggregate: [], sink: [sink], store };
  const filter = buildFilter({ event: events.join(',') });
  return {
    file, kind: 'vyos', config,
    sources: [{
      type: 'conntrack', config: source, filter,
      select: (e) => {
        // a resync's table entries are printed as [NEW] lines: the NEW selection applies
        const s = select.get(e.type === 'DUMP' ? 'NEW' : e.type);
        return s === 'all' || (s !== undefined && s.has(VYOS_PROTO_CLASS(e.proto)));
      },
    }],
  };
}

