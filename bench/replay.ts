// Offline throughput of the hot path: decode -> format -> write, over
// ctnetlink messages captured from the kernel (test/fixtures), replayed in
// batches like the native socket delivers them. Not a substitute for the
// live benchmark (bench/run.sh), a tool to profile the JS side.
// usage: node dist/bench/replay.js [conntrack|json|vyos] [events]
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBatch, newDecodeStats } from '../src/sources/conntrack/decode.js';
import { formatConntrack } from '../src/formats/conntrack.js';
import { formatJson } from '../src/formats/json.js';
import { formatVyos } from '../src/formats/vyos.js';
import { formatLogemu, formatUlogdJson } from '../src/formats/ulogd.js';
import { LineWriter } from '../src/util/output.js';
import { readFixture } from '../test/helpers/fixtures.js';
import { nowMicros } from '../src/util/time.js';

const fmtName = process.argv[2] ?? 'conntrack';
const total = Number(process.argv[3] ?? 1_000_000);
const fmt = fmtName === 'json' ? formatJson : fmtName === 'vyos' ? formatVyos : fmtName === 'ulogd-json' ? (ev: Parameters<typeof formatConntrack>[0]) => formatUlogdJson(ev) : fmtName === 'logemu' ? (ev: Parameters<typeof formatConntrack>[0]) => formatLogemu(ev, { hostname: 'h' })
  : (ev: Parameters<typeof formatConntrack>[0]) => formatConntrack(ev, {});
const msgs = ['ipv4-masq-acct-ts', 'ipv6-masq-acct-ts', 'snat-dnat']
  .flatMap((n) => readFixture(join(process.cwd(), 'test', 'fixtures', `${n}.bin`)).map((m) => m.bytes));
// one batch of 256 messages, as recvmmsg would deliver them
const batch = Buffer.concat(Array.from({ length: 256 }, (_, i) => msgs[i % msgs.length]));
const out = new LineWriter(openSync('/dev/null', 'w'));
const stats = newDecodeStats();
const t0 = process.cpuUsage();
const w0 = performance.now();
let n = 0;
while (n < total) {
  const t = nowMicros();
  decodeBatch(batch, batch.length, stats, (ev) => { ev.recvTime = t; out.line(fmt(ev)); n++; });
  out.flush();
}
const cpu = process.cpuUsage(t0);
const wall = performance.now() - w0;
const rss = process.memoryUsage().rss / 2 ** 20;
console.log(`${fmtName}: ${n} events, ${((cpu.user + cpu.system) / 1e6 / n * 1e5).toFixed(3)} CPU s/100k events, ` +
  `${(n / wall * 1000 / 1e3).toFixed(0)}k events/s, rss ${rss.toFixed(1)} MiB`);
