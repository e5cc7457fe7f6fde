// Namespace patterns (shell-style, on whole `ip netns` names).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isNetnsPattern, netnsPattern } from '../../src/sources/netns/watch.js';

describe('netns patterns', () => {
  it('match whole names as the shell does', () => {
    const m = (p: string, n: string) => netnsPattern(p)(n);
    assert.ok(m('qrouter-*', 'qrouter-6f1e-22'));
    assert.ok(!m('qrouter-*', 'xqrouter-1'));
    assert.ok(m('*', 'anything at all'));
    assert.ok(m('r?', 'r1') && !m('r?', 'r12'));
    assert.ok(m('snat-[0-9]*', 'snat-7abc') && !m('snat-[0-9]*', 'snat-x'));
    assert.ok(m('ns[!a]', 'nsb') && !m('ns[!a]', 'nsa'));
    assert.ok(m('a.b+c', 'a.b+c') && !m('a.b+c', 'aXb+c'), 'regex characters are literal');
    assert.ok(m('x[', 'x['), 'an unclosed [ is literal');
  });
  it('a pattern or a list follows; one plain name or a path does not', () => {
    assert.ok(isNetnsPattern('qr-*') && isNetnsPattern(['a']) && isNetnsPattern('r?'));
    assert.ok(!isNetnsPattern('rtr') && !isNetnsPattern('/proc/1/ns/net') && !isNetnsPattern(undefined));
  });
});
