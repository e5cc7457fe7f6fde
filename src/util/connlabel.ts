// connlabel.conf: the names of conntrack's connection labels (bit numbers),
// shared by the conntrack format (-o labels) and the filter (-l).
import { readFileSync } from 'node:fs';

/**
 * Reads a connlabel.conf ("BIT NAME" per line, # comments), as
 * libnetfilter_conntrack's labelmap does. Undefined if the file is absent.
 */
export function loadLabelMap(path = '/etc/xtables/connlabel.conf'): Map<number, string> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const map = new Map<number, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^(\d+)\s+(\S+)/.exec(line);
    if (m && Number(m[1]) < 128 && !map.has(Number(m[1]))) map.set(Number(m[1]), m[2]);
  }
  return map;
}
