// Bad input never ends in a stack trace, a hang, or an unnamed failure:
// random and mutated command lines and configuration files fed to the real
// CLI. It spawns the CLI, so it lives with the e2e tests, but it creates no
// namespace: check-config, who/flows against a small SQLite store, and the
// argument errors of events and dump (a valid events command line listens,
// in the own namespace, until it is killed).
//
// The rule every run is held to:
//   - it ends within its bound (events with valid arguments may still be
//     listening then: accepted when it has printed nothing on stderr);
//   - no stack trace (/\n\s+at /) and no "internal error" on stderr;
//   - exit 2 (bad input): exactly one stderr line "conntrail: ...", naming
//     the file (check-config) or an option or argument;
//   - exit 1 (a runtime failure): exactly one stderr line whose cause is one
//     of RUNTIME_CAUSES; or `who`'s documented "no flow matches" (exit 1,
//     stdout "none: ..." or a JSON verdict "none", nothing on stderr);
//   - exit 0: stderr lines all "conntrail: ...", at most one, plus the
//     counters line of --stats for events and dump;
//   - no other exit status, no signal.
//
// Fixed seed (BADINPUT_SEED to change it); fast-check prints the seed and
// the counterexample when a run fails. BADINPUT_SCALE multiplies the runs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CONNTRAIL } from '../helpers/cli.js';
import { SqliteStore } from '../../src/store/sqlite.js';

const SEED = Number(process.env.BADINPUT_SEED ?? 20261201);
const SCALE = Number(process.env.BADINPUT_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));

/** exit 1 is a runtime failure only with one of these causes named */
const RUNTIME_CAUSES: RegExp[] = [
  /permission denied/,
  /network namespace ".*" does not exist/,
  /cannot enter network namespace/,
  /the kernel has no conntrack netlink support/,
  /conntrack dump failed/,
  /no flow store there/,
  /not an SQLite database/,
  /not a conntrail flow store/,
  /cannot read the flow store \(/,
  /cannot open the flow store \(/,
  /the flow store is locked/,
];
/** exit 2 names what was wrong: an option, an argument, a command */
const NAMES_INPUT = /--[a-z]|option '|argument|ADDRESS|unknown command|too many arguments|the configuration file/;

const dir = mkdtempSync(join(tmpdir(), 'conntrail-badinput-'));
const db = join(dir, 'flows.db');

interface Bound { ms: number; mayRun?: boolean }

function check(args: string[], bound: Bound): void {
  const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), ...args], {
    encoding: 'utf8', timeout: bound.ms, killSignal: 'SIGKILL', maxBuffer: 64 << 20,
    // the default store and state live in the test's directory
    env: { ...process.env, STATE_DIRECTORY: join(dir, 'state'), CONNTRAIL_DEBUG: '' },
  });
  const what = `conntrail ${args.map((a) => JSON.stringify(a)).join(' ')}`;
  // BADINPUT_LOG=FILE: every run and its outcome, to see what the generators reach
  if (process.env.BADINPUT_LOG) appendFileSync(process.env.BADINPUT_LOG, JSON.stringify({ args, status: r.status, error: (r.error as NodeJS.ErrnoException | undefined)?.code, stderr: r.stderr }) + '\n');
  const err = r.stderr ?? '';
  const lines = err.split('\n').filter(Boolean);
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (timedOut) {
    assert.ok(bound.mayRun && err === '', `${what}: did not end within ${bound.ms} ms; stderr: ${err}`);
    return;
  }
  if (r.error) throw r.error;
  assert.equal(r.signal, null, `${what}: killed by ${r.signal}; stderr: ${err}`);
  assert.ok(!/\n\s+at /.test(err) && !/internal error/.test(err), `${what}: a stack trace or internal error: ${err}`);
  for (const l of lines) assert.match(l, /^conntrail: /, `${what}: stderr line not from conntrail: ${err}`);
  const cmd = args[0];
  if (r.status === 0) {
    const stats = (cmd === 'events' || cmd === 'dump') && args.includes('--stats') ? 1 : 0;
    assert.ok(lines.length <= 1 + stats, `${what}: exit 0 with ${lines.length} stderr lines: ${err}`);
  } else if (r.status === 2) {
    assert.equal(lines.length, 1, `${what}: exit 2 with ${lines.length} stderr lines: ${err}`);
    if (cmd === 'check-config') assert.ok(err.startsWith(`conntrail: ${args[1]}`), `${what}: does not name the file: ${err}`);
    else assert.match(lines[0], NAMES_INPUT, `${what}: names no option or argument: ${err}`);
  } else if (r.status === 1) {
    if (cmd === 'who' && err === '') {
      assert.match(r.stdout, /^none: |"verdict": "none"/, `${what}: exit 1 without a message`);
      return;
    }
    assert.equal(lines.length, 1, `${what}: exit 1 with ${lines.length} stderr lines: ${err}`);
    assert.ok(RUNTIME_CAUSES.some((re) => re.test(lines[0])), `${what}: exit 1 without a named runtime cause: ${err}`);
  } else {
    assert.fail(`${what}: exit ${r.status}: ${err}`);
  }
}

