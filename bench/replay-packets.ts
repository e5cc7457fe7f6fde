// Offline throughput of the packet hot path: NFLOG messages (built like the
// kernel's: TCP, UDP and ICMP packets with prefix, interfaces, hardware
// header, timestamp) decoded and formatted in batches of 64, as a receive
// buffer delivers them, and written to /dev/null. A tool to profile the JS side, not a substitute for
// bench/packets.ts (the live comparison with ulogd2).
// usage: node dist/bench/replay-packets.js [logemu|ulogd-json|kernel|json] [packets]
import { decodeNflogBatch, newNflogStats } from '../src/sources/nflog/decode.js';
import { makePacketFormatter, type PacketFormatName } from '../src/formats/packet/index.js';
import { openSync } from 'node:fs';
import { LineWriter } from '../src/util/output.js';
import { icmp, ipv4, nflogMessage, tcp, udp } from '../test/helpers/nflogmsg.js';

const fmtName = (process.argv[2] ?? 'logemu') as PacketFormatName;
const total = Number(process.argv[3] ?? 1_000_000);
const format = makePacketFormatter({ format: fmtName });
const meta = { prefix: 'sg-drop: ', indev: 2, outdev: 3, time: [1764572766, 250123] as [number, number], hwtype: 1, hwheader: Buffer.from('0200000000010200000000020800', 'hex'), hwaddr: [2, 0, 0, 0, 0, 2] };
const msgs = [
  nflogMessage(ipv4({ src: '10.99.1.2', dst: '10.99.2.2', proto: 6 }, tcp({ sport: 40000, dport: 8080, flags: 0x02, options: Buffer.from('020405b40402080a0000000100000000', 'hex') })), meta),
  nflogMessage(ipv4({ src: '10.99.1.3', dst: '10.99.2.2', proto: 17 }, udp(53000, 53, Buffer.alloc(40))), meta),
  nflogMessage(ipv4({ src: '10.99.1.4', dst: '10.99.2.2', proto: 1 }, icmp(8, 0, Buffer.alloc(60))), meta),
];
const batch = Buffer.concat(Array.from({ length: 64 }, (_, i) => msgs[i % msgs.length]));
const stats = newNflogStats();
let chars = 0;
const t0 = process.cpuUsage();
const w0 = performance.now();
// written as `conntrail packets` writes them: one string per batch, to /dev/null
const out = new LineWriter(openSync('/dev/null', 'w'));
for (let n = 0; n < total; n += 64) {
  decodeNflogBatch(batch, batch.length, stats, 1, (p) => { const line = format(p); chars += line.length; out.line(line); });
  out.flush();
}
const cpu = process.cpuUsage(t0);
const s = (cpu.user + cpu.system) / 1e6;
console.log(`${fmtName}: ${stats.packets} packets, ${((s / stats.packets) * 1e5).toFixed(3)} CPU s/100k packets, ${Math.round(stats.packets / ((performance.now() - w0) / 1000) / 1000)}k packets/s, ${Math.round(chars / stats.packets)} chars/line`);
