// The embedded store (the default): one SQLite file in WAL mode, so queries
// run while the daemon writes. IPv4 addresses are stored as integers and
// IPv6 addresses as 16-byte blobs: both compare in address order, so a CIDR
// is one index range.
import { closeSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { UNBOUNDED, type FlowRecord } from '../records/flow.js';
import { parseIp, type Cidr } from '../util/ip.js';
import { ensureDir } from '../util/fs.js';
import {
  BUCKET, BUCKET_US, COLUMN_LIST, COLUMNS, LONG_FLOW_US, indexDdl, isLong, SCHEMA_VERSION, searchQuery, topQuery, whoQuery,
  type AddrPort, type Buckets, type Built, type Dialect, type FlowSearch, type TopKey, type Window,
} from './sql.js';
import type { FlowStore, Gap, GapKind, OpenRow, Run, StoreBatch, StoredFlow, TopRow, WriteResult } from './store.js';
import { clampToStore, packetTopRow, rowToFlow, rowToOpen, topRow } from './rows.js';
import { AGGREGATE_COLUMN_LIST, AGGREGATE_COLUMNS, aggregateSearchQuery, aggregateValues, rowToAggregate, type AggregateSearch } from './aggregates.js';
import type { AggregateRecord } from '../records/aggregate.js';
import { flowHolderQuery, holdersOf, rowToTcpState, TCPSTATE_COLUMN_LIST, TCPSTATE_COLUMNS, tcpStateSearchQuery, tcpStateValues, type FlowHolders, type StoredTcpState, type TcpStateSearch } from './tcpstates.js';
import { flowPacketsQuery, PACKET_COLUMN_LIST, PACKET_COLUMNS, packetSearchQuery, packetTopQuery, packetValues, rowToPacket, type PacketSearch, type PacketTopKey, type PacketTopRow, type StoredPacket } from './packets.js';

export const DEFAULT_DB = '/var/lib/conntrail/flows.db';
const MULTI = 256;

/** IPv4 text -> unsigned 32-bit integer; IPv6 text -> 16-byte Buffer */
export function addrValue(text: string): number | Buffer {
  let n = 0;
  let part = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) { n = n * 256 + part; part = 0; dots++; } else if (c >= 48 && c <= 57) part = part * 10 + (c - 48);
    else { dots = -1; break; }
  }
  if (dots === 3) return n * 256 + part;
  const b = parseIp(text);
  if (!b) throw new Error(`"${text}" is not an IP address`);
  return Buffer.from(b);
}

function cidrBounds(c: Cidr): [number | Buffer, number | Buffer] {
  const lo = Buffer.from(c.bytes);
  const hi = Buffer.from(c.bytes);
  for (let i = 0; i < hi.length; i++) {
    const bits = Math.max(0, Math.min(8, c.prefix - i * 8));
    hi[i] |= 0xff >> bits;
  }
  if (c.family === 4) return [lo.readUInt32BE(0), hi.readUInt32BE(0)];
  return [lo, hi];
}

export const SQLITE: Dialect = {
  name: 'sqlite',
  ph: (n) => `$p${n}`,
  addr: addrValue,
  addrEq: (col, param) => `${col} = ${param}`,
  inCidr: (col, c, p) => {
    const [lo, hi] = cidrBounds(c);
    return c.prefix === c.bytes.length * 8 ? `${col} = ${p(lo)}` : `${col} BETWEEN ${p(lo)} AND ${p(hi)}`;
  },
};

const V1_COLS = `start INTEGER NOT NULL, dur INTEGER, proto INTEGER NOT NULL, src, sport INTEGER, dst, dport INTEGER,
  nat_src, nat_sport INTEGER, nat_dst, nat_dport INTEGER, opkts INTEGER, obytes INTEGER, rpkts INTEGER, rbytes INTEGER,
  state INTEGER, mark INTEGER, zone INTEGER, status INTEGER, ct_id INTEGER, flags INTEGER, ns INTEGER`;

const V1_INDEXES = ['flows_src', 'flows_dst', 'flows_nat_src', 'flows_nat_dst', 'long_flows_end', 'long_flows_src', 'long_flows_dst',
  'long_flows_nat_src', 'long_flows_nat_dst', 'open_flows_src', 'open_flows_dst', 'open_flows_nat_src', 'open_flows_nat_dst'];
const v1Index = (e: string) => e.replaceAll(BUCKET, 'start / 60000');