const opts = (numRuns: number, examples: unknown[] = []) => ({ seed: SEED, numRuns: runs(numRuns), examples: examples as never, includeErrorInReport: true });

// ---- values ---------------------------------------------------------------

/** odd text: empty, spaces, control characters, unicode, very long */
const oddText = fc.oneof(
  fc.constantFrom('', ' ', '-', '--', '\n', 'a\nb', '\t', '\u0000', '\u001b[31m', '\u2028', '💥', 'x'.repeat(5000), '%s%n', '../..', '-1'),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
/** numbers as text: huge, negative, fractional, hex, exponent */
const oddNumber = fc.oneof(
  fc.constantFrom('0', '-0', '-1', '1.5', '1e6', '1e15', '0x10', '4095', '4096', '65535', '65536', '99999', '2147483647', '2147483648',
    '4294967295', '4294967296', '1073741824', '1073741825', '3000000000', '9007199254740991', '9007199254740993', '99999999999999999999', 'NaN', 'Infinity', ' 5', '5 ', '+5'),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.double({ noNaN: false }).map(String),
  fc.integer().map(String),
);
const oddValue = fc.oneof(oddText, oddNumber);
const pick = <T>(...xs: T[]) => fc.constantFrom(...xs);

/** a value for an option: mostly plausible-but-wrong, sometimes right */
const addr = fc.oneof(pick('10.0.0.1', '10.0.0.0/8', '2001:db8::1', '2001:db8::/32', '0.0.0.0/0', '10.0.0.300', '10.0.0.0/33', 'fd00::/200', '1.2.3', '::ffff:1.2.3.4', 'localhost'), oddValue);
const port = fc.oneof(pick('80', '0', '65535', '65536', '1000-2000', '2000-1000', '1-', '-1', '80,443'), oddValue);
const proto = fc.oneof(pick('tcp', 'udp', 'icmp', 'TCP', '6', '255', '256', 'tcpp', 'tcp,udp', 'ipv6-icmp'), oddValue);
const time = fc.oneof(pick('now', '-10m', 'now-1d', '@1795000000', '@1795000000.5', '2026-11-23', '2026-11-23T14:05:09Z', '2026-11-23 14:05:09', '2026-13-45',
  'yesterday', '@', '@-1', '-5 min', '@99999999999999999999', '-99999999999999w'), oddValue);
const dbPath = pick(db, db, db, dir, '/dev/null', '/proc/self/status', join(dir, 'missing.db'), join(dir, 'plain.db'), '/tmp', '', 'x\ny', join(dir, 'flows.db', 'x'));
const pgUrl = pick('mysql://x', 'postgres://', 'postgres://u@127.0.0.1:99999/db', 'postgres://u@127.0.0.1:0/db', 'postgres://u@127.0.0.1:x/db', 'postgres://u@127.0.0.1',
  'postgres://u@127.0.0.1/', 'postgres://%zz@127.0.0.1/db', 'postgresql:///db', 'postgres://u@127.0.0.1:1/db', 'postgres://u:secret@[::1]:1/db', '');

/** a command line: options drawn from `spec` (each with a value arbitrary or none), in random order */
function commandLine(cmd: string[], spec: Array<[string, fc.Arbitrary<string> | null]>, fixed: string[] = []): fc.Arbitrary<string[]> {
  return fc.tuple(
    fc.subarray(spec, { minLength: 0, maxLength: 6 }).chain((chosen) => fc.tuple(...chosen.map(([o, v]) => (v ? v.map((x) => [o, x]) : fc.constant([o])))) as fc.Arbitrary<string[][]>),
    // now and then an unknown option or a stray argument
    fc.oneof({ weight: 7, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: pick('--bogus', '-Z', '--', 'extra-arg', '--help=x') }),
  ).chain(([pairs, junk]) => fc.shuffledSubarray(pairs, { minLength: pairs.length, maxLength: pairs.length })
    // (a command line cannot hold a NUL: spawn refuses it)
    .map((ps) => [...cmd, ...ps.flat(), ...(junk ? [junk] : []), ...fixed].map((a) => a.replace(/\0/g, '\\0'))));
}

// ---- configuration files ----------------------------------------------------

type Table = { header: string; keys: Record<string, string> };
const q = (s: string) => JSON.stringify(s);

function baseTables(store: 'sqlite' | 'postgres'): Table[] {
  return [
    { header: '', keys: { log_level: q('info'), listen: q('127.0.0.1:9405') } },
    { header: '[[source]]', keys: { name: q('fw'), buffer_size: '16777216', buffer_max: '268435456', batch_delay_ms: '1', events: '["new", "destroy"]', proto: '["tcp", 17]', not_src: '["192.168.100.0/24"]', port: '["80", "1000-2000"]', mark: '["0x10/0xff"]', zone: '[0, 1]' } },
    { header: '[[sink]]', keys: { type: q('file'), path: q(join(dir, 'log', 'flows.json')), format: q('json'), queue_size: '65536', rotate_size: '0', rotate_keep: '5', mode: q('0640'), sources: '["fw"]' } },
    { header: '[[sink]]', keys: { type: q('syslog'), address: q('udp://127.0.0.1:514'), facility: q('daemon'), tag: q('conntrail'), protocol: q('rfc5424') } },
    { header: '[[sink]]', keys: { type: q('journal'), memfd_threshold: '0', severity: q('info') } },
    store === 'sqlite'
      ? { header: '[store]', keys: { type: q('sqlite'), path: q(join(dir, 'store', 'flows.db')), retention: q('90d'), flush_interval_ms: '1000', batch_size: '10000', mode: q('0640') } }
      : { header: '[store]', keys: { type: q('postgres'), url: q('postgres://u@127.0.0.1:5432/flows'), spool_dir: q(join(dir, 'spool')), retention: q('forever') } },
  ];
}

const render = (ts: Table[]) => ts.map((t) => (t.header ? t.header + '\n' : '') + Object.entries(t.keys).map(([k, v]) => `${k} = ${v}\n`).join('')).join('\n');

/** TOML value literals, wrong in every way a value can be */
const tomlValue = fc.oneof(
  oddNumber.filter((n) => /^-?\d+(\.\d+)?(e\d+)?$/.test(n) || ['inf', 'nan'].includes(n)),
  pick('-1', '0', '1.5', '3000000000', '2147483648', '4294967296', '1000000000000000', '1e15', 'inf', '-inf', 'nan', 'true', '1979-05-27', '[]', '[1, "a"]', '[[1]]', '{ a = 1 }', '[""]'),
  oddText.map(q),
  pick('127.0.0.1:99999', '999.999.1.1:9405', '[::1]:0', 'localhost:65536', '1.2.3.4', ':9405', 'udp://h:99999', 'tcp://:514', 'udp://[::1]:514', '/dev/log', 'x:1',
    'postgres://u@h:99999/db', 'postgres://', 'postgres://u@127.0.0.1/', 'postgresql://%zz@h/db', 'mysql://x', 'postgres:///db',
    '/proc/x/flows.db', '/proc', '/sys/x', '/tmp', '/etc/passwd/x', '/dev/zero', '/dev/null', 'relative/x.db', '/nonexistent/x/y', '.', '..', '90', '0.5s', '99999999999999999999d', '0777', '8888', 'forever', 'json', 'xml').map(q),
);

const mutation = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constant('set' as const), fc.nat(), fc.nat(), tomlValue) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('delete' as const), fc.nat(), fc.nat(), fc.constant('')) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('unknown' as const), fc.nat(), fc.nat(), fc.oneof(pick('formt', 'buffersize', 'x-y', '"a b"', '"a\\nb"'), fc.stringMatching(/^[a-z_]{1,12}$/))) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('duplicate' as const), fc.nat(), fc.nat(), fc.constant('')) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('header' as const), fc.nat(), fc.nat(), pick('[source]', '[[store]]', '[[sink]', '[sinks]', '[store.x]', '')) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('garbage' as const), fc.nat(), fc.nat(), pick('=', 'a =', '[[', '"', 'a = 1 = 2', '\u0000', 'listen = "x"')) },
);

