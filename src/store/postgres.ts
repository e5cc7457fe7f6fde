// The PostgreSQL store: the same logical schema as SQLite (src/store/sql.ts),
// addresses as inet, `flows` partitioned by day of its start (UTC), batches
// written in one transaction with one INSERT ... SELECT FROM unnest(...) per
// table, so a batch of any size is a handful of statements.
import pg from 'pg';
import type { FlowRecord } from '../flow/record.js';
import {
  BUCKET, COLUMN_LIST, COLUMNS, LONG_FLOW_MS, indexDdl, SCHEMA_VERSION, searchQuery, topQuery, whoQuery,
  type AddrPort, type Buckets, type Built, type Dialect, type FlowSearch, type TopKey, type Window,
} from './sql.js';
import { clampToStore, rowToFlow, topRow } from './rows.js';
import type { FlowStore, OpenRow, StoreBatch, StoredFlow, TopRow } from './store.js';

export const POSTGRES: Dialect = {
  name: 'postgres',
  ph: (n) => `$${n}`,
  addr: (text) => text,
  addrEq: (col, param) => `${col} = ${param}::inet`,
  inCidr: (col, c, p) => (c.prefix === c.bytes.length * 8 ? `${col} = ${p(c.text)}::inet` : `${col} <<= ${p(c.text)}::inet`),
};

const COL_TYPES: Record<(typeof COLUMNS)[number], string> = {
  start: 'bigint', dur: 'bigint', proto: 'smallint', src: 'inet', sport: 'integer', dst: 'inet', dport: 'integer',
  nat_src: 'inet', nat_sport: 'integer', nat_dst: 'inet', nat_dport: 'integer', opkts: 'bigint', obytes: 'bigint',
  rpkts: 'bigint', rbytes: 'bigint', state: 'smallint', mark: 'bigint', zone: 'integer', status: 'bigint',
  ct_id: 'bigint', flags: 'smallint', ns: 'smallint',
};
const TABLE_COLS = COLUMNS.map((c) => `${c} ${COL_TYPES[c]}${c === 'start' || c === 'proto' ? ' NOT NULL' : ''}`).join(', ');

const MIGRATIONS: string[] = [
  `CREATE SEQUENCE flows_id_seq;
   CREATE TABLE flows (id bigint NOT NULL DEFAULT nextval('flows_id_seq'), ${TABLE_COLS}) PARTITION BY RANGE (start);
   CREATE TABLE long_flows (id bigint PRIMARY KEY, ${TABLE_COLS});
   CREATE TABLE open_flows (k bigint PRIMARY KEY, ${TABLE_COLS});
   ${indexDdl((e) => `(${e})`)}
   CREATE TABLE namespaces (id integer PRIMARY KEY, name text NOT NULL);`,
];

const DAY = 86400000;
const dayName = (day: number) => `flows_${new Date(day * DAY).toISOString().slice(0, 10).replace(/-/g, '')}`;

/** column arrays for unnest(), one array per column */
function columnArrays(rows: FlowRecord[]): unknown[][] {
  const a: unknown[][] = COLUMNS.map(() => []);
  for (const r of rows) {
    const v = [r.start, r.end === null ? null : r.end - r.start, r.proto, r.src, r.sport, r.dst, r.dport,
      r.natSrc, r.natSport, r.natDst, r.natDport, r.origPackets, r.origBytes, r.replyPackets, r.replyBytes,
      r.state, r.mark, r.zone, r.status, r.ctId, r.flags, r.ns];
    for (let i = 0; i < v.length; i++) a[i].push(v[i]);
  }
  return a;
}
const UNNEST_ARGS = (offset: number) => COLUMNS.map((c, i) => `$${offset + i}::${COL_TYPES[c]}[]`).join(', ');

export interface PostgresOptions {
  url: string;
  warn?: (msg: string) => void;
  /** a statement taking longer fails the batch (which then goes to the spool) */
  statementTimeoutMs?: number;
}

export class PostgresStore implements FlowStore {
  readonly kind = 'postgres';
  private readonly pool: pg.Pool;
  private ready: Promise<void> | undefined;
  private readonly days = new Set<number>();

