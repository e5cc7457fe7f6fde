// Errors that end a command with one line on stderr and a non-zero exit.

/** Bad input from the user (argument, option, file): exit 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** A runtime failure the user can act on (permissions, missing namespace): exit 1. */
export class FatalError extends Error {
  readonly exitCode = 1;
}

interface SysError extends Error { code?: string; syscall?: string; errno?: number }

/** Turns a system error from opening/using a netlink socket into a FatalError. */
export function explainSocketError(e: unknown, netns?: string): Error {
  if (e instanceof UsageError || e instanceof FatalError) return e;
  const err = e as SysError;
  const code = err?.code ?? '';
  const where = netns ? ` in network namespace "${netns}"` : '';
  if (err?.syscall === 'open' && code === 'ENOENT') {
    return new FatalError(`network namespace "${netns}" does not exist (no ${netns?.includes('/') ? netns : '/run/netns/' + netns})`);
  }
  if (err?.syscall === 'setns' || err?.syscall === 'open') {
    return new FatalError(`cannot enter network namespace "${netns}": ${err.message}`);
  }
  if (code === 'EPERM' || code === 'EACCES') {
    return new FatalError(`permission denied${where}: reading conntrack events needs root or CAP_NET_ADMIN (${err.message})`);
  }
  if (code === 'EPROTONOSUPPORT' || code === 'EOPNOTSUPP' || code === 'ENOENT') {
    return new FatalError(`the kernel has no conntrack netlink support${where} (load nf_conntrack_netlink): ${err.message}`);
  }
  return new FatalError(err?.message ?? String(e));
}
