import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderConfigDocs } from '../../src/config/docs.js';
import { CONFIG_SCHEMA, SINK_SCHEMA, SOURCE_SCHEMA } from '../../src/config/schema.js';
import { lineOf } from '../../src/config/load.js';

describe('configuration docs', () => {
  it('docs/config.md is generated from the schema (run: npm run docs)', () => {
    assert.equal(readFileSync(join(process.cwd(), 'docs', 'config.md'), 'utf8'), renderConfigDocs());
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
