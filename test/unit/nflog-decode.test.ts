// The NFLOG decoder: every nfnetlink_log attribute, the packet's headers
// (IPv4 options and fragments, IPv6 extension headers and fragments, TCP,
// UDP, UDP-Lite, SCTP, ICMP, ICMPv6, others by number), truncation, and
// hostile input (never a throw, never a loop).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeNflogBatch, newNflogStats, SeqTracker } from '../../src/sources/nflog/decode.js';
import type { PacketLog } from '../../src/records/packet.js';
import { formatPacketJson } from '../../src/formats/packet/json.js';
import { formatPacketUlogdJson, printpkt } from '../../src/formats/packet/ulogd.js';
import { formatPacketKernel } from '../../src/formats/packet/kernel.js';
import { makePacketFormatter, PACKET_FORMATS } from '../../src/formats/packet/index.js';
import { attr, be16, be32, icmp, ipv4, ipv6, nest, nflogMessage, tcp, udp, type MsgOpts } from '../helpers/nflogmsg.js';
import { NFULA_CT, NFULA_CT_INFO } from '../../src/sources/nflog/constants.js';

function decode(buf: Buffer): { pkts: PacketLog[]; stats: ReturnType<typeof newNflogStats> } {
  const stats = newNflogStats();
  const pkts: PacketLog[] = [];
  decodeNflogBatch(buf, buf.length, stats, 42, (p) => pkts.push(p));
  return { pkts, stats };
}
const one = (payload: Buffer | undefined, o?: MsgOpts): PacketLog => {
  const { pkts, stats } = decode(nflogMessage(payload, o));
  assert.equal(pkts.length, 1, JSON.stringify(stats));
  return pkts[0];
};

