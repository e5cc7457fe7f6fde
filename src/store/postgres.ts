// The PostgreSQL store: the same logical schema as SQLite (src/store/sql.ts),
// addresses as inet, `flows` partitioned by day of its start (UTC), batches
// written in one transaction with one INSERT ... SELECT FROM unnest(...) per
// table, so a batch of any size is a handful of statements.
import pg from 'pg';
import { UNBOUNDED, type FlowRecord } from '../records/flow.js';
import {
  BUCKET, BUCKET_US, COLUMN_LIST, COLUMNS, LONG_FLOW_US, indexDdl, SCHEMA_VERSION, searchQuery, topQuery, whoQuery,
  type AddrPort, type Buckets, type Built, type Dialect, type FlowSearch, type TopKey, type Window,
} from './sql.js';
import { clampToStore, packetTopRow, rowToFlow, rowToOpen, topRow } from './rows.js';
import { AGGREGATE_COLUMNS, AGGREGATE_PG_TYPES, aggregateSearchQuery, aggregateValues, rowToAggregate, type AggregateSearch } from './aggregates.js';
import type { AggregateRecord } from '../records/aggregate.js';
import { flowHolderQuery, holdersOf, rowToTcpState, TCPSTATE_COLUMNS, tcpStateSearchQuery, tcpStateValues, type FlowHolders, type StoredTcpState, type TcpStateSearch } from './tcpstates.js';
import { flowPacketsQuery, PACKET_COLUMNS, packetSearchQuery, packetTopQuery, packetValues, rowToPacket, type PacketSearch, type PacketTopKey, type PacketTopRow, type StoredPacket } from './packets.js';
import type { FlowStore, Gap, GapKind, OpenRow, Run, StoreBatch, StoredFlow, TopRow, WriteResult } from './store.js';

export const POSTGRES: Dialect = {
  name: 'postgres',
  ph: (n) => `$${n}`,
  addr: (text) => text,
  addrEq: (col, param) => `${col} = ${param}::inet`,
  inCidr: (col, c, p) => (c.prefix === c.bytes.length * 8 ? `${col} = ${p(c.text)}::inet` : `${col} <<= ${p(c.text)}::inet`),
};

const COL_TYPES: Record<(typeof COLUMNS)[number], string> = {
  start: 'bigint', dur: 'bigint', adur: 'bigint', serr: 'bigint', eerr: 'bigint', proto: 'smallint', src: 'inet', sport: 'integer',
  dst: 'inet', dport: 'integer', nat_src: 'inet', nat_sport: 'integer', nat_dst: 'inet', nat_dport: 'integer', opkts: 'bigint',
  obytes: 'bigint', rpkts: 'bigint', rbytes: 'bigint', state: 'smallint', mark: 'bigint', zone: 'integer', status: 'bigint',
  ct_id: 'bigint', flags: 'smallint', ns: 'integer',
};
const NOT_NULL = new Set(['start', 'proto', 'serr', 'eerr']);
const TABLE_COLS = COLUMNS.map((c) => `${c} ${COL_TYPES[c]}${NOT_NULL.has(c) ? ' NOT NULL' : ''}`).join(', ');

// schema 1's columns (times in ms, no activity or uncertainty)
const V1_COLUMNS = COLUMNS.filter((c) => c !== 'adur' && c !== 'serr' && c !== 'eerr');
const V1_COLS = V1_COLUMNS.map((c) => `${c} ${c === 'ns' ? 'smallint' : COL_TYPES[c]}${c === 'start' || c === 'proto' ? ' NOT NULL' : ''}`).join(', ');
const INDEX_NAMES = ['flows_src', 'flows_dst', 'flows_nat_src', 'flows_nat_dst', 'long_flows_end', 'long_flows_src', 'long_flows_dst',
  'long_flows_nat_src', 'long_flows_nat_dst', 'open_flows_src', 'open_flows_dst', 'open_flows_nat_src', 'open_flows_nat_dst'];

