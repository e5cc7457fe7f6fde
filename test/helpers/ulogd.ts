// Where Debian's ulogd2 keeps its plugins; which NFLOG groups are bound.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Topology } from './netns.js';

export function ulogdPluginDir(): string {
  for (const d of readdirSync('/usr/lib')) {
    const p = join('/usr/lib', d, 'ulogd');
    if (existsSync(join(p, 'ulogd_output_JSON.so'))) return p;
  }
  throw new Error('ulogd2 and ulogd2-json are not installed');
}

/** the NFLOG groups bound in the router's namespace (/proc/net/netfilter/nfnetlink_log) */
export function boundGroups(t: Topology): number[] {
  return t.exec(t.rtr, ['cat', '/proc/net/netfilter/nfnetlink_log']).split('\n').filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[0]));
}
