// Reads and validates the daemon's configuration before anything starts.
// Every error names the file, the line and the key, and what was expected.
// A file that is JSON with an "event" object is read as VyOS's
// conntrack-logger configuration (a drop-in for vyos-conntrack-logger).
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseToml, TomlError } from 'smol-toml';
import { CONFIG_SCHEMA, stateDirectory, type DaemonConfig, type SinkConfig, type SourceConfig, type StoreConfig } from './schema.js';
import { UsageError } from '../util/errors.js';
import { parseAddress } from '../sinks/syslog.js';
import { buildFilter } from '../cli/options.js';
import type { FlowFilter } from '../pipeline/filter.js';
import type { FlowEvent, FlowEventType } from '../conntrack/record.js';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../conntrack/constants.js';

export class ConfigError extends UsageError {}

/** A source ready to open: its settings and compiled filter. */
export interface PlannedSource {
  config: SourceConfig;
  filter: FlowFilter;
  /** an extra user-space predicate (the VyOS per-event protocol selection) */
  select?: (ev: FlowEvent) => boolean;
}

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
const validate = ajv.compile(CONFIG_SCHEMA);

/** "sink[1].format" for the JSON pointer "/sink/1/format" */
function keyPath(pointer: string, extra?: string): string {
  const parts = pointer.split('/').filter(Boolean);
  let s = '';
  for (const p of parts) s += /^\d+$/.test(p) ? `[${p}]` : (s ? '.' : '') + p;
  if (extra) s += (s ? '.' : '') + extra;
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

function describe(e: ErrorObject): { key: string; message: string } {
  switch (e.keyword) {
    case 'additionalProperties': {
      const k = (e.params as { additionalProperty: string }).additionalProperty;
      return { key: keyPath(e.instancePath, k), message: 'unknown key' };
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
    case 'type':
      return { key: keyPath(e.instancePath), message: `must be ${(e.params as { type: string | string[] }).type.toString().replace(',', ' or ')}` };
    case 'pattern':
      return {
        key: keyPath(e.instancePath),
        message: e.instancePath.endsWith('/listen') ? 'must be ADDRESS:PORT, e.g. "127.0.0.1:9405" or "[::1]:9405"'
          : e.instancePath.endsWith('/tag') ? 'must be 1 to 48 printable characters without spaces'
            : e.instancePath.endsWith('/retention') ? 'must be a duration such as "90d", "12h" or "30m", or "forever"'
              : e.instancePath.endsWith('/url') ? 'must be a PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE'
                : 'must be an octal mode such as "0640"',
      };
    default:
      return { key: keyPath(e.instancePath), message: e.message ?? 'is not valid' };
  }
}

function fail(file: string, text: string, key: string, message: string): never {
  const line = lineOf(text, key);
  throw new ConfigError(`${file}${line ? `:${line}` : ''}: ${key}: ${message}`);
}

/** Reads and checks a configuration file; throws ConfigError with one line. */
export function loadConfig(file: string): Plan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`${file}: cannot read the configuration file (${code === 'ENOENT' ? 'no such file' : code ?? (e as Error).message})`);
  }
  if (/^\s*\{/.test(text)) return loadVyos(file, text);
  return parseConfig(file, text);
}

/** The plan when there is no configuration file: one source, the SQLite store. */
export function defaultPlan(): Plan {
  return parseConfig('(built-in defaults)', '');
}

function parseConfig(file: string, text: string): Plan {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    if (e instanceof TomlError) {
      throw new ConfigError(`${file}:${e.line}: not valid TOML: ${e.message.split('\n')[0]}`);
    }
    throw e;
  }
  if (!validate(raw)) {
    const errs = validate.errors ?? [];
    // the most specific error first: the deepest path
    const e = [...errs].sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
    const d = describe(e);
    fail(file, text, d.key, d.message);
  }
  const config = raw as unknown as DaemonConfig;
  return { file, kind: 'toml', config, sources: plan(file, text, config) };
}