const DAY_US = 86_400_000_000;
const dayName = (day: number) => `flows_${new Date(day * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '')}`;

/** MIGRATIONS[i] takes the schema from version i to i + 1, inside one transaction */
const MIGRATIONS: Array<(c: pg.PoolClient) => Promise<unknown>> = [
  (c) => c.query(`CREATE SEQUENCE flows_id_seq;
   CREATE TABLE flows (id bigint NOT NULL DEFAULT nextval('flows_id_seq'), ${V1_COLS}) PARTITION BY RANGE (start);
   CREATE TABLE long_flows (id bigint PRIMARY KEY, ${V1_COLS});
   CREATE TABLE open_flows (k bigint PRIMARY KEY, ${V1_COLS});
   ${indexDdl((e) => `(${e})`).replaceAll(BUCKET, 'start / 60000')}
   CREATE TABLE namespaces (id integer PRIMARY KEY, name text NOT NULL);`),
  // 2: µs instead of ms; when each flow was active and how uncertain its
  // start and end are; the runs of the daemon and the times events were lost
  async (c) => {
    await c.query(INDEX_NAMES.map((i) => `DROP INDEX IF EXISTS ${i};`).join('\n'));
    await c.query('ALTER TABLE flows RENAME TO flows_v1');
    const parts = await c.query(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'flows_v1'`);
    for (const r of parts.rows) await c.query(`ALTER TABLE ${r.relname} RENAME TO v1_${r.relname}`);
    await c.query(`CREATE TABLE flows (id bigint NOT NULL DEFAULT nextval('flows_id_seq'), ${TABLE_COLS}) PARTITION BY RANGE (start)`);
    const days = await c.query('SELECT DISTINCT floor(start / 86400000.0)::bigint AS d FROM flows_v1');
    for (const r of days.rows) {
      const d = Number(r.d);
      await c.query(`CREATE TABLE ${dayName(d)} PARTITION OF flows FOR VALUES FROM (${d * DAY_US}) TO (${(d + 1) * DAY_US})`);
    }
    const conv = (t: string) => V1_COLUMNS.map((x) => (x === 'start' || x === 'dur' ? `${x} * 1000` : x)).join(', ') +
      `, ${t === 'open_flows' ? 'NULL' : 'dur * 1000'}, CASE WHEN flags & 2 <> 0 THEN ${UNBOUNDED} ELSE 0 END, ` +
      'CASE WHEN flags & 4 <> 0 THEN coalesce(dur, 0) * 1000 ELSE 0 END';
    const cols = `${V1_COLUMNS.join(', ')}, adur, serr, eerr`;
    await c.query(`INSERT INTO flows (id, ${cols}) SELECT id, ${conv('flows')} FROM flows_v1`);
    await c.query('DROP TABLE flows_v1 CASCADE');
    for (const [t, k] of [['long_flows', 'id'], ['open_flows', 'k']] as const) {
      await c.query(`ALTER TABLE ${t} RENAME TO ${t}_v1`);
      await c.query(`CREATE TABLE ${t} (${k} bigint PRIMARY KEY, ${TABLE_COLS})`);
      await c.query(`INSERT INTO ${t} (${k}, ${cols}) SELECT ${k}, ${conv(t)} FROM ${t}_v1`);
      await c.query(`DROP TABLE ${t}_v1`);
    }
    await c.query(`${indexDdl((e) => `(${e})`)}
      CREATE TABLE runs (id bigint PRIMARY KEY, started bigint NOT NULL, alive bigint NOT NULL, stopped bigint, note text);
      INSERT INTO runs (id, started, alive, stopped, note)
        SELECT * FROM (SELECT 1 AS id, min(start) AS s, max(start + dur) AS a, max(start + dur) AS e,
       'before schema 2: coverage not recorded' AS note FROM flows) AS m WHERE s IS NOT NULL;
      CREATE TABLE gaps (id bigserial PRIMARY KEY, ns integer NOT NULL, since bigint NOT NULL, until bigint NOT NULL, reason text NOT NULL);
      CREATE INDEX gaps_until ON gaps (until);`);
  },
  // 3: the batches applied (each once), kept for a week
  (c) => c.query(`CREATE TABLE batches (id text PRIMARY KEY, t bigint NOT NULL);
    CREATE INDEX batches_t ON batches (t);`),
  // 4: packet logs
  (c) => c.query(`CREATE TABLE packets (id bigserial PRIMARY KEY, t bigint NOT NULL, ns integer NOT NULL, grp integer NOT NULL,
      hook smallint NOT NULL, family smallint NOT NULL, prefix text NOT NULL, indev text, outdev text, proto smallint, src inet,
      sport integer, dst inet, dport integer, len integer, tcp_flags smallint, icmp_type smallint, icmp_code smallint, mark bigint,
      uid bigint, ct_id bigint);
    CREATE INDEX packets_t ON packets (t);
    CREATE INDEX packets_src ON packets (src, t);
    CREATE INDEX packets_dst ON packets (dst, t);
    ALTER TABLE gaps ADD COLUMN kind text NOT NULL DEFAULT 'events';`),
  // 5: TCP state changes
  (c) => c.query(`CREATE TABLE tcp_states (id bigserial PRIMARY KEY, t bigint NOT NULL, ns integer NOT NULL, netns bigint NOT NULL,
      family smallint NOT NULL, src inet NOT NULL, sport integer NOT NULL, dst inet NOT NULL, dport integer NOT NULL, old_state smallint NOT NULL,
      new_state smallint NOT NULL, span bigint, pid bigint NOT NULL, tid bigint NOT NULL, comm text NOT NULL, kthread smallint NOT NULL,
      holder smallint NOT NULL, cookie bigint NOT NULL, boot bigint NOT NULL);
    CREATE INDEX tcp_states_t ON tcp_states (t);
    CREATE INDEX tcp_states_ports ON tcp_states (sport, dport, t);
    CREATE INDEX tcp_states_cookie ON tcp_states (cookie, t);
    ALTER TABLE runs ADD COLUMN boot bigint;`),
  // 6: a namespace is its name and its inode (one deleted and made again under the same name is another)
  (c) => c.query(`ALTER TABLE namespaces ADD COLUMN inode bigint;
    CREATE INDEX namespaces_name ON namespaces (name, inode);`),
  // 7: aggregated flow records
  (c) => c.query(`CREATE TABLE aggregates (id bigserial PRIMARY KEY, t bigint NOT NULL, name text NOT NULL, interval_us bigint NOT NULL,
      first bigint NOT NULL, last bigint NOT NULL, family smallint NOT NULL, proto smallint, src inet, src_prefix smallint, dst inet,
      dst_prefix smallint, sport integer, dport integer, nat_src inet, nat_sport integer, nat_dst inet, nat_dport integer, flows bigint NOT NULL,
      opkts bigint NOT NULL, obytes bigint NOT NULL, rpkts bigint NOT NULL, rbytes bigint NOT NULL);
    CREATE INDEX aggregates_t ON aggregates (t);`),
];

const TCPSTATE_TYPES = ['bigint', 'integer', 'bigint', 'smallint', 'inet', 'integer', 'inet', 'integer', 'smallint', 'smallint', 'bigint', 'bigint',
  'bigint', 'text', 'smallint', 'smallint', 'bigint', 'bigint'];

const PACKET_TYPES = ['bigint', 'integer', 'integer', 'smallint', 'smallint', 'text', 'text', 'text', 'smallint', 'inet', 'integer', 'inet',
  'integer', 'integer', 'smallint', 'smallint', 'smallint', 'bigint', 'bigint', 'bigint'];

/** how long the ids of applied batches are kept (a spool older than that is replayed as new) */
const BATCH_KEEP_US = 7 * 86_400_000_000;

/** column arrays for unnest(), one array per column */
function columnArrays(rows: FlowRecord[]): unknown[][] {
  const a: unknown[][] = COLUMNS.map(() => []);
  for (const r of rows) {
    const v = [r.start, r.end === null ? null : r.end - r.start, r.activeEnd === null ? null : r.activeEnd - r.start, r.startErr, r.endErr,
      r.proto, r.src, r.sport, r.dst, r.dport, r.natSrc, r.natSport, r.natDst, r.natDport, r.origPackets, r.origBytes, r.replyPackets,
      r.replyBytes, r.state, r.mark, r.zone, r.status, r.ctId, r.flags, r.ns];
    for (let i = 0; i < v.length; i++) a[i].push(v[i]);
  }
  return a;
}
/** Rows of records into `table` in one INSERT from one array per column (unnest): how many went in. */
async function insertRows<R>(c: pg.PoolClient, table: string, columns: readonly string[], types: readonly string[], rows: R[],
  values: (r: R, addr: (a: string) => unknown) => unknown[]): Promise<number> {
  const cols: unknown[][] = columns.map(() => []);
  for (const r of rows) values(r, (a) => a).forEach((v, i) => cols[i].push(v));
  const ins = await c.query(`INSERT INTO ${table} (${columns.join(', ')}) SELECT * FROM unnest(${types.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})`, cols);
  return ins.rowCount ?? 0;
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
  private batchesSincePrune = 0;

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
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      const r = await f(c);
      await c.query('COMMIT');
      return r;
    } catch (e) {
      // partitions created in a transaction that rolled back are gone again
      this.days.clear();
      await c.query('ROLLBACK').catch((re: Error) => { broken = re; });
      throw e;
    } finally {
      // a connection that could not even roll back is not given out again
      c.release(broken);
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
      for (let i = v; i < SCHEMA_VERSION; i++) await MIGRATIONS[i](c);
      await c.query("INSERT INTO conntrail_meta (k, v) VALUES ('schema_version', $1) ON CONFLICT (k) DO UPDATE SET v = $1", [String(SCHEMA_VERSION)]);
    }).catch((e: Error) => { this.ready = undefined; throw e; });
    return this.ready;
  }

  /** The partition of day `d` (days since the epoch), created once. */
  private async ensureDay(c: pg.PoolClient, d: number): Promise<void> {
    if (this.days.has(d)) return;
    await c.query(`CREATE TABLE IF NOT EXISTS ${dayName(d)} PARTITION OF flows FOR VALUES FROM (${d * DAY_US}) TO (${(d + 1) * DAY_US})`);
    this.days.add(d);
  }

  async write(b: StoreBatch): Promise<WriteResult> {
    await this.schema();
    return this.tx(async (c) => {
      const res: WriteResult = { flows: 0, open: 0, corrected: 0 };
      if (b.id !== undefined) {
        const t = b.run?.alive ?? Date.now() * 1000;
        // applied already (a replay, or a commit whose answer was lost): nothing to do
        const ins = await c.query('INSERT INTO batches (id, t) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [b.id, t]);
        if (ins.rowCount === 0) return res;
        if (++this.batchesSincePrune >= 1000) {
          this.batchesSincePrune = 0;
          await c.query('DELETE FROM batches WHERE t < $1', [t - BATCH_KEEP_US]);
        }
      }
      if (b.opened.length) {
        await c.query(`INSERT INTO open_flows (k, ${COLUMN_LIST}) SELECT * FROM unnest($1::bigint[], ${UNNEST_ARGS(2)}) AS u(k, ${COLUMN_LIST})
          ON CONFLICT (k) DO UPDATE SET ${COLUMNS.map((x) => `${x} = EXCLUDED.${x}`).join(', ')}`,
        [b.opened.map((r) => r.key), ...columnArrays(b.opened)]);
        res.open += b.opened.length;
      }
      if (b.activity.length) {
        await c.query(`UPDATE open_flows o SET adur = greatest(a.at - o.start, 0) FROM unnest($1::bigint[], $2::bigint[]) AS a(k, at)
          WHERE o.k = a.k AND o.adur IS NULL`, [b.activity.map((a) => a.key), b.activity.map((a) => a.at)]);
      }
      // a copy in long_flows, under the same id, of the rows whose possible extent is long
      const copyLong = async (rows: Array<{ id: string; dur: string | null; serr: string }>) => {
        const ids = rows.filter((r) => r.dur !== null && Number(r.dur) + Number(r.serr) >= LONG_FLOW_US).map((r) => r.id);
        if (ids.length) {
          await c.query(`INSERT INTO long_flows (id, ${COLUMN_LIST}) SELECT id, ${COLUMN_LIST} FROM flows
            WHERE id = ANY($1::bigint[]) ON CONFLICT DO NOTHING`, [ids]);
        }
      };
      if (b.settled.length) {
        const keys = b.settled.map((s) => s.key);
        const days = await c.query(`SELECT DISTINCT floor(start / ${DAY_US}.0)::bigint AS d FROM open_flows WHERE k = ANY($1::bigint[])`, [keys]);
        for (const r of days.rows) await this.ensureDay(c, Number(r.d));
        const cols = COLUMNS.map((x) => (x === 'dur' ? 'greatest(s.e - o.start, 0)' : x === 'adur' ? 'greatest(least(s.a, s.e) - o.start, 0)'
          : x === 'eerr' ? 's.ee' : x === 'flags' ? 's.f' : `o.${x}`)).join(', ');
        const ins = await c.query(`INSERT INTO flows (${COLUMN_LIST}) SELECT ${cols} FROM open_flows o
          JOIN unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::smallint[]) AS s(k, e, ee, a, f) ON o.k = s.k
          RETURNING id, dur, serr`,
        [keys, b.settled.map((s) => s.end), b.settled.map((s) => s.endErr), b.settled.map((s) => s.activeEnd), b.settled.map((s) => s.flags)]);
        res.flows += ins.rowCount ?? 0;
        await copyLong(ins.rows);
        await c.query('DELETE FROM open_flows WHERE k = ANY($1::bigint[])', [keys]);
      }
      if (b.unopen.length) await c.query('DELETE FROM open_flows WHERE k = ANY($1::bigint[])', [b.unopen]);
      const closed = [...b.closed];
      for (const x of b.corrections) {
        const gone = await c.query(`DELETE FROM flows WHERE start = $1 AND ${BUCKET} = $2 AND src = $3::inet AND ct_id = $4 AND ns = $5
          AND flags & 4 <> 0 RETURNING id`, [x.ref.start, Math.floor(x.ref.start / BUCKET_US), x.rec.src, x.rec.ctId, x.ref.ns]);
        if (gone.rows.length) await c.query('DELETE FROM long_flows WHERE id = ANY($1::bigint[])', [gone.rows.map((r) => r.id)]);
        closed.push(x.rec);
        res.corrected++;
        // the row replaces the settled one (if that is still there)
        if (gone.rows.length) res.flows--;
      }
      if (closed.length) {
        for (const d of new Set(closed.map((r) => Math.floor(r.start / DAY_US)))) await this.ensureDay(c, d);
        const ins = await c.query(`INSERT INTO flows (${COLUMN_LIST}) SELECT * FROM unnest(${UNNEST_ARGS(1)}) RETURNING id, dur, serr`, columnArrays(closed));
        res.flows += ins.rowCount ?? 0;
        await copyLong(ins.rows);
      }
      if (b.gaps.length) {
        await c.query('INSERT INTO gaps (ns, since, until, reason, kind) SELECT * FROM unnest($1::integer[], $2::bigint[], $3::bigint[], $4::text[], $5::text[])',
          [b.gaps.map((g) => g.ns), b.gaps.map((g) => g.since), b.gaps.map((g) => g.until), b.gaps.map((g) => g.reason), b.gaps.map((g) => g.kind ?? 'events')]);
      }
      if (b.packets.length) res.packets = await insertRows(c, 'packets', PACKET_COLUMNS, PACKET_TYPES, b.packets, packetValues);
      if (b.tcpStates.length) res.tcpStates = await insertRows(c, 'tcp_states', TCPSTATE_COLUMNS, TCPSTATE_TYPES, b.tcpStates, tcpStateValues);
      if (b.aggregates.length) res.aggregates = await insertRows(c, 'aggregates', AGGREGATE_COLUMNS, AGGREGATE_PG_TYPES, b.aggregates, aggregateValues);
      for (const x of b.namespaces ?? []) await c.query('INSERT INTO namespaces (id, name, inode) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', [x.id, x.name, x.inode || null]);
      if (b.run) {
        await c.query(`INSERT INTO runs (id, started, alive, stopped, boot) VALUES ($1, $2, $3, $4, $5)
          ON CONFLICT (id) DO UPDATE SET alive = greatest(runs.alive, EXCLUDED.alive), stopped = coalesce(EXCLUDED.stopped, runs.stopped),
            boot = coalesce(EXCLUDED.boot, runs.boot)`,
        [b.run.id, b.run.started, b.run.alive, b.run.stopped, b.run.boot ?? null]);
      }
      return res;
    });
  }

  async openFlows(): Promise<OpenRow[]> {
    await this.schema();
    const r = await this.pool.query(`SELECT k, ${COLUMN_LIST} FROM open_flows`);
    return r.rows.map(rowToOpen);
  }

  async namespaceId(name: string, inode = 0): Promise<number> {
    await this.schema();
    const ino = inode > 0 ? inode : null;
    return this.tx(async (c) => {
      await c.query('LOCK TABLE namespaces IN EXCLUSIVE MODE');
      // that namespace, or one of the name whose inode is not known (stored before schema 6): it is claimed
      const r = await c.query('SELECT id, inode FROM namespaces WHERE name = $1 AND (inode = $2 OR inode IS NULL) ORDER BY inode IS NULL, id DESC LIMIT 1', [name, ino]);
      if (r.rows.length) {
        const id = Number(r.rows[0].id);
        if (r.rows[0].inode === null && ino !== null) await c.query('UPDATE namespaces SET inode = $1 WHERE id = $2', [ino, id]);
        return id;
      }
      const m = await c.query('INSERT INTO namespaces (id, name, inode) SELECT coalesce(max(id) + 1, 0), $1::text, $2::bigint FROM namespaces RETURNING id', [name, ino]);
      return Number(m.rows[0].id);
    });
  }

  async namespaceInodes(): Promise<Map<number, number>> {
    await this.schema();
    try {
      const r = await this.pool.query('SELECT id, inode FROM namespaces WHERE inode IS NOT NULL');
      return new Map(r.rows.map((x) => [Number(x.id), Number(x.inode)]));
    } catch { return new Map(); } // a reader of a store before schema 6
  }

  async namespaces(): Promise<Map<number, string>> {
    await this.schema();
    const r = await this.pool.query('SELECT id, name FROM namespaces');
    return new Map(r.rows.map((x) => [Number(x.id), String(x.name)]));
  }

  async runs(): Promise<Run[]> {
    await this.schema();
    const r = await this.pool.query('SELECT id, started, alive, stopped FROM runs ORDER BY started');
    return r.rows.map((x) => ({ id: Number(x.id), started: Number(x.started), alive: Number(x.alive), stopped: x.stopped === null ? null : Number(x.stopped) }));
  }

  async gaps(since: number, until: number, kind: GapKind = 'events'): Promise<Gap[]> {
    await this.schema();
    const r = await this.pool.query('SELECT ns, since, until, reason FROM gaps WHERE until >= $1 AND since <= $2 AND kind = $3 ORDER BY since', [since, until, kind]);
    return r.rows.map((g) => ({ ns: Number(g.ns), since: Number(g.since), until: Number(g.until), reason: String(g.reason) }));
  }

  /** Drops whole day partitions whose flows all ended before the cutoff. */
  async expire(cutoff: number, _max: number): Promise<number> {
    await this.schema();
    const r = await this.pool.query(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'flows' AND c.relname ~ '^flows_[0-9]{8}$' ORDER BY c.relname`);
    let n = 0;
    for (const x of r.rows) {
      const name = String(x.relname);
      const day = Date.UTC(Number(name.slice(6, 10)), Number(name.slice(10, 12)) - 1, Number(name.slice(12, 14))) * 1000;
      // flows of a shorter extent than LONG_FLOW_US ended before day end + that; the others are in long_flows
      if (day + DAY_US + LONG_FLOW_US > cutoff) break;
      const cnt = await this.pool.query(`SELECT count(*) AS n FROM ${name}`);
      await this.pool.query(`DROP TABLE ${name}`);
      this.days.delete(day / DAY_US);
      n += Number(cnt.rows[0].n);
    }
    await this.pool.query('DELETE FROM long_flows WHERE start + dur < $1', [cutoff]);
    await this.pool.query('DELETE FROM gaps WHERE until < $1', [cutoff]);
    return n;
  }

  async expirePackets(cutoff: number, max: number): Promise<number> {
    return this.expireRows('packets', cutoff, max);
  }

  /** Deletes up to `max` rows of a table of records by time (`t`) older than `cutoff`. */
  private async expireRows(table: 'packets' | 'tcp_states' | 'aggregates', cutoff: number, max: number): Promise<number> {
    await this.schema();
    const r = await this.pool.query(`DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE t < $1 ORDER BY t LIMIT $2)`, [cutoff, max]);
    return r.rowCount ?? 0;
  }

  async packets(s: PacketSearch): Promise<StoredPacket[]> {
    return (await this.all(packetSearchQuery(POSTGRES, s))).map((x) => rowToPacket(x));
  }

  async expireTcpStates(cutoff: number, max: number): Promise<number> {
    return this.expireRows('tcp_states', cutoff, max);
  }

  async tcpStates(s: TcpStateSearch): Promise<StoredTcpState[]> {
    return (await this.all(tcpStateSearchQuery(POSTGRES, s))).map((x) => rowToTcpState(x));
  }

  async expireAggregates(cutoff: number, max: number): Promise<number> {
    return this.expireRows('aggregates', cutoff, max);
  }

  async aggregates(s: AggregateSearch): Promise<AggregateRecord[]> {
    return (await this.all(aggregateSearchQuery(POSTGRES, s))).map((x) => rowToAggregate(x));
  }

  async flowHolders(f: StoredFlow): Promise<FlowHolders> {
    const q = flowHolderQuery(POSTGRES, f, Date.now() * 1000);
    return q ? holdersOf((await this.all(q))) : holdersOf([]);
  }

  async packetTop(s: PacketSearch, key: PacketTopKey, limit: number): Promise<PacketTopRow[]> {
    return (await this.all(packetTopQuery(POSTGRES, s, key, limit))).map((x) => packetTopRow(key, x));
  }

  async flowPackets(f: StoredFlow): Promise<StoredPacket[]> {
    return (await this.all(flowPacketsQuery(POSTGRES, f, Date.now() * 1000))).map((x) => rowToPacket(x));
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

  async who(pub: AddrPort, w: Window, proto: number | undefined, remote: AddrPort | undefined, nsIds?: number[]): Promise<StoredFlow[]> {
    const c = await clampToStore({ window: w }, this);
    return (await this.all(whoQuery(POSTGRES, pub, c.window, proto, remote, nsIds))).map(rowToFlow);
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
