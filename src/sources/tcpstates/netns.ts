// Names for the network namespaces a tcpstates source sees: the probe
// gives each change its namespace's inode only. The daemon's own namespace
// is '' (as a conntrack source without `netns`), a namespace the
// configuration names keeps that name, any other `ip netns` name found
// under /run/netns is taken, and one with no name (a container's) is
// "net:[INODE]", as /proc/PID/ns/net reads. /run/netns is read again when
// an inode is not known, at most once a second.
import { readdirSync, statSync } from 'node:fs';

export const NETNS_DIR = '/run/netns';
const RESCAN_MS = 1000;

export class NetnsNames {
  private byInode = new Map<number, string>();
  private scanned = -Infinity;

  /** `preferred`: names the configuration uses (first wins for an inode with two names) */
  constructor(private readonly preferred: string[] = [], private readonly dir = NETNS_DIR) {
    this.scan();
  }

  /** the name of the namespace with this inode */
  name(inode: number): string {
    const n = this.byInode.get(inode);
    if (n !== undefined) return n;
    if (Date.now() - this.scanned >= RESCAN_MS) {
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
    add('/proc/self/ns/net', '');
    for (const n of this.preferred) if (n) add(n.includes('/') ? n : `${this.dir}/${n}`, n);
    let names: string[] = [];
    try { names = readdirSync(this.dir).sort(); } catch { /* no named namespaces */ }
    for (const n of names) add(`${this.dir}/${n}`, n);
    this.byInode = m;
  }
}
