// The configuration's bounds and the checks check-config shares with run:
// addresses, URLs, directories (created without looping), buffer sizes.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenProblem, loadConfig, postgresUrlProblem, redactUrl } from '../../src/config/load.js';
import { checkDirUsable, checkFileUsable, ensureDir } from '../../src/util/fs.js';
import { rcvbufWarning } from '../../src/cli/events.js';

const dir = mkdtempSync(join(tmpdir(), 'conntrail-bounds-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** the one-line error of loading `text` as a configuration file */
function error(text: string): string {
  const f = join(dir, `c${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(f, text);
  try {
    loadConfig(f);
  } catch (e) {
    return (e as Error).message.slice(f.length);
  }
  return 'valid';
}

describe('configuration: sources and the flow store', () => {
  it('no fixed limit of sources (flow keys no longer pack the source in a few bits)', () => {
    const many = Array.from({ length: 40 }, (_, i) => `[[source]]\nname = "s${i}"\nnetns = "ns${i}"\n`).join('\n');
    assert.equal(error(`${many}\n[store]\npath = "${dir}/flows.db"\n`), 'valid');
  });
  it('one source per namespace feeds the flow store: one record per flow', () => {
    const two = `[[source]]\nname = "a"\nnetns = "rtr"\n[[source]]\nname = "b"\nnetns = "rtr"\nproto = ["tcp"]\n`;
    assert.equal(error(two), ':4: source[1].flows: source "a" already feeds the flow store from network namespace rtr: set flows = false on one of them (one record per flow)');
    assert.equal(error(two + 'flows = false\n'), 'valid');
    assert.equal(error(two + '[store]\ntype = "none"\n'), 'valid');
  });
});

describe('configuration: namespaces followed by pattern', () => {
  it('a pattern or a list in netns of conntrack, nflog and tcpstates sources; paths and empty names refused, naming the entry', () => {
    assert.equal(error(`[[source]]\nnetns = "qrouter-*"\n[store]\npath = "${dir}/flows.db"\n`), 'valid');
    assert.equal(error(`[[source]]\nnetns = ["qrouter-*", "snat-[0-9]*", "fixed"]\n[[source]]\nname = "pk"\ntype = "nflog"\ngroups = [5]\nnetns = "*"\n[store]\ntype = "none"\n`), 'valid');
    assert.equal(error(`[[source]]\nnetns = ["qrouter-*", "/run/netns/x"]\n`), ':2: source[0].netns[1]: "/run/netns/x": a pattern or a list matches names under /run/netns; a path names one namespace: give it alone, as a string');
    assert.match(error(`[[source]]\nnetns = []\n`), /^:2: source\[0\]\.netns: /);
    assert.equal(error(`[[source]]\ntype = "tcpstates"\nnetns = "qr-*"\n[store]\ntype = "none"\n`), 'valid');
    assert.equal(error(`[[source]]\ntype = "tcpstates"\nnetns = ["qr-*", "/proc/1/ns/net"]\n[store]\ntype = "none"\n`), ':3: source[0].netns[1]: "/proc/1/ns/net": a pattern or a list matches names under /run/netns; a path names one namespace: give it alone, as a string');
  });
  it('two sources may follow overlapping patterns into the store (checked per namespace when attached)', () => {
    assert.equal(error(`[[source]]\nname = "a"\nnetns = "qr-*"\n[[source]]\nname = "b"\nnetns = "qr-1*"\n[store]\npath = "${dir}/flows.db"\n`), 'valid');
  });
});

describe('configuration bounds', () => {
  it('buffer sizes: 4096 to 1 GiB, buffer_max at least buffer_size', () => {
    for (const n of [3000000000, 2 ** 31, 2 ** 32, 1e15, 1073741825, 4095, -1]) {
      assert.equal(error(`[[source]]\nbuffer_size = ${n}\n`), ':2: source[0].buffer_size: must be an integer from 4096 to 1073741824 (bytes)', String(n));
    }
    assert.equal(error('[[source]]\nbuffer_size = 1073741824\nbuffer_max = 1073741824\n'), 'valid');
    assert.match(error('[[source]]\nbuffer_size = 8192\nbuffer_max = 4096\n'), /^:3: source\[0\]\.buffer_max: 4096 is less than buffer_size \(8192\)/);
  });
  it('other integers name their range', () => {
    assert.equal(error('[[sink]]\ntype = "stdout"\nqueue_size = 1000000000000\n'), ':3: sink[0].queue_size: must be an integer from 1 to 16777216');
    assert.equal(error('[[source]]\nbatch_delay_ms = 1001\n'), ':2: source[0].batch_delay_ms: must be an integer from 0 to 1000 (ms)');
    assert.equal(error('[store]\nbatch_size = 0\n'), ':2: store.batch_size: must be an integer from 1 to 1000000');
  });
  it('listen: a real address, a port 1-65535', () => {
    assert.equal(listenProblem('127.0.0.1:9405'), undefined);
    assert.equal(listenProblem('[::1]:9405'), undefined);
    assert.equal(listenProblem('localhost:1'), undefined);
    assert.match(listenProblem('127.0.0.1:99999')!, /"99999" is not a port/);
    assert.match(listenProblem('127.0.0.1:0')!, /"0" is not a port/);
    assert.match(listenProblem('999.999.1.1:9405')!, /"999\.999\.1\.1" is not an IPv4 address/);
    assert.match(listenProblem('[::g]:9405')!, /is not an IPv4 address, a bracketed IPv6/);
    assert.match(error('listen = "127.0.0.1:65536"\n'), /^:1: listen: "127\.0\.0\.1:65536": "65536" is not a port \(1-65535\)$/);
  });
  it('PostgreSQL URLs: scheme, host, port, database, percent-encoding', () => {
    assert.equal(postgresUrlProblem('postgres://postgres@127.0.0.1:5432/postgres'), undefined);
    assert.equal(postgresUrlProblem('postgresql://u:p@[::1]/db?sslmode=require'), undefined);
    assert.equal(postgresUrlProblem('postgres:///db?host=/run/postgresql'), undefined);
    assert.match(postgresUrlProblem('mysql://x')!, /^is not a PostgreSQL URL/);
    assert.equal(postgresUrlProblem('postgres://u@h:99999/db'), 'port "99999" is not a port (1-65535)');
    assert.equal(postgresUrlProblem('postgres://u@h:0/db'), 'port "0" is not a port (1-65535)');
    assert.equal(postgresUrlProblem('postgres://u@h:x/db'), 'port "x" is not a port (1-65535)');
    assert.match(postgresUrlProblem('postgres:///db')!, /^names no host/);
    assert.match(postgresUrlProblem('postgres://h')!, /^names no database/);
    assert.match(postgresUrlProblem('postgres://h/')!, /^names no database/);
    assert.match(postgresUrlProblem('postgres://%zz@h/db')!, /user name is not percent-encoded properly/);
    assert.equal(redactUrl('postgres://u:secret@h/db'), 'postgres://u:***@h/db');
    assert.match(error('[store]\ntype = "postgres"\nurl = "postgres://u:secret@h:99999/db"\n'), /^:3: store\.url: "postgres:\/\/u:\*\*\*@h:99999\/db": port "99999"/);
  });
  it('retention: at least 1s unless 0 or forever', () => {
    assert.match(error('[store]\nretention = "0.4ms"\n'), /store\.retention: "0\.4ms" is shorter than 1s/);
    assert.equal(error('[store]\nretention = "0"\n'), 'valid');
    assert.equal(error('[store]\nretention = "1s"\n'), 'valid');
  });
  it('keys that are no plain word are quoted: the message stays one line', () => {
    assert.equal(error('"a\\nb" = 1\n'), ': "a\\nb": unknown key');
    assert.equal(error('[source]\nname = "x"\n'), ':1: source: must be [[source]] tables (an array of tables), not a [source] table');
  });
  it('a namespace name that is empty, "." or ".."', () => {
    assert.equal(error('[[source]]\nnetns = ""\n'), ':2: source[0].netns: must not be empty');
    assert.match(error('[[source]]\nnetns = ".."\n'), /^:2: source\[0\]\.netns: "\.\." is not a namespace name/);
  });
  it('a source filter larger than the kernel takes', () => {
    const src = Array.from({ length: 500 }, (_, i) => `"10.0.${i >> 8}.${i & 255}"`).join(', ');
    assert.match(error(`[[source]]\nsrc = [${src}]\n`), /^:1: source\[0\]: its filters need \d+ socket-filter instructions, the kernel takes at most 4096/);
  });
});

describe('directories', () => {
  it('ensureDir creates missing parents and accepts existing ones', () => {
    const d = join(dir, 'a', 'b', 'c');
    ensureDir(d, 0o750);
    assert.ok(statSync(d).isDirectory());
    assert.equal(statSync(d).mode & 0o777, 0o750 & ~process.umask());
    ensureDir(d);
    ensureDir(join(dir, 'a', '..', 'a', 'b'));
  });
  it('ensureDir ends with a named cause on procfs, sysfs, files and empty paths', () => {
    const t0 = Date.now();
    assert.throws(() => ensureDir('/proc/x'), { message: 'cannot create directory /proc/x: /proc is on procfs, not a place for files' });
    assert.throws(() => ensureDir('/proc/x/y/z'), /\/proc is on procfs/);
    assert.throws(() => ensureDir('/sys/x'), /\/sys is on sysfs/);
    assert.throws(() => ensureDir('/proc/self'), /is on procfs/);
    writeFileSync(join(dir, 'file'), '');
    assert.throws(() => ensureDir(join(dir, 'file', 'x')), { message: `cannot create directory ${join(dir, 'file', 'x')}: ${join(dir, 'file')} is not a directory` });
    assert.throws(() => ensureDir(''), /cannot create directory : an empty path/);
    assert.throws(() => ensureDir('a\0b'), /NUL/);
    assert.ok(Date.now() - t0 < 2000);
  });
  it('ensureDir and checkDirUsable name a directory they may not write', { skip: process.getuid?.() === 0 ? 'root may write anywhere' : false }, () => {
    const ro = join(dir, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    assert.throws(() => ensureDir(join(ro, 'x')), /: permission denied$/);
    assert.throws(() => checkDirUsable(join(ro, 'x'), 'a database'), /is not writable by this user/);
  });
  it('checkDirUsable: the nearest existing ancestor, on a real filesystem', () => {
    assert.deepEqual(checkDirUsable(join(dir, 'new', 'deeper'), 'a database'), { existing: dir, exists: false });
    assert.deepEqual(checkDirUsable(dir, 'a database'), { existing: dir, exists: true });
    assert.throws(() => checkDirUsable('/proc/x', 'a database'), { message: '/proc is on procfs, not a place for a database' });
    assert.throws(() => checkDirUsable(join(dir, 'file', 'x'), 'the spool'), /file is not a directory$/);
  });
  it('checkFileUsable: no directory, no pseudo-filesystem; a device only where allowed', () => {
    checkFileUsable(join(dir, 'new.db'), 'a database', { dirWrite: true });
    assert.throws(() => checkFileUsable(dir, 'a database'), /is a directory, not a database$/);
    assert.throws(() => checkFileUsable('/dev/null', 'a database'), /is a character device, not a database$/);
    checkFileUsable('/dev/null', 'a log file', { devicesOk: true, dirMustExist: true });
    assert.throws(() => checkFileUsable(join(dir, 'no', 'x.log'), 'a log file', { dirMustExist: true }), /directory .*no does not exist/);
    assert.throws(() => checkFileUsable('/proc/sysrq-trigger', 'a log file', { devicesOk: true }), /is on procfs/);
  });
});

describe('receive buffer warnings', () => {
  it('warns when the kernel grants less than asked (getsockopt reports twice the size)', () => {
    assert.equal(rcvbufWarning(16777216, 33554432, 212992), undefined);
    // 1 GiB: the kernel caps at INT_MAX / 2 before doubling
    assert.equal(rcvbufWarning(1073741824, 2147483646, 212992), undefined);
    assert.equal(rcvbufWarning(16777216, 425984, 212992),
      'conntrail: WARNING: netlink receive buffer: asked for 16777216 bytes, granted 212992 (without CAP_NET_ADMIN, SO_RCVBUF is capped by net.core.rmem_max = 212992; raise it or run with CAP_NET_ADMIN); overruns come sooner');
    assert.match(rcvbufWarning(16777216, 1048576, undefined)!, /granted 524288 \(the kernel's limit\)/);
  });
});

describe('configuration: sinks of aggregated records', () => {
  const base = `[[source]]\nenable_accounting = true\n[store]\ntype = "none"\n[[aggregate]]\nname = "m"\nkeys = ["src", "dport"]\n`;
  it('a file, stdout, syslog or journal sink takes a stage\'s records as JSON; the keys that do not apply are named', () => {
    assert.equal(error(`${base}[[sink]]\ntype = "file"\npath = "${dir}/agg.log"\naggregate = "m"\n`), 'valid');
    assert.equal(error(`${base}[[sink]]\ntype = "stdout"\naggregate = "m"\nformat = "json"\n`), 'valid');
    assert.equal(error(`${base}[[sink]]\ntype = "journal"\naggregate = "m"\n`), 'valid');
    assert.equal(error(`${base}[[sink]]\ntype = "stdout"\naggregate = "n"\n`), ':10: sink[0].aggregate: no [[aggregate]] is named "n" (aggregates: m)');
    assert.equal(error(`${base}[[sink]]\ntype = "stdout"\naggregate = "m"\nformat = "conntrack"\n`), ':11: sink[0].format: aggregated flow records are written as one of "json"');
    assert.equal(error(`${base}[[sink]]\ntype = "stdout"\naggregate = "m"\nrecords = "flows"\n`), ':11: sink[0].records: does not apply to a sink with aggregate = "m" (the aggregate\'s own keys choose its flows)');
    assert.equal(error(`${base}[[sink]]\ntype = "stdout"\naggregate = "m"\nsources = ["conntrack0"]\n`).replace(/^:\d+: /, ''), 'sink[0].sources: does not apply to a sink with aggregate = "m" (the aggregate\'s own keys choose its flows)');
    assert.equal(error(`${base}[[sink]]\ntype = "stdout"\naggregate = "m"\nnetns_prefix = true\n`), ':11: sink[0].netns_prefix: does not apply to a sink with aggregate = "m" (an aggregated record folds the flows of every namespace the stage takes)');
    assert.equal(error(`${base}[[sink]]\ntype = "stdout"\naggregate = "m"\noutput = ["id"]\n`), ':11: sink[0].output: does not apply to a sink with aggregate = "m" (its records are written as JSON)');
    assert.match(error(`${base}[[sink]]\ntype = "pcap"\npath = "${dir}/x.pcap"\naggregate = "m"\n`), /sink\[0\].*aggregate/);
  });
});

describe('configuration: IPFIX sinks to one collector', () => {
  it('two sinks to the same collector need two observation domains (its templates and sequence numbers are per domain)', () => {
    const base = `[[source]]\nenable_accounting = true\n[store]\ntype = "none"\n[[aggregate]]\nname = "m"\nkeys = ["src"]\n`;
    const two = (domain: string) => `${base}[[sink]]\ntype = "ipfix"\naddress = "udp://192.0.2.1:4739"\n[[sink]]\ntype = "ipfix"\naddress = "udp://192.0.2.1:4739"\naggregate = "m"\n${domain}`;
    assert.equal(error(two('')), ':11: sink[1].observation_domain: sink[0] exports to udp://192.0.2.1:4739 in observation domain 1 too: the collector would take the two sinks\' sequence numbers (and an aggregate\'s templates) as one exporter\'s; give this sink another observation_domain');
    assert.equal(error(two('observation_domain = 2\n')), 'valid');
    assert.equal(error(`${base}[[sink]]\ntype = "ipfix"\naddress = "udp://192.0.2.1:4739"\n[[sink]]\ntype = "ipfix"\naddress = "udp://192.0.2.1:4740"\n`), 'valid');
  });
});
