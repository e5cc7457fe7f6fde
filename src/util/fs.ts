// Directories for the flow store, the spool and log files: created, and
// checked before anything starts, one path component at a time.
//
// Not mkdirSync({ recursive: true }): under /proc it never returns (mkdir
// there fails with ENOENT although the parent exists, and Node's recursion
// goes back to the parent, which exists, forever). Here every component is
// visited once, so the walk ends after as many steps as the path has
// components, whatever the filesystem answers.
import { accessSync, constants, mkdirSync, statSync, statfsSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';

const sep: string = '/';

/** statfs f_type of filesystems that hold no files of ours (linux/magic.h) */
const PSEUDO_FS: Record<number, string> = {
  0x9fa0: 'procfs',
  0x62656572: 'sysfs',
  0x27e0eb: 'cgroupfs',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0x1cd1: 'devpts',
  0x62656570: 'configfs',
  0xcafe4a11: 'bpffs',
  0x6165676c: 'pstore',
  0xde5e81e4: 'efivarfs',
  0x42494e4d: 'binfmt_misc',
  0x19800202: 'mqueue',
  0x6e736673: 'nsfs',
};

/** The name of the pseudo-filesystem `dir` is on (procfs, sysfs, ...), else undefined. */
export function pseudoFs(dir: string): string | undefined {
  try {
    return PSEUDO_FS[statfsSync(dir).type >>> 0];
  } catch {
    return undefined; // statfs is only a second opinion; stat and mkdir name real errors
  }
}

const reason = (e: unknown): string => {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'EROFS': return 'read-only file system';
    case 'ENOSPC': return 'no space left on the device';
    case 'EDQUOT': return 'disk quota exceeded';
    case 'ELOOP': return 'too many levels of symbolic links';
    case 'ENAMETOOLONG': return 'name too long';
    case 'ENOTDIR': return 'a component is not a directory';
    case 'ENOENT': return 'no such file or directory';
    default: return code ?? (e as Error).message;
  }
};

/** stat said EACCES: the directory above may not be searched */
const searchDenied = (e: unknown) => (e as NodeJS.ErrnoException).code === 'EACCES';

function statOrMissing(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** "/a", "/a/b", "/a/b/c" for "/a/b/c" (absolute, normalized), "/" first */
function prefixes(abs: string): string[] {
  const parts = abs.split(sep).filter(Boolean);
  const out = [sep];
  for (let i = 0; i < parts.length; i++) out.push(sep + parts.slice(0, i + 1).join(sep));
  return out;
}

function checkText(path: string): string {
  if (path === '') throw new Error('an empty path');
  if (path.includes('\0')) throw new Error(`${JSON.stringify(path)}: a path cannot contain a NUL character`);
  return resolve(path);
}

/**
 * Creates directory `path` and its missing parents (like mkdir -p, with
 * `mode` for the ones it creates). Throws an Error naming the path and the
 * cause: a component that is not a directory, a pseudo-filesystem (procfs,
 * sysfs, ...), permission, read-only file system, ...
 */
export function ensureDir(path: string, mode = 0o750): void {
  const fail = (why: string): never => { throw new Error(`cannot create directory ${path}: ${why}`); };
  let abs: string;
  try { abs = checkText(path); } catch (e) { return fail((e as Error).message); }
  let parent = sep;
  for (const p of prefixes(abs)) {
    let st: Stats | undefined;
    try { st = statOrMissing(p); } catch (e) { return fail(searchDenied(e) ? `no search permission in ${parent}` : `${p}: ${reason(e)}`); }
    if (!st) {
      const fs = pseudoFs(parent);
      if (fs) fail(`${parent} is on ${fs}, not a place for files`);
      try {
        mkdirSync(p, { mode });
      } catch (e) {
        // someone else made it in the meantime: fine if it is a directory
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') fail(`${p}: ${reason(e)}`);
        try { st = statSync(p); } catch (e2) { return fail(`${p}: ${reason(e2)}`); }
        if (!st.isDirectory()) fail(`${p} is not a directory`);
      }
    } else if (!st.isDirectory()) {
      fail(`${p} is not a directory`);
    }
    parent = p;
  }
  const fs = pseudoFs(abs);
  if (fs) fail(`${abs} is on ${fs}, not a place for files`);
}

export interface DirState {
  /** the nearest existing ancestor of the directory (itself when it exists) */
  existing: string;
  /** the directory itself exists */
  exists: boolean;
}

/**
 * Checks, without changing anything, that files can be made in directory
 * `dir` (or that it can be created): its nearest existing ancestor is a
 * directory this process may write to, on a real filesystem. `what` says
 * what goes there ("a database"). Throws an Error with the cause.
 */
export function checkDirUsable(dir: string, what: string): DirState {
  const abs = checkText(dir);
  let existing = sep;
  let exists = true;
  for (const p of prefixes(abs)) {
    let st: Stats | undefined;
    try { st = statOrMissing(p); } catch (e) { throw new Error(searchDenied(e) ? `no search permission in ${existing}` : `${p}: ${reason(e)}`); }
    if (!st) { exists = false; break; }
    if (!st.isDirectory()) throw new Error(`${p} is not a directory`);
    existing = p;
  }
  const fs = pseudoFs(existing);
  if (fs) throw new Error(`${existing} is on ${fs}, not a place for ${what}`);
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EROFS') throw new Error(`${existing} is on a read-only file system`);
    if (code === 'EACCES' || code === 'EPERM') {
      throw new Error(`${existing} is not writable by this user (uid ${process.getuid?.() ?? '?'})`);
    }
    throw new Error(`${existing}: ${reason(e)}`);
  }
  return { existing, exists };
}

