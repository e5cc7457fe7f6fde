// The socket filter must keep exactly what the user-space matcher keeps.
// Checked here with a BPF interpreter over captured kernel messages; the
// end-to-end tests check the same against the kernel itself.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { runBpf } from '../../src/netlink/bpf.js';
import { compileMatcher } from '../../src/pipeline/filter.js';
import { buildConntrackBpf, buildFilter, CONNTRACK_EVENT_NAMES, conntrackParams, emptyFilter, type FlowFilter } from '../../src/sources/conntrack/filter.js';
import { emptyEvent } from '../../src/records/event.js';
import { parseCidr } from '../../src/util/ip.js';
import { decodeBatch, newDecodeStats } from '../../src/sources/conntrack/decode.js';
import { readFixture, FIXTURE_DIR } from '../helpers/fixtures.js';
import { join } from 'node:path';
import type { FlowEvent } from '../../src/records/event.js';

const MSGS = ['ipv4-masq-acct-ts', 'ipv6-masq-acct-ts', 'snat-dnat', 'sctp-gre-zone-mark-labels', 'ipv4-no-acct-no-ts']
  .flatMap((n) => readFixture(join(FIXTURE_DIR, `${n}.bin`)).map((m) => m.bytes));

function decodeOne(b: Buffer): FlowEvent {
  let ev: FlowEvent | undefined;
  decodeBatch(b, b.length, newDecodeStats(), (e) => { ev = e; });
  return ev!;
}

const cidrs = ['10.99.1.2', '10.99.1.0/24', '10.99.2.2/32', '10.0.0.0/8', '10.99.2.0/23', '192.0.2.0/24',
  'fd99:1::2', 'fd99::/16', 'fd99:2::/64', '::/0', '0.0.0.0/0', '10.99.1.1'];
const arbCidrs = fc.subarray(cidrs, { maxLength: 3 }).map((l) => l.map(parseCidr));
const arbFilter: fc.Arbitrary<FlowFilter> = fc.record({
  family: fc.constantFrom(undefined, 2, 10),
  protos: fc.subarray([1, 6, 17, 47, 58, 132], { maxLength: 3 }),
  notProtos: fc.subarray([1, 6, 17, 58], { maxLength: 2 }),
  src: arbCidrs, dst: arbCidrs, notSrc: arbCidrs, notDst: arbCidrs,
  marks: fc.subarray([{ value: 16, mask: 0xffffffff }, { value: 0, mask: 0xffffffff }, { value: 0, mask: 0xf }, { value: 16, mask: 0xf0 }], { maxLength: 2 }),
  zones: fc.subarray([0, 5, 7], { maxLength: 2 }),
}).map((r) => ({ ...emptyFilter(), ...r, family: r.family as FlowFilter['family'] }));

describe('conntrack socket filter', () => {
  it('keeps exactly what the user-space matcher keeps (random filters x captured messages)', () => {
    fc.assert(fc.property(arbFilter, (f) => {
      const prog = buildConntrackBpf(f);
      const match = compileMatcher(f, false);
      for (const m of MSGS) {
        const kernel = runBpf(prog, m) !== 0;
        assert.equal(kernel, match(decodeOne(m)), `filter ${JSON.stringify(f)}`);
      }
    }), { numRuns: 400 });
  });
  it('passes control messages (NLMSG_DONE / ERROR) untouched', () => {
    const f = { ...emptyFilter(), protos: [6] };
    const done = Buffer.alloc(20);
    done.writeUInt32LE(20, 0);
    done.writeUInt16LE(3, 4);
    assert.notEqual(runBpf(buildConntrackBpf(f), done), 0);
  });
  it('stays within conditional-jump reach for long CIDR lists', () => {
    const many = Array.from({ length: 60 }, (_, i) => parseCidr(`10.${i}.0.0/16`));
    const prog = buildConntrackBpf({ ...emptyFilter(), src: many, notDst: many.slice(0, 30) });
    assert.ok(prog.length / 8 < 4096);
  });
});

