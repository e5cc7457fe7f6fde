// A real PostgreSQL server for the tests: Debian's binaries, a fresh cluster
// (initdb) in a temporary directory, listening on loopback only. It can be
// stopped and started again on the same data (to prove the spool).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function pgBin(): string {
  const base = '/usr/lib/postgresql';
  const v = existsSync(base) ? readdirSync(base).filter((d) => existsSync(join(base, d, 'bin', 'postgres'))).sort().pop() : undefined;
  if (!v) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)');
  return join(base, v, 'bin');
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Postgres {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPostgres(_dir?: string): Promise<Postgres> {
  const bin = pgBin();
  const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (id.status !== 0) throw new Error('no "postgres" user (apt-get install postgresql)');
  const base = mkdtempSync(join(tmpdir(), 'conntrail-pg-'));
  chmodSync(base, 0o755);
  const data = join(base, 'data');
  mkdirSync(data, { mode: 0o700 });
  chownSync(data, Number(id.stdout), Number(gid.stdout));
  const as = (cmd: string[]) => spawnSync('runuser', ['-u', 'postgres', '--', ...cmd], { encoding: 'utf8' });
  const init = as([join(bin, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const pg: Postgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      proc = spawn('runuser', ['-u', 'postgres', '--', join(bin, 'postgres'), '-D', data, '-p', String(port), '-k', data,
        '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
      { stdio: 'ignore', detached: true });
      const deadline = Date.now() + 30000;
      while (Date.now() < deadline) {
        if (spawnSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)]).status === 0) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('PostgreSQL did not start within 30 s');
    },
    async stop() {
      const p = proc;
      proc = undefined;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = once(p, 'exit');
      // fast shutdown: the server ends its sessions and exits
      try { process.kill(-p.pid!, 'SIGINT'); } catch { p.kill('SIGINT'); }
      const timer = setTimeout(() => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } }, 15000);
      await exited;
      clearTimeout(timer);
    },
  };
  await pg.start();
  const stop = pg.stop.bind(pg);
  pg.stop = async () => { await stop(); };
  process.on('exit', () => { try { rmSync(base, { recursive: true, force: true }); } catch { /* best effort */ } });
  return pg;
}
