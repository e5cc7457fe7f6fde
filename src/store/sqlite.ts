// The embedded store (the default): one SQLite file in WAL mode, so queries
// run while the daemon writes. IPv4 addresses are stored as integers and
// IPv6 addresses as 16-byte blobs: both compare in address order, so a CIDR
// is one index range.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { FlowRecord } from '../flow/record.js';
import { parseIp, type Cidr } from '../util/ip.js';
import {
  BUCKET, COLUMN_LIST, COLUMNS, LONG_FLOW_MS, indexDdl, SCHEMA_VERSION, searchQuery, topQuery, whoQuery,
  type AddrPort, type Buckets, type Built, type Dialect, type FlowSearch, type TopKey, type Window,
} from './sql.js';
import type { FlowStore, OpenRow, StoreBatch, StoredFlow, TopRow } from './store.js';
import { clampToStore, rowToFlow, topRow } from './rows.js';

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

const TABLE_COLS = `start INTEGER NOT NULL, dur INTEGER, proto INTEGER NOT NULL, src, sport INTEGER, dst, dport INTEGER,
  nat_src, nat_sport INTEGER, nat_dst, nat_dport INTEGER, opkts INTEGER, obytes INTEGER, rpkts INTEGER, rbytes INTEGER,
  state INTEGER, mark INTEGER, zone INTEGER, status INTEGER, ct_id INTEGER, flags INTEGER, ns INTEGER`;

/** migrations: MIGRATIONS[i] takes the schema from version i to i + 1 */
const MIGRATIONS: string[] = [
  `CREATE TABLE flows (id INTEGER PRIMARY KEY, ${TABLE_COLS});
   CREATE TABLE long_flows (id INTEGER PRIMARY KEY, ${TABLE_COLS});
   CREATE TABLE open_flows (k INTEGER PRIMARY KEY, ${TABLE_COLS});
   ${indexDdl((e) => e)}
   CREATE TABLE marks (t INTEGER PRIMARY KEY, first_id INTEGER NOT NULL);
   CREATE TABLE namespaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL);`,
];

/** a record's values in COLUMNS order (positional binding is the fast path) */
function rowValues(r: FlowRecord, o: unknown[]): unknown[] {
  o[0] = r.start;
  o[1] = r.end === null ? null : r.end - r.start;
  o[2] = r.proto;
  o[3] = addrValue(r.src);
  o[4] = r.sport;
  o[5] = addrValue(r.dst);
  o[6] = r.dport;
  o[7] = r.natSrc === null ? null : addrValue(r.natSrc);
  o[8] = r.natSport;
  o[9] = r.natDst === null ? null : addrValue(r.natDst);
  o[10] = r.natDport;
  o[11] = r.origPackets;
  o[12] = r.origBytes;
  o[13] = r.replyPackets;
  o[14] = r.replyBytes;
  o[15] = r.state;
  o[16] = r.mark;
  o[17] = r.zone;
  o[18] = r.status;
  o[19] = r.ctId;
  o[20] = r.flags;
  o[21] = r.ns;
  return o;
}

