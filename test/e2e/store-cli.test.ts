// conntrail who / flows: bad input and missing stores get one line and a
// non-zero exit; a store being written by another process is still read.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONNTRAIL } from '../helpers/cli.js';
import { SqliteStore } from '../../src/store/sqlite.js';

const run = (args: string[]) => spawnSync(CONNTRAIL[0], [...CONNTRAIL.slice(1), ...args], { encoding: 'utf8' });

describe('conntrail who and flows: errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-qcli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'flows.db');

  const cases: Array<[string, string[], number, RegExp]> = [
    ['a missing store', ['who', '10.0.0.1:80', '--db', join(dir, 'none.db')], 1, /none\.db: no flow store there/],
    ['a bad address', ['who', '10.0.0.300:80', '--db', db], 2, /ADDRESS\[:PORT\]: "10\.0\.0\.300:80" is not ADDRESS\[:PORT\]/],
    ['a bad port', ['who', '10.0.0.1:70000', '--db', db], 2, /port must be 0-65535/],
    ['a bad time', ['who', '10.0.0.1:80', '--at', 'yesterday', '--db', db], 2, /--at: "yesterday" is not a time/],
    ['a bad window', ['who', '10.0.0.1:80', '--window', '5 min', '--db', db], 2, /--window: "5 min" is not a duration/],
    ['a bad remote', ['who', '10.0.0.1:80', '--remote', 'x', '--db', db], 2, /--remote: "x" is not ADDRESS/],
    ['a bad CIDR', ['flows', '--host', '10.0.0.0/33', '--db', db], 2, /--host: "10\.0\.0\.0\/33": prefix length/],
    ['a bad NAT kind', ['flows', '--nat', 'masq', '--db', db], 2, /--nat: "masq" is not one of none, snat, dnat, both/],
    ['since after until', ['flows', '--since', '2026-11-23', '--until', '2026-11-22', '--db', db], 2, /--since is after --until/],
    ['a bad PostgreSQL URL', ['flows', '--postgres', 'mysql://x'], 2, /--postgres: "mysql:\/\/x" is not a PostgreSQL URL/],
    ['an unreachable PostgreSQL', ['who', '10.0.0.1:80', '--postgres', 'postgres://u@127.0.0.1:1/db'], 1, /127\.0\.0\.1:1\/db: cannot read the flow store \(connect ECONNREFUSED/],
    ['not a flow store', ['flows', '--db', join(dir, 'plain.db')], 1, /plain\.db: not an SQLite database\n$/],
  ];
  for (const [name, args, code, re] of cases) {
    it(name, () => {
      new SqliteStore({ path: db }).db.close();
      writeFileSync(join(dir, 'plain.db'), 'not sqlite at all, just text that is long enough to be a header............................................');
      const r = run(args);
      assert.equal(r.status, code, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^conntrail: /);
      assert.match(r.stderr, re);
      assert.equal(r.stdout, '');
    });
  }

  it('an empty store: who says none (exit 1), flows prints the header only', () => {
    new SqliteStore({ path: db }).db.close();
    const w = run(['who', '10.0.0.1:80', '--db', db]);
    assert.equal(w.status, 1);
    assert.match(w.stdout, /^none: no flow used 10\.0\.0\.1:80 within 1m of /);
    const f = run(['flows', '--db', db]);
    assert.equal(f.status, 0, f.stderr);
    assert.match(f.stdout, /^START +END +PROTO/);
    assert.equal(f.stdout.trim().split('\n').length, 1);
  });

  it('a store held in a write transaction by the daemon is still read (WAL)', () => {
    const w = new SqliteStore({ path: db });
    w.db.exec('BEGIN IMMEDIATE');
    const f = run(['flows', '--db', db, '--json']);
    w.db.exec('ROLLBACK');
    w.db.close();
    assert.equal(f.status, 0, f.stderr);
    assert.deepEqual(JSON.parse(f.stdout), []);
  });
});