function mutate(ts: Table[], ms: Array<readonly [string, number, number, string]>): string {
  const t2 = ts.map((t) => ({ header: t.header, keys: { ...t.keys } }));
  const extra: string[] = [];
  for (const [kind, a, b, v] of ms) {
    const t = t2[a % t2.length];
    const keys = Object.keys(t.keys);
    const k = keys[b % Math.max(1, keys.length)];
    if (kind === 'set' && k) t.keys[k] = v;
    if (kind === 'delete' && k) delete t.keys[k];
    if (kind === 'unknown') t.keys[v] = '1';
    if (kind === 'duplicate') t2.push({ header: t.header || '[store]', keys: { ...t.keys } });
    if (kind === 'header') t.header = v;
    if (kind === 'garbage') extra.push(v);
  }
  return render(t2) + extra.map((x) => x + '\n').join('');
}

/** the test's store, unless the command line names one (or a configuration) */
const withStore = (args: string[]) => (args.some((a) => ['--db', '--postgres', '-c'].includes(a)) ? args : [...args, '--db', db]);

let nfile = 0;
function configFile(text: string, ext: string): string {
  const f = join(dir, `c${nfile++}.${ext}`);
  writeFileSync(f, text);
  return f;
}

const VYOS = { event: { new: {}, update: { tcp: {} }, destroy: { udp: {}, other: {} } }, queue_size: 10000, log_level: 'info' } as Record<string, unknown>;
const jsonValue: fc.Arbitrary<unknown> = fc.oneof(fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<unknown>, pick<unknown>(-1, 0, 1.5, 1e300, 2 ** 53, 3000000000, '', 'debug', null, [], {}, { tcp: {} }, { sctp: {} }));
const vyosMutation = fc.tuple(
  fc.array(fc.tuple(pick('event', 'queue_size', 'log_level', 'extra', '__proto__', 'event.new', 'event.update', 'event.constructor', 'event.new.tcp', 'event.destroy.other', 'event.bogus'), fc.option(jsonValue)), { minLength: 1, maxLength: 3 }),
  fc.option(fc.nat(), { freq: 6 }),
);

