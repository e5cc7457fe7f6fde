// The named network namespaces (`ip netns`, /run/netns/NAME) as they come
// and go. A namespace is known by its inode (the same one can be mounted
// under two names); a name counts only once its bind mount is there:
// `ip netns add` creates the file (inotify IN_CREATE) a few milliseconds
// before it mounts the namespace on it, and no inotify event marks the
// mount, so a name whose file is not (yet) a namespace is looked at again
// shortly after, then at every rescan. inotify (fs.watch) says when to look;
// a rescan every few seconds catches what it did not say (a queue overflow,
// /run/netns created after the start).
import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';

export const NETNS_DIR = '/run/netns';
/** after an event, a name whose mount is not there yet is looked at again after these (ms) */
const RETRY_MS = [2, 5, 10, 25, 50, 100, 250, 500];
const RESCAN_MS = 2000;

export interface NamedNetns {
  inode: number;
  /** its names under the directory, sorted */
  names: string[];
}

export interface NetnsWatchOptions {
  dir?: string;
  /** called after every scan that changed the set (also the first) */
  onChange: (now: Map<number, NamedNetns>) => void;
  rescanMs?: number;
}

/** the device of nsfs, whose inodes are namespaces */
function nsfsDevice(): number {
  return statSync('/proc/self/ns/net').dev;
}

export class NetnsWatcher {
  private readonly dir: string;
  private readonly nsfs = nsfsDevice();
  private current = new Map<number, NamedNetns>();
  private fsw: FSWatcher | undefined;
  private rescan: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private retryStep = 0;
  private closed = false;
  /** names whose file was not a namespace at the last scan */
  private unmounted = 0;

  constructor(private readonly o: NetnsWatchOptions) {
    this.dir = o.dir ?? NETNS_DIR;
  }

  /** Scans once (synchronously: the namespaces there now) and starts watching. */
  start(): Map<number, NamedNetns> {
    this.scan(false);
    this.watchDir();
    this.rescan = setInterval(() => { this.watchDir(); this.scan(); }, this.o.rescanMs ?? RESCAN_MS);
    this.rescan.unref();
    return this.current;
  }

  /** the namespaces known now, by inode */
  get namespaces(): Map<number, NamedNetns> {
    return this.current;
  }

  private watchDir(): void {
    if (this.fsw || this.closed) return;
    try {
      this.fsw = watch(this.dir, { persistent: false }, () => this.changed());
      this.fsw.on('error', () => { this.fsw?.close(); this.fsw = undefined; });
      // created since the last scan: look now
      this.changed();
    } catch { /* no such directory yet: the rescan tries again */ }
  }

  /** inotify said something changed: scan, and again shortly after while a name is not mounted yet */
  private changed(): void {
    if (this.closed) return;
    this.retryStep = 0;
    if (this.retry) { clearTimeout(this.retry); this.retry = undefined; }
    setImmediate(() => this.scanAndRetry());
  }

  private scanAndRetry(): void {
    if (this.closed) return;
    this.scan();
    if (this.unmounted > 0 && this.retryStep < RETRY_MS.length && !this.retry) {
      this.retry = setTimeout(() => { this.retry = undefined; this.retryStep++; this.scanAndRetry(); }, RETRY_MS[this.retryStep]);
    }
  }

  private scan(notify = true): void {
    if (this.closed) return;
    let names: string[] = [];
    try { names = readdirSync(this.dir).sort(); } catch { /* none yet */ }
    const next = new Map<number, NamedNetns>();
    let unmounted = 0;
    for (const n of names) {
      let st;
      try { st = statSync(`${this.dir}/${n}`); } catch { continue; }
      // not (yet) a namespace mounted there: the plain file `ip netns add` made first
      if (st.dev !== this.nsfs) { unmounted++; continue; }
      const e = next.get(st.ino);
      if (e) e.names.push(n); else next.set(st.ino, { inode: st.ino, names: [n] });
    }
    this.unmounted = unmounted;
    const same = next.size === this.current.size &&
      [...next].every(([ino, e]) => this.current.get(ino)?.names.join('\0') === e.names.join('\0'));
    if (same) return;
    this.current = next;
    if (notify) this.o.onChange(next);
  }

  close(): void {
    this.closed = true;
    this.fsw?.close();
    this.fsw = undefined;
    if (this.rescan) clearInterval(this.rescan);
    if (this.retry) clearTimeout(this.retry);
  }
}

/**
 * A shell-style pattern (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`) as a test of a
 * whole name; `*` alone matches every name.
 */
export function netnsPattern(p: string): (name: string) => boolean {
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const j = p.indexOf(']', i + 2);
      if (j < 0) { re += '\\['; continue; }
      let body = p.slice(i + 1, j);
      const neg = body[0] === '!' || body[0] === '^';
      if (neg) body = body.slice(1);
      re += `[${neg ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = j;
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  const rx = new RegExp(`^${re}$`, 's');
  return (name) => rx.test(name);
}

/** the inode of a source's namespace (a name under /run/netns, or a path); 0 for none ('' : the daemon's own) or when it cannot be read */
export function namespaceInode(spec: string | undefined): number {
  if (!spec) return 0;
  try { return statSync(spec.includes('/') ? spec : `${NETNS_DIR}/${spec}`).ino; } catch { return 0; }
}

/** does this `netns` value name namespaces by pattern (rather than one namespace)? */
export function isNetnsPattern(v: string | string[] | undefined): v is string | string[] {
  return Array.isArray(v) || (typeof v === 'string' && /[*?[]/.test(v));
}
