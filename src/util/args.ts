// Option and configuration values given as lists.
import { UsageError } from './errors.js';

/** commander: a repeatable option's values */
export const collect = (v: string, prev: string[] = []) => [...prev, v];
/**
 * Repeated and comma-separated values, trimmed. With `opt`, a value that is
 * empty as a whole is bad input: `--src "$ADDR"` with ADDR unset must not
 * quietly mean every address (an empty item between commas is dropped).
 */
export const list = (vals: string[] | undefined, opt?: string) => (vals ?? []).flatMap((v) => {
  if (opt !== undefined && v.trim() === '') throw new UsageError(`${opt}: an empty value`);
  return v.split(',');
}).map((s) => s.trim()).filter(Boolean);
