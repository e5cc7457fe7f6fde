// Creating directories without surprises: Node's recursive mkdirSync loops
// for ever under /proc (every component "exists" or cannot be created in a
// way it retries), so the path is walked here, component by component.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** Creates `path` and its missing parents (mode for the new ones); throws naming the path and the cause. */
export function ensureDir(path: string, mode = 0o750): void {
  const abs = resolve(path);
  const missing: string[] = [];
  let p = abs;
  for (let i = 0; i < 256; i++) {
    let st;
    try { st = statSync(p); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOTDIR: a component above is a file, found on the way up
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new Error(`${p}: ${code ?? (e as Error).message}`);
    }
    if (st) {
      if (!st.isDirectory()) throw new Error(`${p}: not a directory`);
      break;
    }
    missing.push(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  for (const d of missing.reverse()) {
    try { mkdirSync(d, { mode }); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new Error(`cannot create directory ${d} (${code ?? (e as Error).message})`);
    }
  }
}