/** how long the ids of applied batches are kept (a spool older than that is replayed as new) */
const BATCH_KEEP_US = 7 * 86_400_000_000;
/** the oldest schema the readers (who, flows) read as it is */
const READ_MIN_VERSION = 2;

/** migrations: MIGRATIONS[i] takes the schema from version i to i + 1 */
export const SQLITE_MIGRATIONS: string[] = [
  `CREATE TABLE flows (id INTEGER PRIMARY KEY, ${V1_COLS});
   CREATE TABLE long_flows (id INTEGER PRIMARY KEY, ${V1_COLS});
   CREATE TABLE open_flows (k INTEGER PRIMARY KEY, ${V1_COLS});
   ${v1Index(indexDdl((e) => e))}
   CREATE TABLE marks (t INTEGER PRIMARY KEY, first_id INTEGER NOT NULL);
   CREATE TABLE namespaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL);`,
  // 2: µs instead of ms; when each flow was active and how uncertain its
  // start and end are; the runs of the daemon and the times events were lost
  `${V1_INDEXES.map((i) => `DROP INDEX ${i};`).join('\n')}
   ${['flows', 'long_flows', 'open_flows'].map((t) => `ALTER TABLE ${t} ADD COLUMN adur INTEGER;
   ALTER TABLE ${t} ADD COLUMN serr INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE ${t} ADD COLUMN eerr INTEGER NOT NULL DEFAULT 0;
   UPDATE ${t} SET start = start * 1000, dur = dur * 1000, adur = ${t === 'open_flows' ? 'NULL' : 'dur * 1000'},
     serr = CASE WHEN flags & 2 THEN ${UNBOUNDED} ELSE 0 END, eerr = CASE WHEN flags & 4 THEN coalesce(dur, 0) * 1000 ELSE 0 END;`).join('\n')}
   UPDATE marks SET t = t * 1000;
   ${indexDdl((e) => e)}
   CREATE TABLE runs (id INTEGER PRIMARY KEY, started INTEGER NOT NULL, alive INTEGER NOT NULL, stopped INTEGER, note TEXT);
   INSERT INTO runs (id, started, alive, stopped, note)
     SELECT * FROM (SELECT 1 AS id, min(start) AS s, max(start + dur) AS a, max(start + dur) AS e,
       'before schema 2: coverage not recorded' AS note FROM flows) AS m WHERE s IS NOT NULL;
   CREATE TABLE gaps (id INTEGER PRIMARY KEY, ns INTEGER NOT NULL, since INTEGER NOT NULL, until INTEGER NOT NULL, reason TEXT NOT NULL);
   CREATE INDEX gaps_until ON gaps (until);`,
  // 3: the batches applied (each once), kept for a week
  `CREATE TABLE batches (id TEXT PRIMARY KEY, t INTEGER NOT NULL) WITHOUT ROWID;
   CREATE INDEX batches_t ON batches (t);`,
  // 4: packet logs
  `CREATE TABLE packets (id INTEGER PRIMARY KEY, t INTEGER NOT NULL, ns INTEGER NOT NULL, grp INTEGER NOT NULL, hook INTEGER NOT NULL,
     family INTEGER NOT NULL, prefix TEXT NOT NULL, indev TEXT, outdev TEXT, proto INTEGER, src, sport INTEGER, dst, dport INTEGER,
     len INTEGER, tcp_flags INTEGER, icmp_type INTEGER, icmp_code INTEGER, mark INTEGER, uid INTEGER, ct_id INTEGER);
   CREATE INDEX packets_t ON packets (t);
   CREATE INDEX packets_src ON packets (src, t);
   CREATE INDEX packets_dst ON packets (dst, t);
   ALTER TABLE gaps ADD COLUMN kind TEXT NOT NULL DEFAULT 'events';`,
  // 5: TCP state changes
  `CREATE TABLE tcp_states (id INTEGER PRIMARY KEY, t INTEGER NOT NULL, ns INTEGER NOT NULL, netns INTEGER NOT NULL, family INTEGER NOT NULL,
     src, sport INTEGER NOT NULL, dst, dport INTEGER NOT NULL, old_state INTEGER NOT NULL, new_state INTEGER NOT NULL, span INTEGER,
     pid INTEGER NOT NULL, tid INTEGER NOT NULL, comm TEXT NOT NULL, kthread INTEGER NOT NULL, holder INTEGER NOT NULL, cookie INTEGER NOT NULL,
     boot INTEGER NOT NULL);
   CREATE INDEX tcp_states_t ON tcp_states (t);
   CREATE INDEX tcp_states_ports ON tcp_states (sport, dport, t);
   CREATE INDEX tcp_states_cookie ON tcp_states (cookie, t);
   ALTER TABLE runs ADD COLUMN boot INTEGER;`,
  // 6: a namespace is its name and its inode (one deleted and made again under the same name is another)
  `ALTER TABLE namespaces ADD COLUMN inode INTEGER;
   CREATE INDEX namespaces_name ON namespaces (name, inode);`,
  // 7: aggregated flow records
  `CREATE TABLE aggregates (id INTEGER PRIMARY KEY, t INTEGER NOT NULL, name TEXT NOT NULL, interval_us INTEGER NOT NULL,
     first INTEGER NOT NULL, last INTEGER NOT NULL, family INTEGER NOT NULL, proto INTEGER, src, src_prefix INTEGER, dst, dst_prefix INTEGER,
     sport INTEGER, dport INTEGER, nat_src, nat_sport INTEGER, nat_dst, nat_dport INTEGER, flows INTEGER NOT NULL,
     opkts INTEGER NOT NULL, obytes INTEGER NOT NULL, rpkts INTEGER NOT NULL, rbytes INTEGER NOT NULL);
   CREATE INDEX aggregates_t ON aggregates (t);`,
];