describe('NFLOG decoding: the attributes', () => {
  it('decodes every metadata attribute', () => {
    const p = one(ipv4({ proto: 17 }, udp(1, 2)), {
      family: 2, group: 32, hwProtocol: 0x0800, hook: 1, prefix: 'sg-drop: ', mark: 0xdeadbeef, time: [1764572766, 250123],
      indev: 3, outdev: 4, uid: 1000, gid: 100, seq: 7, seqGlobal: 99, hwaddr: [0x02, 0, 0, 0, 0, 0x01], hwtype: 1,
      hwheader: Buffer.from('ffffffffffff020000000001' + '0800', 'hex'), vlan: [0x8100, (5 << 13) | 42],
    });
    assert.equal(p.group, 32);
    assert.equal(p.family, 2);
    assert.equal(p.hook, 1);
    assert.equal(p.hwProtocol, 0x0800);
    assert.equal(p.prefix, 'sg-drop: ');
    assert.equal(p.mark, 0xdeadbeef);
    assert.equal(p.time, 1764572766 * 1e6 + 250123);
    assert.equal(p.kernelTime, true);
    assert.equal(p.indev, 3);
    assert.equal(p.outdev, 4);
    assert.equal(p.uid, 1000);
    assert.equal(p.gid, 100);
    assert.equal(p.seq, 7);
    assert.equal(p.seqGlobal, 99);
    assert.deepEqual([...p.hwAddr!], [2, 0, 0, 0, 0, 1]);
    assert.equal(p.hwType, 1);
    assert.equal(p.hwLen, 14);
    assert.equal(Buffer.from(p.hwHeader!).toString('hex'), 'ffffffffffff0200000000010800');
    assert.equal(p.vlanProto, 0x8100);
    assert.equal(p.vlanTci, (5 << 13) | 42);
  });

  it('without a kernel timestamp the packet has the time it was read', () => {
    const p = one(ipv4({ proto: 17 }, udp(1, 2)));
    assert.equal(p.time, 42);
    assert.equal(p.kernelTime, false);
    assert.equal(p.prefix, '');
  });

  it('a record keeps its own bytes when the receive buffer is reused for the next batch (prefix, headers, payload, raw)', () => {
    // one buffer, as the native socket reuses it: two batches at the same
    // offset, with prefixes and headers of the same length that differ
    const hw = (last: number) => Buffer.from(`ffffffffffff0200000000${last.toString(16).padStart(2, '0')}0800`, 'hex');
    const m1 = nflogMessage(ipv4({ src: '10.0.0.1', proto: 17 }, udp(1, 2)), { prefix: 'dccp: ', hwtype: 1, hwheader: hw(1), hwaddr: [2, 0, 0, 0, 0, 1] });
    const m2 = nflogMessage(ipv4({ src: '10.0.0.2', proto: 17 }, udp(3, 4)), { prefix: 'p253: ', hwtype: 1, hwheader: hw(2), hwaddr: [2, 0, 0, 0, 0, 2] });
    assert.equal(m1.length, m2.length);
    const buf = Buffer.alloc(m1.length);
    const got: PacketLog[] = [];
    const stats = newNflogStats();
    for (const m of [m1, m2, m1]) {
      m.copy(buf);
      decodeNflogBatch(buf, buf.length, stats, 1, (p) => got.push(p), true);
    }
    buf.fill(0);
    assert.deepEqual(got.map((p) => p.prefix), ['dccp: ', 'p253: ', 'dccp: ']);
    assert.deepEqual(got.map((p) => p.src), ['10.0.0.1', '10.0.0.2', '10.0.0.1']);
    assert.deepEqual(got.map((p) => p.hwHeader![11]), [1, 2, 1]);
    assert.deepEqual(got.map((p) => p.hwAddr![5]), [1, 2, 1]);
    assert.deepEqual(got.map((p) => p.payload[15]), [1, 2, 1], 'the last byte of the source address, in the payload');
    assert.deepEqual(got.map((p) => p.raw!.length > 0 && p.raw!.some((x) => x !== 0)), [true, true, true]);
    assert.deepEqual(got.map((p) => printpkt(p).split(' ')[0]), ['dccp:', 'p253:', 'dccp:']);
  });

  it('decodes the conntrack entry (NFULA_CT) with the ctnetlink decoder', () => {
    const ip = (t: number, a: number[]) => attr(t, Buffer.from(a));
    const tuple = (t: number, s: number[], d: number[], sp: number, dp: number) => nest(t,
      nest(1, ip(1, s), ip(2, d)),
      nest(2, attr(1, Buffer.from([6])), attr(2, be16(sp)), attr(3, be16(dp))));
    const ct = nest(NFULA_CT,
      tuple(1, [10, 0, 0, 1], [10, 0, 0, 2], 1111, 80),
      tuple(2, [10, 0, 0, 2], [192, 0, 2, 1], 80, 40001),
      attr(3, be32(0x18e)), attr(12, be32(123456)));
    const p = one(ipv4({ proto: 6 }, tcp({ sport: 1111, dport: 80, flags: 0x02 })), { extra: [ct, attr(NFULA_CT_INFO, be32(2))] });
    assert.equal(p.ct?.id, 123456);
    assert.equal(p.ct?.proto, 6);
    assert.equal(p.ct?.reply.dst, '192.0.2.1');
    assert.equal(p.ct?.reply.dport, 40001);
    assert.equal(p.ctInfo, 2);
    const j = JSON.parse(formatPacketJson(p));
    assert.equal(j.ct.info, 'NEW');
    assert.equal(j.ct.reply.dport, 40001);
  });

  it('a message without NFULA_PACKET_HDR, or with a broken attribute, is malformed and skipped; the next one decodes', () => {
    const good = nflogMessage(ipv4({ proto: 17 }, udp(1, 2)));
    const bad = Buffer.from(good);
    bad.writeUInt16LE(0xfff0, 20);
    const { pkts, stats } = decode(Buffer.concat([bad, good]));
    assert.equal(stats.malformed, 1);
    assert.equal(pkts.length, 1);
  });
});

