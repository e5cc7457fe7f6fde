// `conntrail check-config FILE`: the validation of `run`, alone.
import { Command } from 'commander';
import { describePlan, loadConfig } from '../config/load.js';
import { DEFAULT_CONFIG } from './run.js';

export function checkConfigCommand(): Command {
  return new Command('check-config')
    .description('validate a configuration file and exit (0: valid)')
    .argument('[file]', 'the file', DEFAULT_CONFIG)
    .action((file: string) => {
      const plan = loadConfig(file);
      const d = describePlan(plan);
      process.stdout.write(`${file}: valid (${d.kind}; ${d.counts})\n`);
    });
}