/** a record's values in COLUMNS order (positional binding is the fast path) */
function rowValues(r: FlowRecord, o: unknown[]): unknown[] {
  const end = r.end;
  o[0] = r.start;
  o[1] = end === null ? null : end - r.start;
  o[2] = r.activeEnd === null ? null : r.activeEnd - r.start;
  o[3] = r.startErr;
  o[4] = r.endErr;
  o[5] = r.proto;
  o[6] = addrValue(r.src);
  o[7] = r.sport;
  o[8] = addrValue(r.dst);
  o[9] = r.dport;
  o[10] = r.natSrc === null ? null : addrValue(r.natSrc);
  o[11] = r.natSport;
  o[12] = r.natDst === null ? null : addrValue(r.natDst);
  o[13] = r.natDport;
  o[14] = r.origPackets;
  o[15] = r.origBytes;
  o[16] = r.replyPackets;
  o[17] = r.replyBytes;
  o[18] = r.state;
  o[19] = r.mark;
  o[20] = r.zone;
  o[21] = r.status;
  o[22] = r.ctId;
  o[23] = r.flags;
  o[24] = r.ns;
  return o;
}

const named = (b: Built): Record<string, unknown> => {
  const o: Record<string, unknown> = {};
  b.values.forEach((v, i) => { o[`p${i + 1}`] = v; });
  return o;
};

/** The WAL may grow to this, or a quarter of the database if that is more, before it is checkpointed. */
const WAL_MIN = 16 * 1024 * 1024;

export interface SqliteOptions {
  path: string;
  /** open for queries only: the file must exist */
  readonly?: boolean;
  /** file mode of a database file this creates */
  mode?: number;
}

export class SqliteStore implements FlowStore {
  readonly kind = 'sqlite';
  readonly db: Database.Database;
  private readonly st: Record<string, Database.Statement> = {};
  /** INSERT of MULTI rows at once: fewer calls into SQLite per flow */
  private readonly multiVals: unknown[] = new Array(COLUMNS.length * MULTI).fill(null);
  private readonly tcpMultiVals: unknown[] = new Array(TCPSTATE_COLUMNS.length * MULTI).fill(null);
  private readonly tx: (b: StoreBatch) => WriteResult;
  private batchesSincePrune = 0;
  private readonly row: unknown[] = new Array(COLUMNS.length + 1).fill(null);

