// The loop every live command shares (`events`, `packets`): records from a
// source to standard output (or a file), flushed at the end of each receive
// batch, losses warned about once a second while they grow, a count limit,
// SIGINT and SIGTERM, and a reader that went away (`| head`) as a normal end.
import { ClosedOutputError } from '../util/output.js';
import { explainSocketError } from '../util/errors.js';

export interface LiveHandlers<R> {
  record(r: R): void;
  batchEnd(): void;
}

export interface Live<R> {
  /** starts reading into the handlers (a promise: rejects if the kernel refused the subscription) */
  start(h: LiveHandlers<R>, onError: (e: Error) => void): Promise<void> | void;
  /** a record to show? (the user-space filter) */
  accept?(r: R): boolean;
  /** writes one record (may throw ClosedOutputError) */
  emit(r: R): void;
  /** the end of a batch: what was written goes out */
  flush(): void;
  /** the end: the last of it out, files closed */
  closeOutput(): void;
  /** at a signal: the last records the source still holds, delivered before the end */
  drain?(): void;
  /** says what was lost since it last said so (`final`: the source is about to close) */
  warn(final: boolean): void;
  /** closes the source; returns the --stats line, or undefined without --stats */
  close(shown: number): string | undefined;
  /** stop after this many records */
  limit: number;
  netns?: string;
}

/** a reader that went away (| head) is a normal end */
const normalEnd = (e: unknown) => e instanceof ClosedOutputError || (e as NodeJS.ErrnoException).code === 'EPIPE';

export function runLive<R>(l: Live<R>): Promise<void> {
  let shown = 0;
  let stopped = false;
  return new Promise<void>((resolve, reject) => {
    const warnTimer = setInterval(() => l.warn(false), 1000);
    warnTimer.unref();
    const finish = (err?: Error) => {
      if (stopped) return;
      stopped = true;
      clearInterval(warnTimer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      try {
        l.closeOutput();
      } catch (e) {
        if (!normalEnd(e)) err ??= e as Error;
      }
      l.warn(true);
      const line = l.close(shown);
      if (line) process.stderr.write(line + '\n');
      if (err) reject(explainSocketError(err, l.netns)); else resolve();
    };
    const onSignal = () => {
      try {
        l.drain?.();
      } catch (e) {
        finish(e as Error);
        return;
      }
      finish();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const started = l.start({
      record(r) {
        if (stopped || (l.accept && !l.accept(r))) return;
        try {
          l.emit(r);
        } catch (e) {
          finish(normalEnd(e) ? undefined : (e as Error));
          return;
        }
        if (++shown >= l.limit) finish();
      },
      batchEnd() {
        if (stopped) return;
        try {
          l.flush();
        } catch (e) {
          finish(normalEnd(e) ? undefined : (e as Error));
        }
      },
    }, (err) => finish(err));
    if (started) started.catch((err: Error) => finish(err));
  });
}
