#!/usr/bin/env -S node --max-semi-space-size=4
// conntrail: connection-tracking and flow logger.
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { eventsCommand } from './events.js';
import { dumpCommand } from './dump.js';
import { runCommand } from './run.js';
import { checkConfigCommand } from './check-config.js';
import { whoCommand } from './who.js';
import { flowsCommand } from './flows.js';
import { packetsCommand } from './packets.js';
import { tcpstatesCommand } from './tcpstates.js';
import { aggregatesCommand } from './aggregates.js';

function version(): string {
  try {
    return JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;
  } catch {
    return '0.0.0';
  }
}

/**
 * One line, whatever the message holds: values from the command line or a
 * file may contain newlines or terminal escapes; they are shown escaped.
 */
export function oneLine(message: string): string {
  return message.replace(/[\x00-\x1f\x7f\u0085\u2028\u2029]/g, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function fail(message: string, code: number): never {
  process.stderr.write(`conntrail: ${oneLine(message) || 'failed without a message'}\n`);
  process.exit(code);
}

/**
 * commander's error output as one line: "error: unknown option '--formt'"
 * and its "(Did you mean --format?)" line joined. Help text that commander
 * prints to stderr (no command given) stays as it is.
 */
function writeErr(s: string): void {
  if (!s.startsWith('error: ')) { process.stderr.write(s); return; }
  const text = s.replace(/^error: /, '').replace(/\n+$/, '').replace(/\n\(Did you mean/, ' (did you mean');
  process.stderr.write(`conntrail: ${oneLine(text)}\n`);
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('conntrail')
    .description('connection-tracking and flow logger for Linux firewalls, routers and NAT gateways')
    .version(version())
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ writeErr });
  for (const c of [eventsCommand(), dumpCommand(), runCommand(), checkConfigCommand(), whoCommand(), flowsCommand(), packetsCommand(), tcpstatesCommand(), aggregatesCommand()]) {
    c.exitOverride().configureOutput({ writeErr });
    program.addCommand(c);
  }
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; usage errors were already printed
      process.exit(e.exitCode === 0 ? 0 : 2);
    }
    const err = e as Error & { exitCode?: number };
    if (typeof err.exitCode === 'number') fail(err.message, err.exitCode);
    fail(err?.message ?? String(e), 1);
  }
}

// A bug still ends with one line; CONNTRAIL_DEBUG=1 shows where it happened.
const internal = (e: unknown) => {
  if (process.env.CONNTRAIL_DEBUG) { process.stderr.write(`conntrail: internal error: ${(e as Error)?.stack ?? e}\n`); process.exit(70); }
  fail(`internal error: ${(e as Error)?.message ?? e}`, 70);
};
process.on('uncaughtException', internal);
// (Node would print the rejection with its stack trace and exit 1)
process.on('unhandledRejection', internal);
await main(process.argv);
