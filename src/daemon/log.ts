// The daemon's own log (start, configuration, warnings), separate from the
// records: one line per message on stderr, "conntrail: LEVEL: message".
export type Level = 'error' | 'warn' | 'info' | 'debug';
const RANK: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export class Logger {
  constructor(public level: Level = 'info', private readonly write: (s: string) => void = (s) => process.stderr.write(s)) {}
  private at(l: Level, msg: string): void {
    if (RANK[l] <= RANK[this.level]) this.write(`conntrail: ${l === 'warn' ? 'warning' : l}: ${msg}\n`);
  }
  error(m: string): void { this.at('error', m); }
  warn(m: string): void { this.at('warn', m); }
  info(m: string): void { this.at('info', m); }
  debug(m: string): void { this.at('debug', m); }
}
