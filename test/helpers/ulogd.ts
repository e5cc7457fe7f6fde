// Where Debian's ulogd2 keeps its plugins.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export function ulogdPluginDir(): string {
  for (const d of readdirSync('/usr/lib')) {
    const p = join('/usr/lib', d, 'ulogd');
    if (existsSync(join(p, 'ulogd_output_JSON.so'))) return p;
  }
  throw new Error('ulogd2 and ulogd2-json are not installed');
}
