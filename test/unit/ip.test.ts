import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cidrContains, ipv6ToString, parseCidr, parseIp } from '../../src/util/ip.js';

describe('IPv6 text', () => {
  it('matches the RFC 5952 form (WHATWG URL serializer) for addresses without embedded IPv4', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 8 }), (b, zstart, zlen) => {
      // make zero runs likely
      for (let i = zstart; i < Math.min(8, zstart + zlen); i++) { b[2 * i] = 0; b[2 * i + 1] = 0; }
      const words = Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]);
      const v4ish = words.slice(0, 5).every((w) => w === 0) && (words[5] === 0 || words[5] === 0xffff) && (words[6] !== 0 || words[5] === 0xffff);
      fc.pre(!v4ish);
      const ours = ipv6ToString(b, 0);
      const whatwg = new URL(`http://[${ours}]/`).hostname.slice(1, -1);
      assert.equal(ours, whatwg);
      assert.deepEqual(parseIp(ours), b);
    }), { numRuns: 3000 });
  });
  it('glibc forms for embedded IPv4 and edge cases', () => {
    const t = (s: string) => ipv6ToString(parseIp(s)!, 0);
    assert.equal(t('::ffff:192.0.2.1'), '::ffff:192.0.2.1');
    assert.equal(t('::192.0.2.1'), '::192.0.2.1');
    assert.equal(t('::'), '::');
    assert.equal(t('::1'), '::1');
    assert.equal(t('1::'), '1::');
    assert.equal(t('1:0:1:0:1:0:1:0'), '1:0:1:0:1:0:1:0');
    assert.equal(t('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  });
});

describe('CIDR', () => {
  it('parses and masks', () => {
    const c = parseCidr('10.1.2.3/16');
    assert.deepEqual([...c.bytes], [10, 1, 0, 0]);
    assert.ok(cidrContains(c, parseIp('10.1.255.1')!));
    assert.ok(!cidrContains(c, parseIp('10.2.0.1')!));
    assert.ok(cidrContains(parseCidr('fd00::/8'), parseIp('fd99:1::2')!));
    assert.ok(!cidrContains(parseCidr('fd00::/8'), parseIp('10.0.0.1')!));
    assert.ok(cidrContains(parseCidr('0.0.0.0/0'), parseIp('1.2.3.4')!));
  });
  it('rejects bad input with a message naming it', () => {
    assert.throws(() => parseCidr('10.0.0.300'), /"10\.0\.0\.300" is not an IPv4 or IPv6/);
    assert.throws(() => parseCidr('10.0.0.0/33'), /prefix length must be 0\.\.32/);
    assert.throws(() => parseCidr('fd00::/129'), /0\.\.128/);
  });
});
