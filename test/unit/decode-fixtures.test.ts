// Replays ctnetlink messages captured from the real kernel and checks that
// the decoder + conntrack formatter print exactly what the real
// `conntrack -E` / `conntrack -L` printed for them at capture time.
process.env.TZ = 'UTC';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { formatConntrack } from '../../src/formats/conntrack.js';
import { decodeFixture, FIXTURE_DIR as DIR } from '../helpers/fixtures.js';


function labelMap(name: string): Map<number, string> | undefined {
  const p = join(DIR, `${name}.labels`);
  if (!existsSync(p)) return undefined;
  return new Map(readFileSync(p, 'utf8').split('\n').filter((l) => /^\d/.test(l)).map((l) => {
    const [n, v] = l.split(/\s+/);
    return [Number(n), v] as [number, string];
  }));
}

describe('decoder + conntrack format vs the real conntrack on captured messages', () => {
  const names = readdirSync(DIR).filter((f) => f.endsWith('.bin')).map((f) => f.slice(0, -4));
  it('has the fixtures', () => assert.ok(names.length >= 6, names.join(',')));
  for (const name of names.filter((n) => n !== 'dump')) {
    it(name, () => {
      const expected = readFileSync(join(DIR, `${name}.txt`), 'utf8').split('\n').filter(Boolean);
      const got = decodeFixture(name).map((ev) => formatConntrack(ev, {
        extended: true, id: true, ktimestamp: true, labelMap: labelMap(name),
      }));
      assert.ok(expected.length > 0);
      assert.deepEqual(got, expected);
    });
  }
  it('dump (conntrack -L -o extended,id), both families', () => {
    const expected = readFileSync(join(DIR, 'dump.txt'), 'utf8').split('\n').filter(Boolean);
    const events = decodeFixture('dump', true);
    assert.ok(events.some((e) => e.family === 10), 'the dump has IPv6 entries too');
    const got = events.map((ev) => formatConntrack(ev, { extended: true, id: true }));
    assert.deepEqual(got.sort(), expected.sort());
  });
});

describe('decoded fields', () => {
  it('NAT: SNAT to a port range and DNAT port forward are in the reply tuple', () => {
    const evs = decodeFixture('snat-dnat');
    const dnat = evs.find((e) => e.proto === 6 && e.type === 'NEW')!;
    assert.equal(dnat.orig.dst, '10.99.1.1');
    assert.equal(dnat.orig.dport, 80);
    assert.equal(dnat.reply.src, '10.99.2.2');
    assert.equal(dnat.reply.sport, 8080);
    const snat = evs.find((e) => e.proto === 17 && e.type === 'NEW')!;
    assert.equal(snat.reply.dst, '10.99.2.1');
    assert.ok(snat.reply.dport! >= 40000 && snat.reply.dport! <= 40009);
  });
  it('counters and timestamps on DESTROY; zone, mark and labels', () => {
    const evs = decodeFixture('sctp-gre-zone-mark-labels');
    const d = evs.find((e) => e.type === 'DESTROY' && e.proto === 17)!;
    assert.equal(d.origPackets, 1);
    assert.equal(d.replyPackets, 0);
    assert.ok(d.start! > 0n && d.stop! >= d.start!);
    assert.equal(d.zone, 5);
    assert.equal(d.mark, 16);
    const n = evs.find((e) => e.type === 'NEW' && e.proto === 17)!;
    assert.ok(n.labels && (n.labels[0] & (1 << 3)));
    assert.ok(evs.some((e) => e.proto === 132 && e.sctpState === 1));
    assert.ok(evs.some((e) => e.proto === 47));
  });
  it('no counters or timestamps when nf_conntrack_acct/timestamp are off', () => {
    for (const e of decodeFixture('ipv4-no-acct-no-ts')) {
      assert.equal(e.origPackets, undefined);
      assert.equal(e.start, undefined);
    }
  });
});