describe('NFLOG decoding: the packet', () => {
  it('IPv4 + TCP: addresses, header fields, flags, options kept in the payload', () => {
    const opts = Buffer.from('020405b40402080a0000000100000000', 'hex');
    const p = one(ipv4({ src: '192.0.2.7', dst: '198.51.100.9', proto: 6, tos: 0x10, ttl: 63, id: 4242, frag: 0x4000 },
      tcp({ sport: 35924, dport: 8080, seq: 3000000000, ack: 77, flags: 0x12, win: 502, urg: 0, res: 0, options: opts })));
    assert.equal(p.ipVersion, 4);
    assert.equal(p.src, '192.0.2.7');
    assert.equal(p.dst, '198.51.100.9');
    assert.equal(p.ipLen, 20 + 36);
    assert.equal(p.tos, 0x10);
    assert.equal(p.ttl, 63);
    assert.equal(p.ipId, 4242);
    assert.equal(p.ipFlags, 0x4000);
    assert.equal(p.proto, 6);
    assert.equal(p.l4Off, 20);
    assert.equal(p.sport, 35924);
    assert.equal(p.dport, 8080);
    assert.equal(p.tcpSeq, 3000000000);
    assert.equal(p.tcpAck, 77);
    assert.equal(p.tcpFlags, 0x12);
    assert.equal(p.tcpWindow, 502);
    assert.equal(p.tcpHdrLen, 36);
    assert.equal(p.truncated, false);
    assert.deepEqual(JSON.parse(formatPacketJson(p)).tcp.flags, ['ACK', 'SYN']);
  });

  it('IPv4 options move the transport header', () => {
    const p = one(ipv4({ proto: 17, options: Buffer.from('94040000', 'hex') }, udp(53, 5353)));
    assert.equal(p.ihl, 24);
    assert.equal(p.l4Off, 24);
    assert.equal(p.sport, 53);
  });

  it('IPv4 fragments: the first has ports, a later one has none', () => {
    const first = one(ipv4({ proto: 17, frag: 0x2000 }, udp(1000, 2000)));
    assert.equal(first.ipFlags, 0x2000);
    assert.equal(first.sport, 1000);
    const later = one(ipv4({ proto: 17, frag: 0x0000 | 185 }, Buffer.alloc(100)));
    assert.equal(later.fragOff, 1480);
    assert.equal(later.sport, undefined);
    assert.equal(later.l4Off, -1);
    assert.equal(later.truncated, false);
  });

  it('UDP-Lite, SCTP, ICMP echo and error, GRE and ESP by number', () => {
    assert.equal(one(ipv4({ proto: 136 }, udp(7, 8))).dport, 8);
    const sctp = Buffer.alloc(12); sctp.writeUInt16BE(3868, 0); sctp.writeUInt16BE(3869, 2);
    const s = one(ipv4({ proto: 132 }, sctp));
    assert.deepEqual([s.sport, s.dport], [3868, 3869]);
    const echo = one(ipv4({ proto: 1 }, icmp(8, 0, Buffer.from('002a0007', 'hex'))));
    assert.deepEqual([echo.icmpType, echo.icmpCode, echo.icmpId, echo.icmpSeq], [8, 0, 42, 7]);
    const unreach = one(ipv4({ proto: 1 }, icmp(3, 3, Buffer.alloc(4))));
    assert.deepEqual([unreach.icmpType, unreach.icmpCode, unreach.icmpId], [3, 3, undefined]);
    const gre = one(ipv4({ proto: 47 }, Buffer.from('00000800', 'hex')));
    assert.deepEqual([gre.proto, gre.l4Off, gre.sport], [47, 20, undefined]);
    assert.equal(JSON.parse(formatPacketJson(gre)).proto, 'gre');
  });

  it('IPv6: header fields, extension headers walked, ICMPv6 echo', () => {
    const hop = Buffer.from('3a00010400000000', 'hex'); // next ICMPv6, 8 bytes
    const p = one(ipv6({ src: '2001:db8::1', dst: 'fd00:1::2', next: 0, tc: 0xb8, flow: 0x12345, hop: 255 },
      Buffer.concat([hop, icmp(128, 0, Buffer.from('00070001', 'hex'))])), { family: 10, hwProtocol: 0x86dd });
    assert.equal(p.ipVersion, 6);
    assert.equal(p.src, '2001:db8::1');
    assert.equal(p.dst, 'fd00:1::2');
    assert.equal(p.tos, 0xb8);
    assert.equal(p.flowLabel, 0x12345);
    assert.equal(p.ttl, 255);
    assert.equal(p.proto, 58);
    assert.equal(p.l4Off, 48);
    assert.deepEqual([p.icmpType, p.icmpId, p.icmpSeq], [128, 7, 1]);
  });

  it('IPv6 fragments: the first has ports, a later one the protocol only', () => {
    const frag1 = Buffer.from('1100000100000abc', 'hex'); // next UDP, offset 0, M=1, id 0xabc
    const first = one(ipv6({ next: 44 }, Buffer.concat([frag1, udp(5000, 6000)])), { family: 10 });
    assert.deepEqual([first.proto, first.sport, first.ipId, first.ipFlags], [17, 5000, 0xabc, 0x2000]);
    const frag2 = Buffer.from('110005a800000abc', 'hex'); // offset 181*8=1448
    const later = one(ipv6({ next: 44 }, Buffer.concat([frag2, Buffer.alloc(40)])), { family: 10 });
    assert.deepEqual([later.proto, later.fragOff, later.sport, later.l4Off], [17, 1448, undefined, -1]);
  });

  it('a payload cut by the copy range is logged with what it has, marked and counted', () => {
    const full = ipv4({ proto: 6 }, tcp({ sport: 1, dport: 2, flags: 2 }));
    const { pkts, stats } = decode(nflogMessage(full.subarray(0, 30)));
    assert.equal(pkts.length, 1);
    assert.equal(pkts[0].src, '10.0.0.1');
    assert.equal(pkts[0].truncated, true);
    assert.equal(pkts[0].sport, undefined);
    assert.equal(stats.truncatedPackets, 1);
    const meta = one(undefined);
    assert.equal(meta.payload.length, 0);
    assert.equal(meta.ipVersion, 0);
  });

  it('sequence numbers: a gap is counted, a restart is not', () => {
    const s = new SeqTracker();
    const mk = (group: number, seq: number) => ({ group, seq }) as PacketLog;
    assert.equal(s.check(mk(1, 0)), 0);
    assert.equal(s.check(mk(1, 1)), 0);
    assert.equal(s.check(mk(1, 5)), 3);
    assert.equal(s.check(mk(2, 9)), 0);
    assert.equal(s.check(mk(1, 0)), 0); // rebound: numbering starts over
    assert.equal(s.check(mk(1, 0xffffffff)), 0);
    assert.equal(s.check(mk(1, 0)), 0); // wraps
    const b = new SeqTracker();
    b.bound(7);
    assert.equal(b.check(mk(7, 3)), 3, 'bound by us: numbering starts at 0, the first three were lost');
  });
});

