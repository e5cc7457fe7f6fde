// Opening the flow store for a query command: --db, --postgres, or the
// daemon's own store (from its configuration file, else the default path).
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { SqliteStore } from '../store/sqlite.js';
import { PostgresStore } from '../store/postgres.js';
import type { FlowReader } from '../store/store.js';
import { stateDirectory } from '../config/schema.js';
import { loadConfig } from '../config/load.js';
import { DEFAULT_CONFIG } from './run.js';
import { FatalError, UsageError } from '../util/errors.js';

export interface StoreCliOptions { db?: string; postgres?: string; config?: string }

export function addStoreOptions(cmd: Command): Command {
  return cmd
    .option('--db <path>', 'SQLite flow store to read (default: the daemon\'s store)')
    .option('--postgres <url>', 'read the PostgreSQL flow store at this URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)')
    .option('-c, --config <file>', `the daemon's configuration, to find its store (default: ${DEFAULT_CONFIG} if it exists)`);
}

export async function openReader(o: StoreCliOptions): Promise<FlowReader> {
  if (o.db && o.postgres) throw new UsageError('--db and --postgres: give one store, not both');
  let db = o.db;
  let url = o.postgres;
  if (!db && !url) {
    const file = o.config ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
    if (file) {
      const st = loadConfig(file).config.store;
      if (st.type === 'none') throw new UsageError(`${file}: the daemon keeps no flow store (store.type = "none"); give --db or --postgres`);
      if (st.type === 'postgres') url = st.url; else db = st.path;
    } else db = `${stateDirectory()}/flows.db`;
  }
  if (url) {
    if (!/^postgres(ql)?:\/\//.test(url)) throw new UsageError(`--postgres: "${url}" is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)`);
    const store = new PostgresStore({ url, statementTimeoutMs: 60000 });
    try {
      await store.namespaces();
    } catch (e) {
      await store.close();
      throw new FatalError(`${url.replace(/\/\/[^@/]*@/, '//')}: cannot read the flow store (${(e as Error).message})`);
    }
    return store;
  }
  if (!existsSync(db!)) throw new FatalError(`${db}: no flow store there (the daemon creates it when it runs with the SQLite store; or give --db PATH)`);
  try {
    return new SqliteStore({ path: db!, readonly: true });
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === 'SQLITE_BUSY') throw new FatalError(`${db}: the flow store is locked (busy for more than 5 s); try again`);
    if (err.code === 'SQLITE_NOTADB') throw new FatalError(`${db}: not an SQLite database`);
    throw new FatalError(`${db}: cannot open the flow store (${err.message})`);
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
