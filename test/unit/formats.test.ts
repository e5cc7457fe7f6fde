process.env.TZ = 'UTC';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatVyos, vyosDelta } from '../../src/formats/vyos.js';
import { formatJson } from '../../src/formats/json.js';
import { formatConntrack } from '../../src/formats/conntrack.js';
import { ctime, pyFloatRepr } from '../../src/util/time.js';
import { emptyEvent, type FlowEvent } from '../../src/records/event.js';
import { decodeFixture } from '../helpers/fixtures.js';

function tcpEvent(): FlowEvent {
  const ev = emptyEvent();
  Object.assign(ev, { type: 'NEW', family: 2, proto: 6, id: 1234, timeout: 120, tcpState: 1, status: 8 });
  Object.assign(ev.orig, { src: '10.0.0.2', dst: '192.0.2.1', sport: 40000, dport: 443 });
  Object.assign(ev.reply, { src: '192.0.2.1', dst: '198.51.100.7', sport: 443, dport: 40000 });
  return ev;
}

describe('vyos format (format_event_message of vyos-conntrack-logger)', () => {
  it('NEW tcp, unreplied', () => {
    assert.equal(formatVyos(tcpEvent()),
      '[NEW]     1234 tcp      6 120 SYN_SENT src=10.0.0.2 dst=192.0.2.1 sport=40000 dport=443 [UNREPLIED] ' +
      'src=192.0.2.1 dst=198.51.100.7 sport=443 dport=40000 ');
  });
  it('DESTROY with counters, mark, assured (double space), portid and delta', () => {
    const ev = tcpEvent();
    Object.assign(ev, {
      type: 'DESTROY', timeout: undefined, tcpState: 7, status: 2 | 4 | 8, mark: 5, portid: 77,
      origPackets: 3, origBytes: 180, replyPackets: 2, replyBytes: 120,
      start: 1795462776000000000n, stop: 1795462777123456789n,
    });
    assert.equal(formatVyos(ev),
      '[DESTROY] 1234 tcp      6 TIME_WAIT src=10.0.0.2 dst=192.0.2.1 sport=40000 dport=443 packets=3 bytes=180 ' +
      'src=192.0.2.1 dst=198.51.100.7 sport=443 dport=40000 packets=2 bytes=120 mark=5  [ASSURED] portid=77 ' +
      'start=1795462776000000000 stop=1795462777123456789 delta=1.123457 ');
  });
  it('icmp keys, unknown protocol name, UPDATE padding', () => {
    const [n] = decodeFixture('ipv4-masq-acct-ts').filter((e) => e.proto === 1);
    assert.match(formatVyos(n), /^\[NEW\]     \d+ icmp     1 \d+ src=10\.99\.1\.2 dst=10\.99\.2\.2 type=8 code=0 id=\d+ \[UNREPLIED\] src=10\.99\.2\.2 dst=10\.99\.2\.1 type=0 code=0 id=\d+ $/);
    const ev = tcpEvent();
    Object.assign(ev, { type: 'UPDATE', proto: 136, tcpState: undefined, status: 2 });
    assert.match(formatVyos(ev), /^\[UPDATE\]  1234 unknown  136 120 src=/);
  });
  it('delta as Python prints timedelta.total_seconds()', () => {
    assert.equal(vyosDelta(1000000000n), '1.0');
    assert.equal(vyosDelta(5000n), '5e-06');
    assert.equal(vyosDelta(2500n), '2e-06'); // half to even
    assert.equal(vyosDelta(3500n), '4e-06');
    assert.equal(vyosDelta(123456789n), '0.123457');
    assert.equal(vyosDelta(0n), '0.0');
    assert.equal(vyosDelta(86400n * 1000000000n * 400n), '34560000.0');
  });
  it('python float repr', () => {
    const cases: Array<[number, string]> = [[0.0001, '0.0001'], [0.00001, '1e-05'], [1e16, '1e+16'], [123.5, '123.5'],
      [1234567890123456, '1234567890123456.0'], [0.1, '0.1'], [-2.5, '-2.5'], [1.5e-7, '1.5e-07']];
    for (const [x, s] of cases) assert.equal(pyFloatRepr(x), s, String(x));
  });
});

describe('json format', () => {
  it('every event of every fixture is one valid JSON object with the decoded fields', () => {
    for (const name of ['ipv4-masq-acct-ts', 'ipv6-masq-acct-ts', 'snat-dnat', 'sctp-gre-zone-mark-labels']) {
      for (const ev of decodeFixture(name)) {
        const line = formatJson(ev);
        assert.ok(!line.includes('\n'));
        const o = JSON.parse(line);
        assert.equal(o.event, ev.type.toLowerCase());
        assert.equal(o.orig.src, ev.orig.src);
        assert.equal(o.reply.dst, ev.reply.dst);
        assert.equal(o.proto_num, ev.proto);
        assert.equal(o.time_us, ev.recvTime);
        assert.equal(new Date(o.time).getTime(), Math.floor(ev.recvTime / 1000));
        if (ev.id !== undefined) assert.equal(o.id, ev.id);
        if (ev.origBytes !== undefined) assert.equal(o.orig.bytes, ev.origBytes);
        if (ev.start !== undefined) {
          assert.equal(BigInt(o.start_ns), ev.start);
          assert.equal(new Date(o.start).getTime(), Number(ev.start / 1000000n));
        }
        if (ev.start !== undefined && ev.stop !== undefined) assert.equal(o.duration_s, Number(ev.stop - ev.start) / 1e9);
      }
    }
  });
  it('status names and labels', () => {
    const ev = decodeFixture('sctp-gre-zone-mark-labels').find((e) => e.labels)!;
    const o = JSON.parse(formatJson(ev));
    assert.ok(o.status.includes('CONFIRMED'));
    assert.equal(o.labels.slice(0, 2), '08');
    assert.equal(o.zone, 5);
    assert.equal(o.mark, 16);
  });
});

describe('conntrack format details', () => {
  it('ctime like glibc', () => {
    assert.equal(ctime(0), 'Thu Jan  1 00:00:00 1970');
    assert.equal(ctime(1795462776), 'Mon Nov 23 19:39:36 2026');
  });
  it('timestamp prefix and USERSPACE suffix', () => {
    const ev = tcpEvent();
    ev.recvTime = 1795462776000042;
    ev.portid = 99;
    assert.equal(formatConntrack(ev, { timestamp: true, progname: () => 'conntrack' }),
      '[1795462776.000042]\t    [NEW] tcp      6 120 SYN_SENT src=10.0.0.2 dst=192.0.2.1 sport=40000 dport=443 [UNREPLIED] ' +
      'src=192.0.2.1 dst=198.51.100.7 sport=443 dport=40000 [USERSPACE] portid=99 progname=conntrack');
  });
  it('states past the tables print as libnetfilter_conntrack does', () => {
    const ev = tcpEvent();
    ev.tcpState = 12;
    assert.match(formatConntrack(ev), / 120 NONE src=/);
    Object.assign(ev, { tcpState: undefined, proto: 132, sctpState: 8 });
    assert.match(formatConntrack(ev), / 120 \(null\) src=/);
  });
});
