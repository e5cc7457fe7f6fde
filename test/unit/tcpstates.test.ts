// The tcpstates records and lines: struct event decoding (the layout of
// bpf/tcpstates.bpf.c) and libbpf-tools' printf columns, narrow and wide.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeTcpstatesBatch, EVENT_SIZE } from '../../src/sources/tcpstates/decode.js';
import { formatTcpstates, spanMs, tcpstatesHeader } from '../../src/formats/tcpstates.js';
import { namesHolder, type TcpStateChange } from '../../src/records/tcpstate.js';
import { Handoff } from '../../src/sources/tcpstates/handoff.js';
import type { TcpstatesSourceConfig } from '../../src/sources/tcpstates/schema.js';

function event(o: { family: number; saddr: number[]; daddr: number[]; sport: number; dport: number; old: number; new: number; comm: string; delta?: bigint; ctx?: number }): Buffer {
  const b = Buffer.alloc(EVENT_SIZE);
  b.writeBigUInt64LE(5_000_000_000n, 0); // 5 s after boot
  b.writeBigUInt64LE(0xffff88835fd70940n, 8);
  b.writeBigUInt64LE(o.delta ?? 0n, 16);
  b.writeBigUInt64LE(4242n, 24);
  b.writeUInt32LE(4026531840, 32);
  b.writeUInt32LE(1234, 36);
  b.writeUInt32LE(1235, 40);
  b.writeUInt16LE(o.family, 44);
  b.writeUInt16LE(o.sport, 46);
  b.writeUInt16LE(o.dport, 48);
  b[50] = o.old;
  b[51] = o.new;
  b[52] = (o.delta === undefined ? 0 : 1) | (o.ctx ?? 0);
  Buffer.from(o.saddr).copy(b, 56);
  Buffer.from(o.daddr).copy(b, 72);
  b.write(o.comm, 88, 'latin1');
  return b;
}
const framed = (recs: Buffer[]) => Buffer.concat(recs.flatMap((r) => { const l = Buffer.alloc(4); l.writeUInt32LE(r.length); return [l, r, Buffer.alloc(((r.length + 7) & ~7) - r.length)]; }));