function plan(file: string, text: string, config: DaemonConfig): PlannedSource[] {
  const names = new Set<string>();
  const st = config.store;
  st.path = st.path.replace('$STATE_DIRECTORY', stateDirectory());
  st.spool_dir = st.spool_dir.replace('$STATE_DIRECTORY', stateDirectory());
  if (st.type === 'postgres' && !st.url) fail(file, text, 'store.url', 'is required for a postgres store');
  if (st.type !== 'postgres' && st.url) fail(file, text, 'store.url', `only a postgres store has a url (this one is ${st.type})`);
  const feeding = new Map<string, string>();
  const sources = config.source.map((s, i) => {
    if (names.has(s.name)) fail(file, text, `source[${i}].name`, `"${s.name}" is used by another source`);
    names.add(s.name);
    if (st.type !== 'none' && s.flows) {
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
        mark: s.mark, zone: s.zone.map(String),
      }, label);
      return { config: s, filter };
    } catch (e) {
      const m = /^([\w[\].]+): (.*)$/.exec((e as Error).message);
      if (m) fail(file, text, m[1], m[2]);
      throw e;
    }
  });
  config.sink.forEach((k: SinkConfig, i) => {
    k.name ??= `${k.type}${i}`;
    for (const src of k.sources) {
      if (!names.has(src)) fail(file, text, `sink[${i}].sources`, `no source is named "${src}" (sources: ${[...names].join(', ')})`);
    }
    if (k.type === 'file' && !k.path) fail(file, text, `sink[${i}].path`, 'is required for a file sink');
    if (k.type !== 'file' && k.path) fail(file, text, `sink[${i}].path`, `only a file sink has a path (this one is ${k.type})`);
    if (k.output.length && k.format !== 'conntrack') fail(file, text, `sink[${i}].output`, `applies to format "conntrack" only, not "${k.format}"`);
    if (k.type === 'syslog') {
      try { parseAddress(k.address); } catch (e) { fail(file, text, `sink[${i}].address`, (e as Error).message); }
    }
  });
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
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('(top level)', 'must be an object');
  for (const k of Object.keys(o)) if (!['event', 'queue_size', 'log_level'].includes(k)) bad(k, 'unknown key (VyOS conntrack-logger keys: event, queue_size, log_level)');
  const ev = o.event;
  if (typeof ev !== 'object' || ev === null || Array.isArray(ev) || Object.keys(ev).length === 0) {
    bad('event', 'must be an object with at least one of "new", "update", "destroy" (the event filter is empty)');
  }
  const select = new Map<FlowEventType, Set<string> | 'all'>();
  for (const [name, protos] of Object.entries(ev as Record<string, unknown>)) {
    const type = ({ new: 'NEW', update: 'UPDATE', destroy: 'DESTROY' } as const)[name];
    if (!type) bad(`event.${name}`, 'unexpected event group (one of "new", "update", "destroy")');
    if (typeof protos !== 'object' || protos === null || Array.isArray(protos)) bad(`event.${name}`, 'must be an object');
    const keys = Object.keys(protos as object);
    for (const p of keys) if (!['tcp', 'udp', 'icmp', 'other'].includes(p)) bad(`event.${name}.${p}`, 'must be one of "tcp", "udp", "icmp", "other"');
    select.set(type!, keys.length === 0 ? 'all' : new Set(keys));
  }
  const qs = o.queue_size;
  if (qs !== undefined && (!Number.isInteger(qs) || (qs as number) < 1)) bad('queue_size', 'must be a positive integer');
  const level = o.log_level ?? 'info';
  if (typeof level !== 'string') bad('log_level', 'must be a string');
  const events = [...select.keys()].map((t) => t.toLowerCase() as 'new' | 'update' | 'destroy');
  const source: SourceConfig = {
    name: 'conntrack', type: 'conntrack', buffer_size: 16777216, batch_delay_ms: 1, buffer_max: 268435456,
    resync: true, reliable: false, flows: false, sync_at_start: false, enable_accounting: false, enable_timestamps: false, events,
    proto: [], not_proto: [], src: [], dst: [], not_src: [], not_dst: [], port: [], not_port: [], mark: [], zone: [],
  };
  const sink: SinkConfig = {
    name: 'stdout', type: 'stdout', sources: [], format: 'vyos', output: [], mode: '0640', fsync: 'never', rotate_size: 0, rotate_keep: 5,
    queue_size: (qs as number | undefined) ?? 65536, when_full: 'block', ulogd_device: 'Netfilter', ulogd_eventv1: false,
    address: '/dev/log', protocol: 'rfc3164', facility: 'daemon', severity: 'info', tag: 'conntrail',
    journal_socket: '/run/systemd/journal/socket', memfd_threshold: 0,
  };
  // a drop-in for the VyOS logger writes its lines and nothing else
  const store: StoreConfig = {
    type: 'none', path: '', retention: 'forever', flush_interval_ms: 1000, batch_size: 10000, spool_dir: '', queue_size: 200000, mode: '0640',
  };
  const config: DaemonConfig = { log_level: level === 'debug' ? 'debug' : 'info', source: [source], sink: [sink], store };
  const filter = buildFilter({ event: events.join(',') });
  return {
    file, kind: 'vyos', config,
    sources: [{
      config: source, filter,
      select: (e) => {
        // a resync's table entries are printed as [NEW] lines: the NEW selection applies
        const s = select.get(e.type === 'DUMP' ? 'NEW' : e.type);
        return s === 'all' || (s !== undefined && s.has(VYOS_PROTO_CLASS(e.proto)));
      },
    }],
  };
}