const named = (b: Built): Record<string, unknown> => {
  const o: Record<string, unknown> = {};
  b.values.forEach((v, i) => { o[`p${i + 1}`] = v; });
  return o;
};

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
  private readonly ins: Database.Statement;
  private readonly insLong: Database.Statement;
  private readonly insOpen: Database.Statement;
  private readonly delOpen: Database.Statement;
  private readonly settle: Database.Statement;
  private readonly mark: Database.Statement;
  /** INSERT of MULTI rows at once: fewer calls into SQLite per flow */
  private readonly insMulti: Database.Statement;
  private readonly multiVals: unknown[] = new Array(COLUMNS.length * MULTI).fill(null);
  private readonly tx: (b: StoreBatch) => void;
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
    } else {
      mkdirSync(dirname(opts.path), { recursive: true, mode: 0o750 });
      closeSync(openSync(opts.path, 'a', opts.mode ?? 0o640)); // created with our mode, never wider
      this.db = new Database(opts.path, { timeout: 5000 });
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      // the hot minutes of every index stay in memory between batches
      this.db.pragma('cache_size = -65536');
      // multi-row INSERTs keep a statement journal: in memory, not a temp file
      this.db.pragma('temp_store = MEMORY');
      this.db.pragma('wal_autocheckpoint = 32768'); // checkpoint every 128 MiB of WAL, not every 4
      this.migrate();
    }
    const cols = COLUMN_LIST;
    const vals = COLUMNS.map(() => '?').join(', ');
    const noop = this.db.prepare('SELECT 1');
    this.ins = opts.readonly ? noop : this.db.prepare(`INSERT INTO flows (${cols}) VALUES (${vals})`);
    this.insMulti = opts.readonly ? noop : this.db.prepare(`INSERT INTO flows (${cols}) VALUES ${Array.from({ length: MULTI }, () => `(${vals})`).join(', ')}`);
    this.insLong = opts.readonly ? noop : this.db.prepare(`INSERT INTO long_flows (${cols}, id) VALUES (${vals}, ?)`);
    this.insOpen = opts.readonly ? noop : this.db.prepare(`INSERT OR REPLACE INTO open_flows (${cols}, k) VALUES (${vals}, ?)`);
    this.delOpen = opts.readonly ? noop : this.db.prepare('DELETE FROM open_flows WHERE k = ?');
    const settleCols = COLUMNS.map((c) => (c === 'dur' ? 'max($end - start, 0)' : c === 'flags' ? '$flags' : c)).join(', ');
    this.settle = opts.readonly ? noop : this.db.prepare(`INSERT INTO flows (${cols}) SELECT ${settleCols} FROM open_flows WHERE k = $k`);
    this.mark = opts.readonly ? noop : this.db.prepare('INSERT OR IGNORE INTO marks (t, first_id) VALUES (?, ?)');
    this.tx = this.db.transaction((b: StoreBatch) => this.writeNow(b));
  }

  private version(): number {
    return Number(this.db.pragma('user_version', { simple: true }));
  }

  private migrate(): void {
    const v = this.version();
    if (v > SCHEMA_VERSION) throw new Error(`${this.opts.path}: schema version ${v} is newer than this conntrail (${SCHEMA_VERSION})`);
    for (let i = v; i < SCHEMA_VERSION; i++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[i]);
        this.db.pragma(`user_version = ${i + 1}`);
      })();
    }
  }

  private writeNow(b: StoreBatch): void {
    const row = this.row;
    const n = COLUMNS.length;
    for (const r of b.opened) {
      rowValues(r, row);
      row[n] = r.key;
      this.insOpen.run(row);
    }
    let first = -1;
    for (const s of b.settled) {
      const info = this.settle.run({ k: s.key, end: s.end, flags: s.flags });
      if (info.changes && first < 0) first = Number(info.lastInsertRowid);
      this.delOpen.run(s.key);
    }
    for (const k of b.unopen) this.delOpen.run(k);
    const cols = row.slice(0, n);
    const closed = b.closed;
    // long flows are copied to long_flows under the id their row got
    const copyIfLong = (r: FlowRecord, id: number) => {
      if (r.end !== null && r.end - r.start >= LONG_FLOW_MS) this.insLong.run([...rowValues(r, cols), id]);
    };
    let i = 0;
    // whole groups of MULTI rows in one statement (consecutive ids), the rest one by one
    const mv = this.multiVals;
    for (; i + MULTI <= closed.length; i += MULTI) {
      for (let j = 0; j < MULTI; j++) {
        rowValues(closed[i + j], cols);
        for (let c = 0; c < n; c++) mv[j * n + c] = cols[c];
      }
      const firstId = Number(this.insMulti.run(mv).lastInsertRowid) - MULTI + 1;
      if (first < 0) first = firstId;
      for (let j = 0; j < MULTI; j++) copyIfLong(closed[i + j], firstId + j);
    }
    for (; i < closed.length; i++) {
      const id = Number(this.ins.run(rowValues(closed[i], cols)).lastInsertRowid);
      if (first < 0) first = id;
      copyIfLong(closed[i], id);
    }
    if (first >= 0) this.mark.run(Date.now(), first);
  }

  async write(b: StoreBatch): Promise<void> {
    this.tx(b);
  }

  writeSync(b: StoreBatch): void {
    this.tx(b);
  }

  async openFlows(): Promise<OpenRow[]> {
    return (this.db.prepare('SELECT k, start, flags, proto, sport, dport FROM open_flows').all() as Array<Record<string, number>>)
      .map((x) => ({ key: x.k, start: x.start, flags: x.flags, proto: x.proto, sport: x.sport, dport: x.dport }));
  }

  async setNamespaces(names: string[]): Promise<void> {
    const st = this.db.prepare('INSERT OR REPLACE INTO namespaces (id, name) VALUES (?, ?)');
    this.db.transaction(() => names.forEach((n, i) => st.run(i, n)))();
  }

  async namespaces(): Promise<Map<number, string>> {
    const rows = this.db.prepare('SELECT id, name FROM namespaces').all() as Array<{ id: number; name: string }>;
    return new Map(rows.map((r) => [r.id, r.name]));
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
      return n;
    })();
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

  async who(pub: AddrPort, w: Window, proto: number | undefined, remote: AddrPort | undefined): Promise<StoredFlow[]> {
    return this.all(whoQuery(SQLITE, pub, w, proto, remote)).map(rowToFlow);
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