  constructor(readonly opts: PostgresOptions) {
    this.pool = new pg.Pool({
      connectionString: opts.url, max: 2, connectionTimeoutMillis: 5000, idleTimeoutMillis: 10000,
      query_timeout: opts.statementTimeoutMs ?? 30000, application_name: 'conntrail',
    });
    // a server going away under an idle connection must not end the daemon
    this.pool.on('error', (e) => opts.warn?.(`postgres: ${e.message}`));
  }

  /** Runs `f` in one transaction on one connection. */
  private async tx<T>(f: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      const r = await f(c);
      await c.query('COMMIT');
      return r;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  /** Creates or migrates the schema once per connection life. */
  private schema(): Promise<void> {
    this.ready ??= this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(7305092)'); // one migrator at a time
      await c.query('CREATE TABLE IF NOT EXISTS conntrail_meta (k text PRIMARY KEY, v text NOT NULL)');
      const r = await c.query("SELECT v FROM conntrail_meta WHERE k = 'schema_version'");
      const v = r.rows.length ? Number(r.rows[0].v) : 0;
      if (v > SCHEMA_VERSION) throw new Error(`schema version ${v} is newer than this conntrail (${SCHEMA_VERSION})`);
      for (let i = v; i < SCHEMA_VERSION; i++) await c.query(MIGRATIONS[i]);
      await c.query("INSERT INTO conntrail_meta (k, v) VALUES ('schema_version', $1) ON CONFLICT (k) DO UPDATE SET v = $1", [String(SCHEMA_VERSION)]);
    }).catch((e: Error) => { this.ready = undefined; throw e; });
    return this.ready;
  }

  /** The partition of day `d` (days since the epoch), created once. */
  private async ensureDay(c: pg.PoolClient, d: number): Promise<void> {
    if (this.days.has(d)) return;
    await c.query(`CREATE TABLE IF NOT EXISTS ${dayName(d)} PARTITION OF flows FOR VALUES FROM (${d * DAY}) TO (${(d + 1) * DAY})`);
    this.days.add(d);
  }

  async write(b: StoreBatch): Promise<void> {
    await this.schema();
    await this.tx(async (c) => {
      if (b.opened.length) {
        await c.query(`INSERT INTO open_flows (k, ${COLUMN_LIST}) SELECT * FROM unnest($1::bigint[], ${UNNEST_ARGS(2)}) AS u(k, ${COLUMN_LIST})
          ON CONFLICT (k) DO UPDATE SET ${COLUMNS.map((x) => `${x} = EXCLUDED.${x}`).join(', ')}`,
        [b.opened.map((r) => r.key), ...columnArrays(b.opened)]);
      }
      if (b.settled.length) {
        const cols = COLUMNS.map((x) => (x === 'dur' ? 'greatest(s.e - o.start, 0)' : x === 'flags' ? 's.f' : `o.${x}`)).join(', ');
        const days = await c.query('SELECT DISTINCT floor(start / 86400000.0)::bigint AS d FROM open_flows WHERE k = ANY($1::bigint[])', [b.settled.map((s) => s.key)]);
        for (const r of days.rows) await this.ensureDay(c, Number(r.d));
        await c.query(`INSERT INTO flows (${COLUMN_LIST}) SELECT ${cols} FROM open_flows o
          JOIN unnest($1::bigint[], $2::bigint[], $3::smallint[]) AS s(k, e, f) ON o.k = s.k`,
        [b.settled.map((s) => s.key), b.settled.map((s) => s.end), b.settled.map((s) => s.flags)]);
        await c.query('DELETE FROM open_flows WHERE k = ANY($1::bigint[])', [b.settled.map((s) => s.key)]);
      }
      if (b.unopen.length) await c.query('DELETE FROM open_flows WHERE k = ANY($1::bigint[])', [b.unopen]);
      if (b.closed.length) {
        for (const d of new Set(b.closed.map((r) => Math.floor(r.start / DAY)))) await this.ensureDay(c, d);
        const ids = await c.query(`INSERT INTO flows (${COLUMN_LIST}) SELECT * FROM unnest(${UNNEST_ARGS(1)}) RETURNING id, dur`, columnArrays(b.closed));
        const longIds = ids.rows.filter((r) => r.dur !== null && Number(r.dur) >= LONG_FLOW_MS).map((r) => r.id as string);
        if (longIds.length) {
          // long_flows keeps a copy under the same id
          await c.query(`INSERT INTO long_flows (id, ${COLUMN_LIST}) SELECT id, ${COLUMN_LIST} FROM flows
            WHERE id = ANY($1::bigint[]) AND start >= $2 ON CONFLICT DO NOTHING`, [longIds, b.closed.reduce((m, r) => Math.min(m, r.start), Infinity)]);
        }
      }
    });
  }

  async openFlows(): Promise<OpenRow[]> {
    await this.schema();
    const r = await this.pool.query('SELECT k, start, flags, proto, sport, dport FROM open_flows');
    return r.rows.map((x) => ({ key: Number(x.k), start: Number(x.start), flags: Number(x.flags), proto: Number(x.proto), sport: x.sport, dport: x.dport }));
  }

  async setNamespaces(names: string[]): Promise<void> {
    await this.schema();
    for (let i = 0; i < names.length; i++) {
      await this.pool.query('INSERT INTO namespaces (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $2', [i, names[i]]);
    }
  }

  async namespaces(): Promise<Map<number, string>> {
    await this.schema();
    const r = await this.pool.query('SELECT id, name FROM namespaces');
    return new Map(r.rows.map((x) => [Number(x.id), String(x.name)]));
  }

  /** Drops whole day partitions whose flows all ended before the cutoff. */
  async expire(cutoff: number, _max: number): Promise<number> {
    await this.schema();
    const r = await this.pool.query(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'flows' AND c.relname ~ '^flows_[0-9]{8}$' ORDER BY c.relname`);
    let n = 0;
    for (const x of r.rows) {
      const name = String(x.relname);
      const day = Date.UTC(Number(name.slice(6, 10)), Number(name.slice(10, 12)) - 1, Number(name.slice(12, 14)));
      // flows shorter than LONG_FLOW_MS ended before day end + that; longer ones are in long_flows
      if (day + DAY + LONG_FLOW_MS > cutoff) break;
      const cnt = await this.pool.query(`SELECT count(*) AS n FROM ${name}`);
      await this.pool.query(`DROP TABLE ${name}`);
      this.days.delete(day / DAY);
      n += Number(cnt.rows[0].n);
    }
    await this.pool.query('DELETE FROM long_flows WHERE start + dur < $1', [cutoff]);
    return n;
  }

  async bounds(): Promise<Buckets | undefined> {
    await this.schema();
    const r = await this.pool.query(`SELECT (SELECT min(${BUCKET}) FROM flows) AS lo, (SELECT max(${BUCKET}) FROM flows) AS hi`);
    const { lo, hi } = r.rows[0] as { lo: string | null; hi: string | null };
    return lo === null || hi === null ? undefined : { lo: Number(lo), hi: Number(hi) };
  }

  private async all(b: Built): Promise<Array<Record<string, unknown>>> {
    await this.schema();
    return (await this.pool.query(b.sql, b.values)).rows as Array<Record<string, unknown>>;
  }

  async who(pub: AddrPort, w: Window, proto: number | undefined, remote: AddrPort | undefined): Promise<StoredFlow[]> {
    return (await this.all(whoQuery(POSTGRES, pub, w, proto, remote))).map(rowToFlow);
  }

  async search(s: FlowSearch): Promise<StoredFlow[]> {
    s = await clampToStore(s, this);
    return (await this.all(searchQuery(POSTGRES, s))).map(rowToFlow);
  }

  async top(s: FlowSearch, key: TopKey, by: 'bytes' | 'flows', limit: number): Promise<TopRow[]> {
    s = await clampToStore(s, this);
    return (await this.all(topQuery(POSTGRES, s, key, by, limit))).map((x) => topRow(key, x));
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
