// Names for the network namespaces a tcpstates source sees: the probe
// gives each change its namespace's inode only. A namespace the
// configuration's sources name keeps the name they give it, exactly (the
// flows and packets of those sources are stored under it), in their order
// ('' : the daemon's own, as a source without `netns`); then the daemon's
// own namespace is '', any other `ip netns` name found under /run/netns is
// taken, and one with no name (a container's) is "net:[INODE]", as
// /proc/PID/ns/net reads. The names are read again every 10 s (an inode is
// reused once its namespace is gone) and when an inode is not known, at
// most once a second.
import { readdirSync, statSync } from 'node:fs';

export const NETNS_DIR = '/run/netns';
const RESCAN_MS = 1000;
const REFRESH_MS = 10_000;

export class NetnsNames {
  private byInode = new Map<number, string>();
  private scanned = -Infinity;

  /** `preferred`: names the configuration uses (first wins for an inode with two names) */
  constructor(private preferred: string[] = [], private readonly dir = NETNS_DIR) {
    this.scan();
  }

  /** A new configuration's names (SIGHUP). */
  prefer(names: string[]): void {
    this.preferred = names;
    this.scan();
  }

  /** Reads the names again now (the namespaces changed). */
  refresh(): void {
    this.scan();
  }

  /** the name of the namespace with this inode */
  name(inode: number): string {
    const now = Date.now();
    if (now - this.scanned >= REFRESH_MS) this.scan();
    const n = this.byInode.get(inode);
    if (n !== undefined) return n;
    if (now - this.scanned >= RESCAN_MS) {
      this.scan();
      const again = this.byInode.get(inode);
      if (again !== undefined) return again;
    }
    return `net:[${inode}]`;
  }

  private scan(): void {
    this.scanned = Date.now();
    const m = new Map<number, string>();
    const add = (path: string, name: string) => {
      try {
        const ino = statSync(path).ino;
        if (!m.has(ino)) m.set(ino, name);
      } catch { /* gone, or not there */ }
    };
    // (an inode number names no namespace: a tcpstates source's netns may be one)
    for (const n of this.preferred) if (!/^\d+$/.test(n)) add(n === '' ? '/proc/self/ns/net' : n.includes('/') ? n : `${this.dir}/${n}`, n);
    add('/proc/self/ns/net', '');
    let names: string[] = [];
    try { names = readdirSync(this.dir).sort(); } catch { /* no named namespaces */ }
    for (const n of names) add(`${this.dir}/${n}`, n);
    this.byInode = m;
  }
}