describe('NFLOG decoder fuzzing', () => {
  const fmts = PACKET_FORMATS.map((f) => makePacketFormatter({ format: f }));
  const run = (b: Buffer) => {
    const stats = newNflogStats();
    decodeNflogBatch(b, b.length, stats, 1, (p) => { for (const f of fmts) f(p); });
  };
  const REAL = [
    nflogMessage(ipv4({ proto: 6 }, tcp({ sport: 1, dport: 2, flags: 0x18, options: Buffer.from('0101080a0000000100000002', 'hex'), data: Buffer.from('hello') })), { prefix: 'x', mark: 1, uid: 0, seq: 1, time: [1, 2], hwaddr: [1, 2, 3, 4, 5, 6] }),
    nflogMessage(ipv6({ next: 0 }, Buffer.concat([Buffer.from('2c00000000000000', 'hex'), Buffer.from('1100000100000001', 'hex'), udp(1, 2)])), { family: 10 }),
    nflogMessage(ipv4({ proto: 1 }, icmp(3, 4, Buffer.concat([Buffer.from('000005dc', 'hex'), ipv4({ proto: 17 }, udp(1, 2))]))), { vlan: [0x8100, 1] }),
  ];
  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => run(Buffer.from(b))), { numRuns: 5000 });
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
        if (len >= 16 && cut % 2 === 0) b.writeUInt32LE(len, 0);
        run(b.subarray(0, len));
      },
    ), { numRuns: 20000 });
  });
});