function mutateVyos([sets, cut]: [Array<[string, unknown]>, number | null]): string {
  const o = JSON.parse(JSON.stringify(VYOS)) as Record<string, unknown>;
  for (const [path, v] of sets) {
    const parts = path.split('.');
    let node = o as Record<string, unknown>;
    for (const p of parts.slice(0, -1)) {
      if (typeof node[p] !== 'object' || node[p] === null) node[p] = {};
      node = node[p] as Record<string, unknown>;
    }
    const last = parts[parts.length - 1];
    if (v === null) delete node[last]; else Object.defineProperty(node, last, { value: v, enumerable: true, writable: true, configurable: true });
  }
  const text = JSON.stringify(o);
  // sometimes a truncated file (still starting with "{")
  return cut === null ? text : text.slice(0, 1 + (cut % text.length));
}

// ---- the properties -------------------------------------------------------

describe('bad input: one line, a named cause, exit 2 (or 1 for a runtime cause), never a stack trace or a hang', { timeout: 300_000 }, () => {
  before(() => {
    new SqliteStore({ path: db }).close();
    writeFileSync(join(dir, 'plain.db'), 'not a database\n');
    mkdirSync(join(dir, 'log'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // the defects measured before this test existed: each is bad input (exit
  // 2, one line naming the key or option), not a hang, a silent change or
  // an exit 1
  it('the measured cases: exit 2 with the key or option named', () => {
    const conf = (text: string) => ['check-config', configFile(text, 'toml')];
    const many = (opt: string, n: number) => Array.from({ length: n }, (_, i) => [opt, `10.0.${i >> 8}.${i & 255}`]).flat();
    const cases: Array<[string[], RegExp]> = [
      [conf('listen = "127.0.0.1:99999"\n'), /:1: listen: "127\.0\.0\.1:99999": "99999" is not a port \(1-65535\)$/],
      [conf('listen = "999.999.1.1:9405"\n'), /:1: listen: .*"999\.999\.1\.1" is not an IPv4 address/],
      [conf('[store]\npath = "/proc/x/flows.db"\n'), /:2: store\.path: \/proc\/x\/flows\.db: \/proc is on procfs, not a place for a database$/],
      [conf('[store]\npath = "/tmp"\n'), /:2: store\.path: \/tmp is a directory, not a database$/],
      ...['3000000000', '2147483648', '4294967296', '1000000000000000'].map((n): [string[], RegExp] =>
        [conf(`[[source]]\nbuffer_size = ${n}\n`), /:2: source\[0\]\.buffer_size: must be an integer from 4096 to 1073741824 \(bytes\)$/]),
      [conf('[[source]]\nbuffer_max = 4294967296\n'), /:2: source\[0\]\.buffer_max: must be an integer from 4096 to 1073741824/],
      [conf('[[source]]\nbuffer_size = 1048576\nbuffer_max = 65536\n'), /:3: source\[0\]\.buffer_max: 65536 is less than buffer_size \(1048576\)/],
      [conf('[store]\ntype = "postgres"\nurl = "postgres://u@h:99999/db"\n'), /:3: store\.url: "postgres:\/\/u@h:99999\/db": port "99999" is not a port \(1-65535\)$/],
      [conf('[store]\ntype = "postgres"\nurl = "postgres://u@h"\n'), /:3: store\.url: .*names no database/],
      [conf('[[source]]\nnetns = ""\n'), /:2: source\[0\]\.netns: must not be empty$/],
      [conf('[[source]]\nname = "nf"\ntype = "nflog"\ngroups = [5]\n\n[[sink]]\ntype = "stdout"\nrecords = "flows"\nsources = ["nf"]\n'),
        /:9: sink\[0\].sources: a sink with records = "flows" takes the flow records of conntrack sources, and source "nf" is a nflog source$/],
      [conf('[[sink]]\ntype = "stdout"\nrecords = "flow"\n'), /:3: sink\[0\]\.records: must be one of "sources", "flows"$/],
      [conf('[[sink]]\ntype = "stdout"\nrecords = "flows"\nformat = "vyos"\n'), /:4: sink\[0\]\.format: flow records are written as one of "json"$/],
      [['check-config', '/dev/zero'], /\/dev\/zero: cannot read the configuration file \(it is a character device, not a file\)$/],
      [['events', '-b', '3000000000', '--count', '1'], /--buffer-size <bytes>' argument '3000000000' is invalid\. .*from 4096 to 1073741824/],
      [['events', '--netns', '', '--count', '1'], /--netns: an empty namespace name/],
      [['dump', '--netns', ''], /--netns: an empty namespace name/],
      [['dump', '--formt', 'json'], /^conntrail: unknown option '--formt' \(did you mean --format\?\)$/],
      [['flows', '--limit', '99999999999999999999', '--db', db], /--limit: "99999999999999999999" is not an integer from 0 to 1000000000$/],
      [['flows', '--min-bytes', '1e20', '--db', db], /--min-bytes: "1e20" is not an integer from 0 to 9007199254740991$/],
      [['flows', ...many('--host', 5000), '--db', db], /--host, --src, --dst: 5000 values, at most 200 in all/],
      [['flows', '--db', '/tmp'], /--db: \/tmp is a directory, not an SQLite flow store file$/],
      [['who', '10.0.0.1:80', '--db', '/tmp'], /--db: \/tmp is a directory, not an SQLite flow store file$/],
      [['flows', '--postgres', 'postgres://u@h:99999/db'], /--postgres: "postgres:\/\/u@h:99999\/db": port "99999" is not a port \(1-65535\)$/],
    ];
    for (const [args, re] of cases) {
      const r = spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), ...args], { encoding: 'utf8', timeout: 10_000, killSignal: 'SIGKILL' });
      const what = `conntrail ${args.slice(0, 6).join(' ')}`;
      assert.equal(r.status, 2, `${what}: exit ${r.status} (${(r.error as NodeJS.ErrnoException | undefined)?.code ?? ''}): ${r.stderr}`);
      assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, `${what}: ${r.stderr}`);
      assert.match(r.stderr.trim(), re, what);
    }
  });

  it('check-config: mutated TOML files', () => {
    const measured = [
      'listen = "127.0.0.1:99999"\n', 'listen = "999.999.1.1:9405"\n', '[store]\npath = "/proc/x/flows.db"\n',
      '[[source]]\nbuffer_size = 3000000000\n', '[[source]]\nbuffer_size = 2147483648\n', '[[source]]\nbuffer_max = 4294967296\n',
      '[store]\ntype = "postgres"\nurl = "postgres://u@h:99999/db"\n', '[[source]]\nnetns = ""\n', '[store]\npath = "/tmp"\n',
    ];
    fc.assert(fc.property(
      fc.tuple(pick('sqlite', 'postgres') as fc.Arbitrary<'sqlite' | 'postgres'>, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([s, ms]) => mutate(baseTables(s), ms)),
      (text) => check(['check-config', configFile(text, 'toml')], { ms: 10_000 }),
    ), opts(30, measured.map((m) => [m])));
  });

  it('check-config: mutated VyOS conntrack-logger JSON files', () => {
    fc.assert(fc.property(vyosMutation, (m) => check(['check-config', configFile(mutateVyos(m), 'json')], { ms: 10_000 })),
      opts(10, [
        [[[['queue_size', 1e300]], null]],
        [[[['event.constructor', {}]], null]],
      ]));
  });

  it('check-config: files that are no configuration files', () => {
    for (const f of ['/dev/zero', '/dev/null', dir, join(dir, 'missing.toml'), '/proc/self/status', '']) check(['check-config', f], { ms: 10_000 });
  });

  it('flows: random options and values against a small store', () => {
    const spec: Array<[string, fc.Arbitrary<string> | null]> = [
      ['--host', addr], ['--src', addr], ['--dst', addr], ['--port', port], ['-p', proto], ['--proto', proto], ['--nat', fc.oneof(pick('none', 'snat', 'dnat', 'both', 'masq', 'snat,dnat'), oddValue)],
      ['--since', time], ['--until', time], ['--min-bytes', oddNumber], ['--limit', oddNumber], ['--top', fc.oneof(pick('hosts', 'ports', 'pairs'), oddValue)],
      ['--by', fc.oneof(pick('bytes', 'flows'), oddValue)], ['--json', null], ['--csv', null], ['--db', dbPath], ['--postgres', pgUrl], ['-c', pick(join(dir, 'missing.toml'), '/dev/zero', dir)],
    ];
    const many = (opt: string, n: number) => Array.from({ length: n }, (_, i) => [opt, `10.0.${i >> 8}.${i & 255}`]).flat();
    fc.assert(fc.property(commandLine(['flows'], spec).map(withStore), (args) => check(args, { ms: 10_000 })), opts(20, [
      [['flows', '--limit', '99999999999999999999', '--db', db]], [['flows', ...many('--host', 5000), '--db', db]],
      [['flows', '--db', '/tmp']], [['flows', '--min-bytes', '99999999999999999999', '--db', db]],
    ]));
  });

  // who: --at and --window within the dates and durations a person asks
  // about (extremes: the test below)
  it('who: random options and values against a small store', () => {
    const sane = pick('now', '-10m', '@1795000000', '2026-11-23T14:05:09Z', '2026-11-23 14:05:09', 'yesterday', '2026-13-45', '', 'x\ny');
    const spec: Array<[string, fc.Arbitrary<string> | null]> = [
      ['--at', sane], ['--proto', proto], ['--remote', fc.oneof(addr, pick('10.0.0.1:80', '[2001:db8::1]:443', '10.0.0.1:70000'))],
      ['--window', pick('30s', '5m', '1h', '5 min', '', '-1m', 'x')], ['--skew', pick('0s', '2s', '250us', '-1s', '1e3s', '')],
      ['--json', null], ['--db', dbPath],
    ];
    const target = fc.oneof(pick('198.51.100.7:40001', '[2001:db8::1]:443', '10.0.0.1', '10.0.0.1:70000', '10.0.0.300:80', '[::1]', '1.2.3.4:'), addr);
    fc.assert(fc.property(target.chain((t) => commandLine(['who', t], spec)).map(withStore), (args) => check(args, { ms: 10_000 })), opts(12, [
      [['who', '1.2.3.4', '--db', '/tmp']], [['who', '1.2.3.4:80', '--db', dir]],
    ]));
  });

  // (these ran for minutes, or ended with exit 1 "Invalid time value", before
  // the window was clamped to the store and times and durations bounded)
  it('who: extreme --at, --window and --skew values', () => {
    const extreme = pick('@999999999999999999', '@9000000000000', '-99999999999999w', '@0', '275760-01-01', '2199-12-31T23:59:59.999999Z', '1969-12-31T23:59:59Z');
    fc.assert(fc.property(extreme, pick('1m', '3650d', '36500d', '36501d', '99999999999w'), pick('0s', '1000000d', '36500d'),
      (at, w, skew) => check(['who', '10.0.0.1:80', '--at', at, '--window', w, '--skew', skew, '--db', db], { ms: 5_000 })),
      { seed: SEED, numRuns: runs(8), endOnFailure: true, includeErrorInReport: true });
  });

  const filterSpec = (withEvents: boolean): Array<[string, fc.Arbitrary<string> | null]> => [
    ...(withEvents ? [['-e', fc.oneof(pick('NEW', 'ALL', 'new,destroy', 'DUMP', 'NEW,,'), oddValue)]] as Array<[string, fc.Arbitrary<string>]> : []),
    ['-f', fc.oneof(pick('ipv4', 'ipv6', 'inet', 'ipv5'), oddValue)], ['-p', proto], ['--not-proto', proto], ['-s', addr], ['-d', addr],
    ['--not-src', addr], ['--not-dst', addr], ['--port', port], ['--not-port', port],
    ['-m', fc.oneof(pick('0x10', '0x10/0xff', '1/2/3', '4294967296', '0x100000000', '/1', '1/'), oddValue)],
    ['-w', fc.oneof(pick('0', '65535', '65536', '0x10'), oddValue)],
    ['--netns', fc.oneof(pick('', '.', '..', 'no-such-ns-badinput', '/nonexistent/ns', '/etc/passwd', dir), oddText)],
    ['--format', fc.oneof(pick('conntrack', 'json', 'vyos', 'xml'), oddValue)], ['-o', fc.oneof(pick('extended,id', 'xml', 'labels', 'ktimestamp', 'bogus'), oddValue)],
    ['--ulogd-device', oddText], ['--ulogd-eventv1', null], ['--stats', null],
  ];

  it('events: argument errors (valid command lines get --count 1 and are killed when they listen on)', () => {
    const spec: Array<[string, fc.Arbitrary<string> | null]> = [
      ...filterSpec(true),
      ['-b', fc.oneof(pick('0', '4095', '4096', '1073741824', '1073741825', '2147483648', '3000000000', '1e6', '0x1000'), oddNumber)],
      ['--count', fc.oneof(pick('0', '1', '-1', '9007199254740993'), oddNumber)],
      ['--batch-delay', fc.oneof(pick('0', '1000', '1001', '-1', '4294967296'), oddNumber)], ['--no-kernel-filter', null],
    ];
    fc.assert(fc.property(commandLine(['events'], spec, ['--count', '1']), (args) => check(args, { ms: 1_500, mayRun: true })), opts(12, [
      [['events', '-b', '3000000000', '--count', '1']], [['events', '--netns', '', '--count', '1']], [['events', '--batch-delay', '99999999999', '--count', '1']],
    ]));
  });

  it('packets: argument errors (valid command lines get --count 1 and are killed when they listen on)', () => {
    const spec: Array<[string, fc.Arbitrary<string> | null]> = [
      ['--group', fc.oneof(pick('0', '65535', '65536', '-1', '32', '0x20'), oddNumber)],
      ['--netns', fc.oneof(pick('', '.', 'no-such-ns-badinput', '/etc/passwd', dir), oddText)],
      ['--format', fc.oneof(pick('logemu', 'ulogd-json', 'json', 'kernel', 'xml'), oddValue)],
      ['--copy-range', fc.oneof(pick('0', '65535', '65536', '-1'), oddNumber)],
      ['--qthreshold', fc.oneof(pick('0', '1', '65535', '65536'), oddNumber)],
      ['--timeout', fc.oneof(pick('0', '60000', '60001'), oddNumber)],
      ['-b', fc.oneof(pick('4095', '4096', '3000000000'), oddNumber)],
      ['--no-conntrack', null], ['--hwhdr', null], ['--stats', null],
    ];
    fc.assert(fc.property(commandLine(['packets', '--group', '61'], spec, ['--count', '1']), (args) => check(args, { ms: 1_500, mayRun: true })), opts(10, [
      [['packets']], [['packets', '--group', '70000']], [['packets', '--group', '61', '--netns', '', '--count', '1']],
    ]));
  });

  it('dump: argument errors', () => {
    fc.assert(fc.property(commandLine(['dump'], filterSpec(false)), (args) => check(args, { ms: 10_000 })), opts(10, [
      [['dump', '--netns', '']], [['dump', '-m', '1/2/3']], [['dump', '--formt', 'json']],
    ]));
  });
});