/**
 * Checks a file the daemon will create or write to, without changing
 * anything: not a directory (a regular file, or a character device such as
 * /dev/null with `devicesOk`), not on a pseudo-filesystem, writable. A file
 * that does not exist yet needs a usable directory (checkDirUsable), which
 * must exist with `dirMustExist` (the writer does not create it); with
 * `dirWrite` the directory must be writable in any case (SQLite puts its
 * -wal and -shm files beside the database). Throws an Error with the cause.
 */
export function checkFileUsable(path: string, what: string, opts: { dirMustExist?: boolean; devicesOk?: boolean; dirWrite?: boolean } = {}): void {
  const abs = checkText(path);
  const dir = dirname(abs);
  let st: Stats | undefined;
  try {
    st = statOrMissing(abs);
  } catch (e) {
    // ENOTDIR: checkDirUsable below names the component that is not a directory
    if ((e as NodeJS.ErrnoException).code !== 'ENOTDIR') throw new Error(`${abs}: ${reason(e)}`);
  }
  if (!st || opts.dirWrite) {
    const d = checkDirUsable(dir, what);
    if (opts.dirMustExist && !d.exists) throw new Error(`directory ${dir} does not exist (it is not created for ${what})`);
  }
  if (!st) return;
  if (st.isDirectory()) throw new Error(`${abs} is a directory, not ${what}`);
  if (!st.isFile() && !(opts.devicesOk && st.isCharacterDevice())) throw new Error(`${abs} is ${kindOf(st)}, not ${what}`);
  const fs = pseudoFs(dir);
  if (fs) throw new Error(`${abs} is on ${fs}, not a place for ${what}`);
  try {
    accessSync(abs, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EROFS') throw new Error(`${abs} is on a read-only file system`);
    if (code === 'EACCES' || code === 'EPERM') throw new Error(`${abs} is not writable by this user (uid ${process.getuid?.() ?? '?'})`);
    throw new Error(`${abs}: ${reason(e)}`);
  }
}

/** "a directory", "a character device", ... */
export function kindOf(st: Stats): string {
  return st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : st.isCharacterDevice() ? 'a character device'
    : st.isBlockDevice() ? 'a block device' : st.isFIFO() ? 'a named pipe' : st.isSocket() ? 'a socket' : 'not a regular file';
}
