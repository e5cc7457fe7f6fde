// A real systemd-journald for the tests: the one running, or one started
// standalone (and stopped by PID afterwards).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { waitFor } from './netns.js';

export const JOURNALD = '/lib/systemd/systemd-journald';

export async function ensureJournald(): Promise<() => void> {
  if (spawnSync('pgrep', ['-x', 'systemd-journal']).status === 0 && existsSync('/run/systemd/journal/socket')) return () => {};
  mkdirSync('/run/systemd/journal', { recursive: true });
  const child: ChildProcess = spawn(JOURNALD, [], { stdio: 'ignore', detached: true });
  if (!(await waitFor(() => existsSync('/run/systemd/journal/socket'), 10000))) throw new Error('systemd-journald did not start');
  // stopped and gone before the next test looks for a running journald
  // (one still exiting would be taken for a running one)
  return () => {
    if (!child.pid) return;
    try { process.kill(child.pid, 'SIGTERM'); } catch { return; }
    const sleep = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 100 && existsSync(`/proc/${child.pid}`) && !isZombie(child.pid); i++) Atomics.wait(sleep, 0, 0, 50);
  };
}

function isZombie(pid: number): boolean {
  try { return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return true; }
}

/** Entries with this SYSLOG_IDENTIFIER, as journalctl -o json prints them. */
export function journalEntries(identifier: string): Array<Record<string, string>> {
  const r = spawnSync('journalctl', ['-o', 'json', '--no-pager', `SYSLOG_IDENTIFIER=${identifier}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}