describe('conntrack\'s spellings of the filter options', () => {
  it('-e and -o as conntrack reads them: any case, a prefix takes the first name that fits, SRC_NAT and DST_NAT said and ignored', () => {
    const said: string[] = [];
    const p = (t: string, names: readonly string[]) => conntrackParams(t, names, '-x', (m) => said.push(m));
    assert.deepEqual(p('upd,N,destroy', CONNTRACK_EVENT_NAMES), ['UPDATES', 'NEW', 'DESTROY']);
    assert.deepEqual(p('a', CONNTRACK_EVENT_NAMES), ['ALL']);
    assert.deepEqual(p('s,d,de', CONNTRACK_EVENT_NAMES), ['DESTROY'], '"d" is a prefix of DST_NAT before DESTROY');
    assert.deepEqual(said, ['WARNING: ignoring SRC_NAT, use --src-nat instead', 'WARNING: ignoring DST_NAT, use --dst-nat instead']);
    assert.throws(() => p('NEW,', CONNTRACK_EVENT_NAMES), /empty item/);
    assert.throws(() => p('NEWS', CONNTRACK_EVENT_NAMES), /"NEWS" is not one of ALL, NEW, UPDATES, DESTROY/);
    assert.deepEqual(buildFilter({ event: 'upd' }).events, new Set(['UPDATE']));
    assert.equal(buildFilter({ eventMask: 'ALL' }).events, undefined);
    assert.throws(() => buildFilter({ event: 's' }), /names no event type/);
  });

  it('tuple options: -r, -q (no CIDR), ports with a protocol that has them, states by name, ICMP; mismatched families refused', () => {
    const f = buildFilter({ proto: ['tcp'], replySrc: ['10.0.0.2'], sport: ['80'], origPortDst: ['0x1f90'], state: ['TIME_WAIT', 'LISTEN'] });
    assert.deepEqual([f.origSport, f.origDport, f.states, f.replySrc?.map((c) => c.text)], [[80], [8080], [7, 9], ['10.0.0.2']]);
    assert.deepEqual(buildFilter({ protonum: ['esp'] }).protos, [50], '/etc/protocols names');
    assert.throws(() => buildFilter({ replyDst: ['10.0.0.0/8'] }), /CIDR notation unavailable/);
    assert.throws(() => buildFilter({ sport: ['80'] }), /--sport: needs -p tcp/);
    assert.throws(() => buildFilter({ proto: ['udp'], state: ['ESTABLISHED'] }), /--state: needs -p tcp, sctp or dccp/);
    assert.throws(() => buildFilter({ proto: ['sctp'], state: ['TIME_WAIT'] }), /"TIME_WAIT" is not a SCTP state/);
    assert.throws(() => buildFilter({ proto: ['tcp'], sport: ['65536'] }), /"65536" is not a port/);
    assert.throws(() => buildFilter({ src: ['10.0.0.1'], replyDst: ['::1'] }), /^UsageError: mismatched address family|mismatched address family: --src 10\.0\.0\.1, --reply-dst ::1/);
    assert.doesNotThrow(() => buildFilter({ src: ['10.0.0.1', '::2'], dst: ['::1'] }), 'a family in common');
    // matched as conntrack compares what was given: an event without it does not match
    const m = compileMatcher(buildFilter({ proto: ['tcp'], state: ['ESTABLISHED'] }), true);
    const ev = (tcpState: number | undefined) => ({ ...emptyEvent(), proto: 6, tcpState });
    assert.deepEqual([m(ev(3)), m(ev(7)), m(ev(undefined))], [true, false, false]);
    const icmp = compileMatcher(buildFilter({ proto: ['icmp'], icmpType: ['8'] }), true);
    assert.deepEqual([icmp({ ...emptyEvent(), orig: { ...emptyEvent().orig, icmpType: 8 } }), icmp(emptyEvent())], [true, false]);
  });
});
