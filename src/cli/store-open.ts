// Opening the flow store for a query command: --db, --postgres, or the
// daemon's own store (from its configuration file, else the default path).
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { Command } from 'commander';
import { SqliteStore } from '../store/sqlite.js';
import { PostgresStore } from '../store/postgres.js';
import type { FlowReader } from '../store/store.js';
import { stateDirectory } from '../config/schema.js';
import { loadConfig, postgresUrlProblem, redactUrl } from '../config/load.js';
import { kindOf } from '../util/fs.js';
import { DEFAULT_CONFIG } from './run.js';
import { FatalError, UsageError } from '../util/errors.js';

export interface StoreCliOptions { db?: string; postgres?: string; config?: string }

/** `explicit`: the command reads a store only when one of these is given (no default store) */
export function addStoreOptions(cmd: Command, explicit = false): Command {
  return cmd
    .option('--db <path>', explicit ? 'read the SQLite flow store at this path' : 'SQLite flow store to read (default: the daemon\'s store)')
    .option('--postgres <url>', 'read the PostgreSQL flow store at this URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)')
    .option('-c, --config <file>', explicit ? 'read the store of the daemon with this configuration'
      : `the daemon's configuration, to find its store (default: ${DEFAULT_CONFIG} if it exists)`);
}

export async function openReader(o: StoreCliOptions): Promise<FlowReader> {
  if (o.db && o.postgres) throw new UsageError('--db and --postgres: give one store, not both');
  let db = o.db;
  let url = o.postgres;
  if (!db && !url) {
    const file = o.config ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
    if (file) {
      // for reading: the files the daemon writes need not be writable by us
      const st = loadConfig(file, 'read').config.store;
      if (st.type === 'none') throw new UsageError(`${file}: the daemon keeps no flow store (store.type = "none"); give --db or --postgres`);
      if (st.type === 'postgres') url = st.url; else db = st.path;
    } else db = `${stateDirectory()}/flows.db`;
  }
  if (url) {
    const bad = postgresUrlProblem(url);
    if (bad) throw new UsageError(`--postgres: ${JSON.stringify(redactUrl(url))}${bad.startsWith('is ') ? ' ' : ': '}${bad}`);
    const store = new PostgresStore({ url, statementTimeoutMs: 60000 });
    try {
      await store.namespaces();
    } catch (e) {
      await store.close();
      throw new FatalError(`${url.replace(/\/\/[^@/]*@/, '//')}: cannot read the flow store (${(e as Error).message})`);
    }
    return store;
  }
  checkDbFile(db!, o.db !== undefined);
  try {
    return new SqliteStore({ path: db!, readonly: true });
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === 'SQLITE_BUSY') throw new FatalError(`${db}: the flow store is locked (busy for more than 5 s); try again`);
    if (err.code === 'SQLITE_NOTADB') throw new FatalError(`${db}: not an SQLite database`);
    throw new FatalError(`${db}: cannot open the flow store (${err.message})`);
  }
}

/**
 * The SQLite file to read: missing is a runtime state (exit 1); a directory,
 * device or pipe given as --db is bad input (exit 2: SQLite would say only
 * "disk I/O error", or wait on a pipe).
 */
function checkDbFile(db: string, given: boolean): void {
  if (db.includes('\0')) throw new UsageError(`${given ? '--db: ' : ''}${JSON.stringify(db)}: a path cannot contain a NUL character`);
  let st;
  try {
    st = statSync(db);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FatalError(`${db}: no flow store there (the daemon creates it when it runs with the SQLite store; or give --db PATH)`);
    if (code === 'ENOTDIR') throw new UsageError(`${given ? '--db: ' : ''}${db}: a component of the path is not a directory`);
    if (code === 'EACCES') throw new FatalError(`${db}: permission denied (reading the flow store needs search access to its directories)`);
    throw new FatalError(`${db}: cannot read the flow store (${code ?? (e as Error).message})`);
  }
  if (!st.isFile()) {
    const msg = `${db} is ${kindOf(st)}, not an SQLite flow store file`;
    throw given ? new UsageError(`--db: ${msg}`) : new FatalError(msg);
  }
  try {
    accessSync(db, constants.R_OK);
  } catch {
    throw new FatalError(`${db}: permission denied (reading the flow store needs read access to it)`);
  }
}

/** Runs a query, turning store errors into one line. */
export async function query<T>(store: FlowReader, what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === 'SQLITE_BUSY') throw new FatalError(`${what}: the flow store is locked (busy for more than 5 s); try again`);
    throw new FatalError(`${what}: ${err.message}`);
  } finally {
    await store.close();
  }
}

/**
 * The store's ids of the namespaces named with --netns (as the daemon's
 * sources name them; "" is the daemon's own). A name the store does not
 * have is said on stderr (a typo would otherwise read as "no flow") and
 * matches nothing.
 */
export function namespaceIds(names: Map<number, string>, wanted: string[]): number[] {
  const ids: number[] = [];
  for (const w of wanted) {
    const found = [...names].filter(([, n]) => n === w).map(([id]) => id);
    if (!found.length) {
      const known = [...new Set(names.values())].filter((n) => n !== '').sort();
      process.stderr.write(`conntrail: warning: --netns: the store has no network namespace "${w}"${known.length ? ` (it has ${known.length}: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', …' : ''})` : ' (only the daemon\'s own)'}\n`);
    }
    ids.push(...found);
  }
  // (an id no namespace has: the search matches nothing)
  return ids.length ? ids : [-2];
}