describe('ulogd formats of a packet (ulogd 2.0.8 BASE + PRINTPKT, quirks included)', () => {
  const emu = (buf: Buffer, o: MsgOpts = {}) => printpkt(one(buf, { prefix: 'p', ...o }));
  it('IPv4 + TCP: the field order, TOS without 0x, flags URG ACK PSH RST SYN FIN, URGP only with URG, MARK always', () => {
    const l = emu(ipv4({ src: '192.0.2.1', dst: '198.51.100.2', proto: 6, tos: 0x12, ttl: 63, id: 7 }, tcp({ sport: 1, dport: 2, seq: 5, ack: 6, flags: 0x3f, win: 9, urg: 77 })), { mark: 0x2a });
    assert.equal(l, 'p IN= OUT= MAC= SRC=192.0.2.1 DST=198.51.100.2 LEN=40 TOS=12 PREC=0x00 TTL=63 ID=7 DF PROTO=TCP SPT=1 DPT=2 SEQ=5 ACK=6 WINDOW=9 URG ACK PSH RST SYN FIN URGP=77 MARK=0x2a ');
    assert.match(emu(ipv4({ proto: 6 }, tcp({ sport: 1, dport: 2, flags: 0x02, urg: 77 }))), / SYN URGP=0 MARK=0x0 $/);
  });
  it('a later IPv4 fragment is read as if a transport header began it (as BASE does)', () => {
    const l = emu(ipv4({ proto: 17, frag: 185 }, Buffer.from('0035003500100000', 'hex')));
    assert.match(l, / FRAG:185 PROTO=UDP SPT=53 DPT=53 LEN=16 /);
  });
  it('ICMP: the extra fields go by the code (echo: ID SEQ; a code 3 error nothing; code 0 errors ID=0 SEQ=0)', () => {
    assert.match(emu(ipv4({ proto: 1 }, icmp(8, 0, Buffer.from('00070009', 'hex')))), / PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=9 MARK/);
    assert.match(emu(ipv4({ proto: 1 }, icmp(3, 3, Buffer.alloc(4)))), / PROTO=ICMP TYPE=3 CODE=3 MARK/);
    assert.match(emu(ipv4({ proto: 1 }, icmp(11, 0, Buffer.alloc(4)))), / PROTO=ICMP TYPE=11 CODE=0 ID=0 SEQ=0 MARK/);
    assert.match(emu(ipv4({ proto: 1 }, Buffer.from('0800', 'hex'))), / PROTO=ICMP INCOMPLETEMARK=0x0 $/);
  });
  it('ESP and AH are INCOMPLETE (no SPI), SCTP has ports, others are numbers; an IPv4 header alone is not parsed', () => {
    assert.match(emu(ipv4({ proto: 50 }, Buffer.alloc(16))), / PROTO=ESP INCOMPLETEMARK/);
    const sctp = Buffer.alloc(12); sctp.writeUInt16BE(9, 0); sctp.writeUInt16BE(10, 2);
    assert.match(emu(ipv4({ proto: 132 }, sctp)), / PROTO=SCTP SPT=9 DPT=10 MARK/);
    assert.match(emu(ipv4({ proto: 47 }, Buffer.alloc(4))), / PROTO=47 MARK/);
    assert.match(emu(ipv4({ proto: 6 }, Buffer.alloc(0))), /MAC= LEN=0 TOS=00 PREC=0x00 TTL=0 ID=0 PROTO=0 MARK=0x0 $/);
  });
  it('IPv6: the fields, a fragment header as "FRAG: n ID: x", SCTP over IPv6 not parsed', () => {
    const frag = Buffer.from('1100000100000abc', 'hex');
    const l = emu(ipv6({ src: '2001:db8::1', dst: '2001:db8::2', next: 44, tc: 0, flow: 5, hop: 9 }, Buffer.concat([frag, udp(1, 2)])), { family: 10 });
    assert.match(l, /SRC=2001:db8::1 DST=2001:db8::2 LEN=60 TC=0 HOPLIMIT=9 FLOWLBL=5 FRAG: 0 ID: 00000abc PROTO=UDP SPT=1 DPT=2 LEN=12 /);
    const sctp = Buffer.alloc(12);
    assert.match(emu(ipv6({ next: 132 }, sctp), { family: 10 }), / PROTO=SCTP INCOMPLETEMARK/);
  });
  it('ulogd-json: NFLOG, BASE, IFINDEX, IP2STR keys in ulogd\'s order, ports as src_port/dest_port', () => {
    const p = one(ipv4({ proto: 17 }, udp(53, 5353)), { prefix: 'x', indev: 2, time: [1764572766, 5], hwtype: 1, hwheader: Buffer.from('0200000000010200000000020800', 'hex'), hwaddr: [2, 0, 0, 0, 0, 2] });
    p.indevName = 'eth0';
    const keys = Object.keys(JSON.parse(formatPacketUlogdJson(p)));
    assert.deepEqual(keys, ['timestamp', 'dvc', 'raw.pktlen', 'raw.pktcount', 'oob.prefix', 'oob.time.sec', 'oob.time.usec', 'oob.mark', 'oob.ifindex_in', 'oob.hook',
      'raw.mac_len', 'oob.family', 'oob.protocol', 'raw.label', 'raw.type', 'raw.mac.addrlen', 'ip.protocol', 'ip.tos', 'ip.ttl', 'ip.totlen', 'ip.ihl', 'ip.csum', 'ip.id',
      'ip.fragoff', 'src_port', 'dest_port', 'udp.len', 'udp.csum', 'oob.in', 'oob.out', 'src_ip', 'dest_ip']);
    const h = JSON.parse(formatPacketUlogdJson(p, { hwhdr: true }));
    assert.equal(h['mac.saddr.str'], '02:00:00:00:00:02');
    assert.equal(h['mac.daddr.str'], '02:00:00:00:00:01');
    assert.equal(h['mac.str'], '02:00:00:00:00:01:02:00:00:00:00:02:08:00');
  });
});

