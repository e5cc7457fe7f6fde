// The decoder never throws and never loops on hostile input: random bytes,
// and real messages with bytes flipped, truncated or lengths corrupted.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { join } from 'node:path';
import { decodeBatch, decodeExpectBatch, newDecodeStats } from '../../src/sources/conntrack/decode.js';
import { formatExpect, formatExpectXml } from '../../src/formats/conntrack-expect.js';
import { formatConntrack } from '../../src/formats/conntrack.js';
import { formatJson } from '../../src/formats/json.js';
import { formatVyos } from '../../src/formats/vyos.js';
import { readFixture, FIXTURE_DIR } from '../helpers/fixtures.js';

const REAL = ['ipv4-masq-acct-ts', 'ipv6-masq-acct-ts', 'sctp-gre-zone-mark-labels']
  .flatMap((n) => readFixture(join(FIXTURE_DIR, `${n}.bin`)).map((m) => m.bytes));

function run(buf: Uint8Array): void {
  const stats = newDecodeStats();
  decodeBatch(buf, buf.length, stats, (ev) => {
    // whatever decodes must also format
    formatConntrack(ev, { extended: true, id: true, ktimestamp: true });
    JSON.parse(formatJson(ev));
    formatVyos(ev);
  });
  assert.ok(stats.events + stats.malformed + stats.unknown + stats.errors + stats.done >= 0);
}

describe('decoder fuzzing', () => {
  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => run(b)), { numRuns: 5000 });
  });
  it('real messages with mutations', () => {
    fc.assert(fc.property(
      fc.constantFrom(...REAL),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      fc.nat(),
      (msg, flips, cut) => {
        const b = Buffer.from(msg);
        for (const [pos, v] of flips) b[pos % b.length] = v;
        const len = cut % (b.length + 1);
        // keep nlmsg_len consistent with the cut half of the time, to reach the attribute parser
        if (len >= 16 && cut % 2 === 0) b.writeUInt32LE(len, 0);
        run(b.subarray(0, len));
      },
    ), { numRuns: 20000 });
  });
  it('expectations: random bytes, and real messages read as expectations (every attribute where another kind is expected), mutated', () => {
    const runExp = (b: Uint8Array) => {
      const stats = newDecodeStats();
      decodeExpectBatch(b, b.length, stats, (ex) => { formatExpect(ex, { timestamp: true }); formatExpectXml(ex, { timestamp: true }); });
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => runExp(b)), { numRuns: 3000 });
    fc.assert(fc.property(
      fc.constantFrom(...REAL), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(), fc.boolean(),
      (msg, flips, cut, del) => {
        const b = Buffer.from(msg);
        b.writeUInt16LE(del ? 0x202 : 0x200, 4);
        for (const [pos, v] of flips) b[16 + (pos % Math.max(1, b.length - 16))] = v;
        const len = cut % (b.length + 1);
        if (len >= 16 && cut % 2 === 0) b.writeUInt32LE(len, 0);
        runExp(b.subarray(0, len));
      },
    ), { numRuns: 10000 });
  });
  it('counts a truncated message as malformed and keeps going', () => {
    const good = REAL[0];
    const bad = Buffer.from(good);
    bad.writeUInt16LE(0xfff0, 20); // first attribute claims to be huge
    const stats = newDecodeStats();
    let n = 0;
    const both = Buffer.concat([bad, good]);
    decodeBatch(both, both.length, stats, () => { n++; });
    assert.equal(stats.malformed, 1);
    assert.equal(n, 1);
  });
});