  constructor(readonly opts: SqliteOptions) {
    if (opts.readonly) {
      this.db = new Database(opts.path, { readonly: true, fileMustExist: true, timeout: 5000 });
      // queries read index pages all over the file: map it, keep a real cache
      this.db.pragma('mmap_size = 1073741824');
      this.db.pragma('cache_size = -65536');
      const v = this.version();
      if (v === 0) throw new Error(`${opts.path}: not a conntrail flow store (no schema)`);
      if (v > SCHEMA_VERSION) throw new Error(`${opts.path}: schema version ${v} is newer than this conntrail (${SCHEMA_VERSION})`);
      // schema 3 only added what the writer needs (batches): 2 reads the same
      if (v < READ_MIN_VERSION) throw new Error(`${opts.path}: schema version ${v} is older than this conntrail's (${SCHEMA_VERSION}); the daemon (conntrail run) migrates it when it starts`);
    } else {
      ensureDir(dirname(opts.path), 0o750);
      closeSync(openSync(opts.path, 'a', opts.mode ?? 0o640)); // created with our mode, never wider
      this.db = new Database(opts.path, { timeout: 5000 });
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      // the hot minutes of every index stay in memory between batches
      this.db.pragma('cache_size = -65536');
      // multi-row INSERTs keep a statement journal: in memory, not a temp file
      this.db.pragma('temp_store = MEMORY');
      // checkpoints are ours (after a batch, by size); a checkpointed WAL is cut back to this
      this.db.pragma('wal_autocheckpoint = 0');
      this.db.pragma(`journal_size_limit = ${WAL_MIN}`);
      this.migrate();
    }
    if (!opts.readonly) this.prepare();
    this.tx = this.db.transaction((b: StoreBatch) => this.writeNow(b));
  }

  private prepare(): void {
    const cols = COLUMN_LIST;
    const vals = COLUMNS.map(() => '?').join(', ');
    const p = (name: string, sql: string) => { this.st[name] = this.db.prepare(sql); };
    p('ins', `INSERT INTO flows (${cols}) VALUES (${vals})`);
    p('insBatch', 'INSERT OR IGNORE INTO batches (id, t) VALUES (?, ?)');
    p('pruneBatches', 'DELETE FROM batches WHERE t < ?');
    p('insMulti', `INSERT INTO flows (${cols}) VALUES ${Array.from({ length: MULTI }, () => `(${vals})`).join(', ')}`);
    p('insLong', `INSERT INTO long_flows (${cols}, id) VALUES (${vals}, ?)`);
    p('insOpen', `INSERT OR REPLACE INTO open_flows (${cols}, k) VALUES (${vals}, ?)`);
    p('getOpen', `SELECT ${cols} FROM open_flows WHERE k = ?`);
    p('delOpen', 'DELETE FROM open_flows WHERE k = ?');
    p('activity', 'UPDATE open_flows SET adur = max($at - start, 0) WHERE k = $k AND adur IS NULL');
    p('delSettled', `DELETE FROM flows WHERE ${BUCKET} = $b AND src = $src AND start = $start AND ct_id = $ct AND ns = $ns AND flags & 4 RETURNING id`);
    p('delSettledLong', 'DELETE FROM long_flows WHERE id = ?');
    p('mark', 'INSERT OR IGNORE INTO marks (t, first_id) VALUES (?, ?)');
    p('run', `INSERT INTO runs (id, started, alive, stopped, boot) VALUES ($id, $started, $alive, $stopped, $boot)
      ON CONFLICT (id) DO UPDATE SET alive = max(alive, excluded.alive), stopped = coalesce(excluded.stopped, stopped), boot = coalesce(excluded.boot, boot)`);
    p('gap', 'INSERT INTO gaps (ns, since, until, reason, kind) VALUES (?, ?, ?, ?, ?)');
    p('ns', 'INSERT OR IGNORE INTO namespaces (id, name, inode) VALUES (?, ?, ?)');
    p('packet', `INSERT INTO packets (${PACKET_COLUMN_LIST}) VALUES (${PACKET_COLUMNS.map(() => '?').join(', ')})`);
    const tv = `(${TCPSTATE_COLUMNS.map(() => '?').join(', ')})`;
    p('tcpState', `INSERT INTO tcp_states (${TCPSTATE_COLUMN_LIST}) VALUES ${tv}`);
    p('aggregate', `INSERT INTO aggregates (${AGGREGATE_COLUMN_LIST}) VALUES (${AGGREGATE_COLUMNS.map(() => '?').join(', ')})`);
    p('tcpStateMulti', `INSERT INTO tcp_states (${TCPSTATE_COLUMN_LIST}) VALUES ${Array.from({ length: MULTI }, () => tv).join(', ')}`);
  }

  private version(): number {
    return Number(this.db.pragma('user_version', { simple: true }));
  }