describe('the kernel LOG line of a packet', () => {
  it('prefix as it is, MAC only for packets that came in, TOS=0x, RES=, CWR/ECE, no SEQ/ACK, MARK only when set, IPv6 in full', () => {
    const k = (buf: Buffer, o: MsgOpts = {}) => formatPacketKernel(one(buf, { prefix: 'fw: ', ...o }));
    assert.equal(k(ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: 6, tos: 0x10, id: 9 }, tcp({ sport: 1, dport: 2, flags: 0xc2, win: 5 }))),
      'fw: IN= OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x10 PREC=0x00 TTL=64 ID=9 DF PROTO=TCP SPT=1 DPT=2 WINDOW=5 RES=0x00 CWR ECE SYN URGP=0 ');
    assert.match(k(ipv4({ proto: 17 }, udp(1, 2)), { mark: 0x2a, indev: 3 }), /^fw: IN= OUT= MAC= SRC=.* PROTO=UDP SPT=1 DPT=2 LEN=12 MARK=0x2a $/);
    assert.match(k(ipv6({ src: 'fd99:1::2', dst: 'fd99:2::2', next: 58 }, icmp(128, 0, Buffer.from('00010002', 'hex'))), { family: 10 }),
      /SRC=fd99:0001:0000:0000:0000:0000:0000:0002 DST=fd99:0002:0000:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=2 $/);
    // an ICMP error carries the packet it is about, in brackets
    assert.match(k(ipv4({ proto: 1 }, icmp(3, 3, Buffer.concat([Buffer.alloc(4), ipv4({ src: '10.0.0.2', dst: '10.0.0.1', proto: 17 }, udp(53, 9))])))),
      /PROTO=ICMP TYPE=3 CODE=3 \[SRC=10\.0\.0\.2 DST=10\.0\.0\.1 LEN=32 .* PROTO=UDP SPT=53 DPT=9 LEN=12 \] $/);
  });
});
