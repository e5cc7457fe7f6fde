import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderConfigDocs, renderPages, SINK_COMMON_KEYS, SINK_TYPE_KEYS } from '../../src/config/docs.js';
import { CONFIG_SCHEMA, SINK_SCHEMA, SOURCE_SCHEMA } from '../../src/config/schema.js';
import { lineOf } from '../../src/config/load.js';

describe('configuration docs', () => {
  it('every page under docs/ is generated from the schema (run: npm run docs)', () => {
    for (const [p, text] of Object.entries(renderPages())) {
      assert.equal(readFileSync(join(process.cwd(), 'docs', p), 'utf8'), text, p);
    }
  });
  it('every sink key is documented for some sink type', () => {
    const covered = new Set([...SINK_COMMON_KEYS, ...Object.values(SINK_TYPE_KEYS).flat()]);
    for (const k of Object.keys(SINK_SCHEMA.properties)) assert.ok(covered.has(k), k);
  });
  it('documents every key', () => {
    const page = renderConfigDocs();
    for (const k of [...Object.keys(CONFIG_SCHEMA.properties), ...Object.keys(SOURCE_SCHEMA.properties), ...Object.keys(SINK_SCHEMA.properties)]) {
      assert.ok(page.includes(`| \`${k}\` |`), k);
    }
  });
});

describe('configuration error lines', () => {
  const text = 'log_level = "info"\n\n[[source]]\nname = "a"\n\n[[sink]]\ntype = "stdout"\n[[sink]]\n  type = "file"\n  path = "/x"\n';
  it('finds keys of the N-th table and top-level keys', () => {
    assert.equal(lineOf(text, 'log_level'), 1);
    assert.equal(lineOf(text, 'source[0].name'), 4);
    assert.equal(lineOf(text, 'sink[1].path'), 10);
    assert.equal(lineOf(text, 'sink[1]'), 8);
    assert.equal(lineOf(text, 'sink[1].missing'), 8);
    assert.equal(lineOf(text, 'sink'), 6);
  });
});
