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

function version(): string {
  try {
    return JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;
  } catch {
    return '0.0.0';
  }
}

function fail(message: string, code: number): never {
  process.stderr.write(`conntrail: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('conntrail')
    .description('connection-tracking and flow logger for Linux firewalls, routers and NAT gateways')
    .version(version())
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.replace(/^error: /, 'conntrail: ')) });
  for (const c of [eventsCommand(), dumpCommand(), runCommand(), checkConfigCommand(), whoCommand(), flowsCommand()]) {
    c.exitOverride().configureOutput({ writeErr: (s) => process.stderr.write(s.replace(/^error: /, 'conntrail: ')) });
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
process.on('uncaughtException', (e) => fail(`internal error: ${process.env.CONNTRAIL_DEBUG ? e?.stack : e?.message ?? e}`, 70));
await main(process.argv);