describe('tcpstates', () => {
  it('decodes the probe\'s records: times, addresses of both families, states, the span when known', () => {
    const v6 = [0xfd, 0x99, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const buf = framed([
      event({ family: 2, saddr: [10, 99, 1, 2], daddr: [10, 99, 2, 2], sport: 40000, dport: 8080, old: 2, new: 1, comm: 'curl', delta: 1_373_456n, ctx: 2 }),
      event({ family: 10, saddr: v6, daddr: [...Array(15).fill(0), 1], sport: 8080, dport: 0, old: 7, new: 10, comm: 'a-long-command1', ctx: 0 }),
      event({ family: 2, saddr: [10, 99, 1, 2], daddr: [10, 99, 2, 2], sport: 40000, dport: 8080, old: 1, new: 4, comm: 'curl', ctx: 4 }),
    ]);
    const got: TcpStateChange[] = [];
    const stats = { records: 0, malformed: 0 };
    decodeTcpstatesBatch(buf, buf.length, 1_700_000_000_000_000, stats, (r) => got.push(r));
    assert.equal(stats.records, 3);
    assert.deepEqual(got.map((r) => r.kthread), [true, false, false], 'flag 2: the current task was a kernel thread');
    assert.deepEqual(got.map((r) => r.kernelSocket), [false, false, true], 'flag 4: a kernel socket');
    assert.equal(got[0].time, 1_700_000_005_000_000);
    assert.equal(got[0].skaddr, 'ffff88835fd70940');
    assert.equal(got[0].saddr, '10.99.1.2');
    assert.equal(got[0].daddr, '10.99.2.2');
    assert.equal(got[0].deltaNs, 1_373_456);
    assert.equal(got[0].pid, 1234);
    assert.equal(got[0].netnsInode, 4026531840);
    assert.equal(got[0].cookie, 4242);
    assert.equal(got[1].saddr, 'fd99:1::2');
    assert.equal(got[1].daddr, '::1');
    assert.equal(got[1].deltaNs, undefined);
    assert.equal(got[1].comm, 'a-long-command1', 'all 15 chars the kernel keeps');
    // a record of another size is counted and skipped, the next still decodes
    const bad = framed([Buffer.alloc(40), event({ family: 2, saddr: [1, 2, 3, 4], daddr: [5, 6, 7, 8], sport: 1, dport: 2, old: 1, new: 4, comm: 'x' })]);
    decodeTcpstatesBatch(bad, bad.length, 0, stats, (r) => got.push(r));
    assert.equal(stats.malformed, 1);
    assert.equal(got[3].saddr, '1.2.3.4');
  });

  it('names the holder only from changes that only its system calls make, never from a kernel thread', () => {
    const ch = (oldState: number, newState: number, kthread = false, kernelSocket = false) => namesHolder({
      time: 0, skaddr: '0', cookie: 1, netnsInode: 1, netns: '', pid: 1, tid: 1, comm: 'x', family: 2, saddr: '', daddr: '', sport: 0, dport: 0,
      oldState, newState, deltaNs: undefined, kthread, kernelSocket,
    });
    // connect, listen; close or shutdown of an established or half-open socket, and of one the peer closed
    for (const [o, n] of [[7, 2], [7, 10], [1, 4], [3, 4], [8, 9], [10, 7]]) assert.equal(ch(o, n), true, `${o} -> ${n}`);
    assert.equal(ch(7, 2, true), false, 'a kernel thread\'s connect');
    assert.equal(ch(7, 2, false, true), false, 'a kernel socket\'s connect from a user task (mount.cifs)');
    // what softirq can do: SYN-ACK or ACK received, FIN received, RST, timers, TIME_WAIT
    for (const [o, n] of [[2, 1], [12, 3], [3, 1], [1, 8], [4, 5], [5, 6], [1, 7], [9, 7], [2, 7], [11, 6]]) assert.equal(ch(o, n), false, `${o} -> ${n}`);
  });

  it('a SIGHUP hand-over drops only what a replaced source\'s filter took up to its detach, and its tail', () => {
    const cfg = (o: Partial<TcpstatesSourceConfig>): TcpstatesSourceConfig => ({
      name: 'tcp', type: 'tcpstates', family: 'any', local_ports: [], remote_ports: [], ring_size: 4194304, batch_delay_ms: 1, store: true, ...o,
    });
    const h = new Handoff([
      { config: cfg({ family: 'ipv4' }), until: 1000, tail: new Set() },
      { config: cfg({ remote_ports: [443] }), until: 2000, tail: new Set(['7 1 4']) },
    ]);
    const ch = (time: number, o: Partial<TcpStateChange>): TcpStateChange => ({
      time, skaddr: '0', cookie: 1, netnsInode: 1, netns: '', pid: 1, tid: 1, comm: 'x', family: 2, saddr: '', daddr: '', sport: 40000, dport: 80,
      oldState: 2, newState: 1, deltaNs: undefined, kthread: false, kernelSocket: false, ...o,
    });
    assert.equal(h.drops(ch(500, { family: 10 })), false, 'IPv6: neither old source took it, the new one keeps it');
    assert.equal(h.drops(ch(900, {})), true, 'IPv4 before the first one\'s detach: it has it');
    assert.equal(h.drops(ch(1500, {})), false, 'after it, and the second does not take port 80');
    assert.equal(h.drops(ch(1800, { dport: 443 })), true, 'port 443 before the second one\'s detach');
    assert.equal(h.drops(ch(2100, { dport: 443, cookie: 7, oldState: 1, newState: 4 })), true, 'in its tail');
    assert.equal(h.drops(ch(2150, { dport: 443, cookie: 7, oldState: 1, newState: 4 })), false, 'once');
    assert.equal(h.over, false);
    assert.equal(h.drops(ch(2000 + 1_000_001, { dport: 443 })), false);
    assert.equal(h.over, true, 'a second on, the hand-over is over');
  });

  it('prints libbpf-tools\' columns, narrow (comm cut to 10) and wide (the IP version), and -T\'s time', () => {
    const r: TcpStateChange = {
      time: Date.UTC(2026, 11, 1, 14, 3, 9) * 1000, skaddr: 'ffff9fd7e8192000', cookie: 1, netnsInode: 1, netns: '', pid: 22384, tid: 22384,
      comm: 'curl-with-long-name', family: 2, saddr: '100.66.100.185', daddr: '52.33.159.26', sport: 63446, dport: 80, oldState: 2, newState: 1, deltaNs: 1_373_999, kthread: false, kernelSocket: false,
    };
    assert.equal(tcpstatesHeader(), 'SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS');
    assert.equal(formatTcpstates(r), 'ffff9fd7e8192000 22384   curl-with- 100.66.100.185  63446 52.33.159.26    80    SYN_SENT    -> ESTABLISHED 1.373');
    assert.equal(tcpstatesHeader({ wide: true }), 'SKADDR           PID     COMM             IP LADDR                      LPORT RADDR                      RPORT OLDSTATE    -> NEWSTATE    MS');
    assert.equal(formatTcpstates(r, { wide: true }), 'ffff9fd7e8192000 22384   curl-with-long-name 4  100.66.100.185             63446 52.33.159.26               80    SYN_SENT    -> ESTABLISHED 1.373');
    const d = new Date(r.time / 1000);
    const hms = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
    assert.equal(formatTcpstates(r, { time: true }).slice(0, 9), `${hms} `);
    assert.equal(tcpstatesHeader({ time: true }).slice(0, 9), 'TIME(s)  ');
    assert.equal(spanMs(undefined), '0.000');
    assert.equal(spanMs(999), '0.000', 'the µs are whole, as the tool keeps them');
    assert.equal(spanMs(376_008_500), '376.008');
  });
});