  private migrate(): void {
    const v = this.version();
    if (v > SCHEMA_VERSION) throw new Error(`${this.opts.path}: schema version ${v} is newer than this conntrail (${SCHEMA_VERSION})`);
    for (let i = v; i < SCHEMA_VERSION; i++) {
      this.db.transaction(() => {
        this.db.exec(SQLITE_MIGRATIONS[i]);
        this.db.pragma(`user_version = ${i + 1}`);
      })();
    }
  }

  private writeNow(b: StoreBatch): WriteResult {
    const st = this.st;
    const row = this.row;
    const n = COLUMNS.length;
    const res: WriteResult = { flows: 0, open: 0, corrected: 0 };
    if (b.id !== undefined) {
      // applied already (a replay): nothing to do
      if (st.insBatch.run(b.id, b.run?.alive ?? Date.now() * 1000).changes === 0) return res;
      if (++this.batchesSincePrune >= 1000) {
        this.batchesSincePrune = 0;
        st.pruneBatches.run((b.run?.alive ?? Date.now() * 1000) - BATCH_KEEP_US);
      }
    }
    for (const r of b.opened) {
      rowValues(r, row);
      row[n] = r.key;
      st.insOpen.run(row);
      res.open++;
    }
    for (const a of b.activity) st.activity.run({ k: a.key, at: a.at });
    const cols = row.slice(0, n);
    let first = -1;
    const insertOne = (values: unknown[], long: boolean) => {
      const id = Number(st.ins.run(values).lastInsertRowid);
      if (first < 0) first = id;
      if (long) st.insLong.run([...values, id]);
      res.flows++;
    };
    for (const s of b.settled) {
      const o = st.getOpen.get(s.key) as Record<string, unknown> | undefined;
      if (o) {
        const start = Number(o.start);
        const end = Math.max(s.end, start);
        const values = COLUMNS.map((c) => o[c]);
        values[1] = end - start;
        values[2] = Math.max(0, Math.min(s.activeEnd, end) - start);
        values[4] = s.endErr;
        values[23] = s.flags;
        insertOne(values, end - start + Number(o.serr) >= LONG_FLOW_US);
      }
      st.delOpen.run(s.key);
    }
    for (const k of b.unopen) st.delOpen.run(k);
    for (const c of b.corrections) {
      const gone = st.delSettled.all({
        b: Math.floor(c.ref.start / BUCKET_US), src: addrValue(c.rec.src), start: c.ref.start, ct: c.rec.ctId, ns: c.ref.ns,
      }) as Array<{ id: number }>;
      for (const g of gone) st.delSettledLong.run(g.id);
      insertOne(rowValues(c.rec, cols).slice(), isLong(c.rec));
      // the row replaces the settled one (if that is still there)
      if (gone.length) res.flows--;
      res.corrected++;
    }
    const closed = b.closed;
    let i = 0;
    // whole groups of MULTI rows in one statement (consecutive ids), the rest one by one;
    // long flows are copied to long_flows under the id their row got
    const mv = this.multiVals;
    for (; i + MULTI <= closed.length; i += MULTI) {
      for (let j = 0; j < MULTI; j++) {
        rowValues(closed[i + j], cols);
        for (let c = 0; c < n; c++) mv[j * n + c] = cols[c];
      }
      const firstId = Number(st.insMulti.run(mv).lastInsertRowid) - MULTI + 1;
      if (first < 0) first = firstId;
      res.flows += MULTI;
      for (let j = 0; j < MULTI; j++) if (isLong(closed[i + j])) st.insLong.run([...rowValues(closed[i + j], cols), firstId + j]);
    }
    for (; i < closed.length; i++) insertOne(rowValues(closed[i], cols), isLong(closed[i]));
    for (const g of b.gaps) st.gap.run(g.ns, g.since, g.until, g.reason, g.kind ?? 'events');
    if (b.packets.length) {
      for (const x of b.packets) st.packet.run(packetValues(x, addrValue));
      res.packets = b.packets.length;
    }
    if (b.tcpStates.length) {
      // whole groups of MULTI rows in one statement, the rest one by one
      const ts = b.tcpStates;
      const w = TCPSTATE_COLUMNS.length;
      const tm = this.tcpMultiVals;
      let k = 0;
      for (; k + MULTI <= ts.length; k += MULTI) {
        for (let j = 0; j < MULTI; j++) tcpStateValues(ts[k + j], addrValue, tm, j * w);
        st.tcpStateMulti.run(tm);
      }
      for (; k < ts.length; k++) st.tcpState.run(tcpStateValues(ts[k], addrValue));
      res.tcpStates = ts.length;
    }
    if (b.aggregates.length) {
      for (const x of b.aggregates) st.aggregate.run(aggregateValues(x, addrValue));
      res.aggregates = b.aggregates.length;
    }
    for (const x of b.namespaces ?? []) st.ns.run(x.id, x.name, x.inode || null);
    if (b.run) st.run.run({ id: b.run.id, started: b.run.started, alive: b.run.alive, stopped: b.run.stopped, boot: b.run.boot ?? null });
    if (first >= 0) st.mark.run(Date.now() * 1000, first);
    return res;
  }

