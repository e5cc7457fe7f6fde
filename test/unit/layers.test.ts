// The layers of src/ in the order data flows (design.md): a module imports
// only from its own layer or from those before it. A violation names the
// file, the import and both layers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ORDER = ['util', 'records', 'netlink', 'sources', 'pipeline', 'formats', 'sinks', 'store', 'config', 'daemon', 'cli'];
// dist/test/unit -> the source tree
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const layerOf = (file: string): string => relative(SRC, file).split(sep)[0];

describe('layers', () => {
  it('every directory of src/ is a known layer', () => {
    for (const f of files(SRC)) assert.ok(ORDER.includes(layerOf(f)), `${relative(SRC, f)}: ${layerOf(f)} is not one of ${ORDER.join(', ')}`);
  });

  it('no module imports from a later layer', () => {
    const bad: string[] = [];
    for (const f of files(SRC)) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2];
        const target = resolve(dirname(f), spec);
        const from = layerOf(f);
        const to = layerOf(target);
        if (ORDER.indexOf(to) > ORDER.indexOf(from)) bad.push(`${relative(SRC, f)} imports ${spec} (${from} -> ${to})`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('the check sees an import that runs back up', () => {
    // the pattern above on a line it must catch, so the test cannot pass by matching nothing
    const line = "import { x } from '../cli/options.js';";
    assert.match(line, /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]/);
  });
});
