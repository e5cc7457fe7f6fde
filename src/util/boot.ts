// Which boot of the kernel this is: the first 32 bits of its boot_id (a
// random UUID chosen at each boot), as a number. Socket cookies count from
// 1 again at each boot; a stored cookie is one socket's only with it.
import { readFileSync } from 'node:fs';

let cached: number | undefined;

export function kernelBoot(): number {
  if (cached === undefined) {
    try {
      cached = parseInt(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().slice(0, 8), 16) || 0;
    } catch {
      cached = 0;
    }
  }
  return cached;
}