  async write(b: StoreBatch): Promise<WriteResult> {
    return this.writeSync(b);
  }

  writeSync(b: StoreBatch): WriteResult {
    const r = this.tx(b);
    this.checkpoint();
    return r;
  }

  /** Keeps the WAL small next to the database: a passive checkpoint once it has grown past its share. */
  private checkpoint(): void {
    let wal: number;
    let main: number;
    try {
      wal = statSync(this.opts.path + '-wal').size;
      main = statSync(this.opts.path).size;
    } catch { return; }
    // (the batch is committed: a checkpoint that fails, a full disk say, is retried after the next one)
    if (wal > Math.max(WAL_MIN, main / 4)) try { this.db.pragma('wal_checkpoint(PASSIVE)'); } catch { /* retried */ }
  }

  async openFlows(): Promise<OpenRow[]> {
    return (this.db.prepare(`SELECT k, ${COLUMN_LIST} FROM open_flows`).all() as Array<Record<string, unknown>>).map(rowToOpen);
  }

  async namespaceId(name: string, inode = 0): Promise<number> {
    const db = this.db;
    return db.transaction(() => {
      const ino = inode > 0 ? inode : null;
      // that namespace, or one of the name whose inode is not known (stored before schema 6): it is claimed
      const r = db.prepare('SELECT id, inode FROM namespaces WHERE name = ? AND (inode = ? OR inode IS NULL) ORDER BY inode IS NULL, id DESC LIMIT 1')
        .get(name, ino) as { id: number; inode: number | null } | undefined;
      if (r) {
        if (r.inode === null && ino !== null) db.prepare('UPDATE namespaces SET inode = ? WHERE id = ?').run(ino, r.id);
        return r.id;
      }
      const m = db.prepare('SELECT coalesce(max(id) + 1, 0) AS id FROM namespaces').get() as { id: number };
      db.prepare('INSERT INTO namespaces (id, name, inode) VALUES (?, ?, ?)').run(m.id, name, ino);
      return m.id;
    })();
  }

