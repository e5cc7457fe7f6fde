// The name of the process that owns a netlink portid, found as
// conntrack-tools does it: /proc/net/netlink gives the socket inode, then
// the process with that socket open. Cached for the last portid. (A live
// source looks the name up in the addon as each event is received, which
// is earlier; this serves records that come without it.)
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

const NETLINK_NETFILTER = 12;
let lastKey = '';
let lastName: string | undefined;

function socketInode(portid: number): number | undefined {
  let text: string;
  try { text = readFileSync('/proc/net/netlink', 'utf8'); } catch { return undefined; }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    if (Number(f[1]) === NETLINK_NETFILTER && Number(f[2]) >>> 0 === portid) return Number(f[9]);
  }
  return undefined;
}

function ownerName(pid: number, inode: number): string | undefined {
  let fds: string[];
  try { fds = readdirSync(`/proc/${pid}/fd`); } catch { return undefined; }
  const want = `socket:[${inode}]`;
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === want) {
        // as conntrack: /proc/PID/stat's name, up to its first ')'
        const m = /^\d+ \(([^)]+)/.exec(readFileSync(`/proc/${pid}/stat`, 'latin1'));
        return m ? m[1] : undefined;
      }
    } catch { /* gone */ }
  }
  return undefined;
}

export function prognameOf(portid: number): string | undefined {
  const inode = socketInode(portid);
  if (inode === undefined) return undefined;
  const key = `${portid}:${inode}`;
  if (key === lastKey) return lastName;
  let name = ownerName(portid, inode);
  if (name === undefined) {
    let pids: string[] = [];
    try { pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)); } catch { /* none */ }
    for (const p of pids) {
      const pid = Number(p);
      if (pid <= 1 || pid === portid) continue;
      name = ownerName(pid, inode);
      if (name !== undefined) break;
    }
  }
  lastKey = key;
  lastName = name;
  return name;
}