  async namespaces(): Promise<Map<number, string>> {
    const rows = this.db.prepare('SELECT id, name FROM namespaces').all() as Array<{ id: number; name: string }>;
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  async namespaceInodes(): Promise<Map<number, number>> {
    if (this.version() < 6) return new Map();
    const rows = this.db.prepare('SELECT id, inode FROM namespaces WHERE inode IS NOT NULL').all() as Array<{ id: number; inode: number }>;
    return new Map(rows.map((r) => [r.id, Number(r.inode)]));
  }

  async runs(): Promise<Run[]> {
    return (this.db.prepare('SELECT id, started, alive, stopped FROM runs ORDER BY started').all() as Array<Record<string, number | null>>)
      .map((r) => ({ id: Number(r.id), started: Number(r.started), alive: Number(r.alive), stopped: r.stopped === null ? null : Number(r.stopped) }));
  }

  async gaps(since: number, until: number, kind: GapKind = 'events'): Promise<Gap[]> {
    // a store of schema 3 or older (read as it is) has only gaps of events
    const old = this.version() < 4;
    if (old && kind !== 'events') return [];
    const sql = `SELECT ns, since, until, reason FROM gaps WHERE until >= ? AND since <= ?${old ? '' : ' AND kind = ?'} ORDER BY since`;
    return (this.db.prepare(sql).all(...(old ? [since, until] : [since, until, kind])) as Gap[])
      .map((g) => ({ ns: Number(g.ns), since: Number(g.since), until: Number(g.until), reason: String(g.reason) }));
  }

  async expire(cutoff: number, max: number): Promise<number> {
    const db = this.db;
    return db.transaction(() => {
      // rows are inserted as flows end: every row inserted before the first
      // mark at or after the cutoff ended before it
      const m = db.prepare('SELECT first_id FROM marks WHERE t >= ? ORDER BY t LIMIT 1').get(cutoff) as { first_id: number } | undefined;
      const boundary = m ? m.first_id : Number((db.prepare('SELECT max(id) AS x FROM flows').get() as { x: number | null }).x ?? 0) + 1;
      const lo = (db.prepare('SELECT min(id) AS x FROM flows').get() as { x: number | null }).x;
      let n = 0;
      if (lo !== null && lo < boundary) {
        const hi = Math.min(boundary, lo + max);
        n = db.prepare('DELETE FROM flows WHERE id >= ? AND id < ?').run(lo, hi).changes;
        db.prepare('DELETE FROM marks WHERE t < ? AND first_id < ?').run(cutoff, hi);
      }
      db.prepare('DELETE FROM long_flows WHERE start + dur < ?').run(cutoff);
      db.prepare('DELETE FROM gaps WHERE until < ?').run(cutoff);
      return n;
    })();
  }

  async expirePackets(cutoff: number, max: number): Promise<number> {
    return this.expireRows('packets', cutoff, max);
  }

  /** Deletes up to `max` rows of a table of records by time (`t`) older than `cutoff`. */
  private expireRows(table: 'packets' | 'tcp_states' | 'aggregates', cutoff: number, max: number): number {
    return this.db.prepare(`DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE t < ? ORDER BY t LIMIT ?)`).run(cutoff, max).changes;
  }

  async packets(s: PacketSearch): Promise<StoredPacket[]> {
    return this.all(packetSearchQuery(SQLITE, s)).map((x) => rowToPacket(x));
  }

  async expireTcpStates(cutoff: number, max: number): Promise<number> {
    return this.expireRows('tcp_states', cutoff, max);
  }

  async tcpStates(s: TcpStateSearch): Promise<StoredTcpState[]> {
    return this.all(tcpStateSearchQuery(SQLITE, s)).map((x) => rowToTcpState(x));
  }

  async expireAggregates(cutoff: number, max: number): Promise<number> {
    return this.expireRows('aggregates', cutoff, max);
  }

  async aggregates(s: AggregateSearch): Promise<AggregateRecord[]> {
    // (a store of a schema before 7 has none)
    if (this.version() < 7) return [];
    return this.all(aggregateSearchQuery(SQLITE, s)).map((x) => rowToAggregate(x));
  }

  async flowHolders(f: StoredFlow): Promise<FlowHolders> {
    const q = flowHolderQuery(SQLITE, f, Date.now() * 1000);
    return q ? holdersOf(this.all(q)) : holdersOf([]);
  }

  async packetTop(s: PacketSearch, key: PacketTopKey, limit: number): Promise<PacketTopRow[]> {
    return this.all(packetTopQuery(SQLITE, s, key, limit)).map((x) => packetTopRow(key, x));
  }

  async flowPackets(f: StoredFlow): Promise<StoredPacket[]> {
    return this.all(flowPacketsQuery(SQLITE, f, Date.now() * 1000)).map((x) => rowToPacket(x));
  }

  async bounds(): Promise<Buckets | undefined> {
    // two statements: each is one index seek (min and max together would scan)
    const lo = this.db.prepare(`SELECT min(${BUCKET}) AS x FROM flows`).get() as { x: number | null };
    const hi = this.db.prepare(`SELECT max(${BUCKET}) AS x FROM flows`).get() as { x: number | null };
    return lo.x === null || hi.x === null ? undefined : { lo: lo.x, hi: hi.x };
  }

  private all(b: Built): Array<Record<string, unknown>> {
    return this.db.prepare(b.sql).all(named(b)) as Array<Record<string, unknown>>;
  }

  async who(pub: AddrPort, w: Window, proto: number | undefined, remote: AddrPort | undefined, nsIds?: number[]): Promise<StoredFlow[]> {
    const c = await clampToStore({ window: w }, this);
    return this.all(whoQuery(SQLITE, pub, c.window, proto, remote, nsIds)).map(rowToFlow);
  }

  async search(s: FlowSearch): Promise<StoredFlow[]> {
    s = await clampToStore(s, this);
    return this.all(searchQuery(SQLITE, s)).map(rowToFlow);
  }

  async top(s: FlowSearch, key: TopKey, by: 'bytes' | 'flows', limit: number): Promise<TopRow[]> {
    s = await clampToStore(s, this);
    return this.all(topQuery(SQLITE, s, key, by, limit)).map((x) => topRow(key, x));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
