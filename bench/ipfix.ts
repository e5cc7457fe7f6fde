// Offline throughput of the IPFIX sink beside the file sink (flow records
// as JSON lines), in the same run: N flow records (70 % IPv4 with NAT, 20 %
// IPv4 without, 10 % IPv6 with NAT) pushed in batches of 1,000 as the flow
// table hands them on, each batch flushed as the daemon flushes its sinks.
// The IPFIX messages go over UDP, then over TCP, to a collector stand-in in
// another process that counts the data records it receives (loss =
// exported − received: over UDP the datagrams the receiver's kernel buffer
// could not take; over TCP a record counts once acknowledged); the file sink
// writes to a file. CPU is this process's (user + system) per 100k records.
// A last row folds the same flows through an [[aggregate]] stage (keys src,
// nat_src, proto, dport; one interval) into an IPFIX sink over UDP: the
// records it sends are the aggregates (1,000 keys), the CPU is per 100k
// flows folded.
// usage: node dist/bench/ipfix.js [records] [rate/s, 0: as fast as it goes] [nat_events: 0|1]
import { fork } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpfixSink } from '../src/sinks/ipfix.js';
import { FileSink } from '../src/sinks/file.js';
import { makeFlowFormatter } from '../src/formats/flow.js';
import { AggregateEncoding, RECORD_LEN, TEMPLATE_AGG, TEMPLATE_AGG_V4, TEMPLATE_AGG_V6 } from '../src/formats/ipfix.js';
import { Aggregator } from '../src/pipeline/aggregate.js';
import type { EndedFlow } from '../src/records/flow.js';
import type { Sink } from '../src/sinks/sink.js';

if (process.argv[2] === 'receiver') {
  // the collector stand-in: counts data records by their set's template, per transport
  // (aggregates: the records of the aggregate templates, apart)
  const count = { udp: { records: 0, messages: 0, aggregates: 0 }, tcp: { records: 0, messages: 0, aggregates: 0 } };
  const AGG_IDS = new Set([TEMPLATE_AGG, TEMPLATE_AGG_V4, TEMPLATE_AGG_V6]);
  // record lengths by template id, as the template sets say (the aggregates' templates depend on their keys)
  const lengths = new Map<number, number>(Object.entries(RECORD_LEN).map(([k, v]) => [Number(k), v]));
  const templates = (b: Buffer, o: number, end: number) => {
    while (o + 4 <= end) {
      const id = b.readUInt16BE(o);
      const n = b.readUInt16BE(o + 2);
      o += 4;
      let len = 0;
      for (let i = 0; i < n; i++) { const ie = b.readUInt16BE(o); len += b.readUInt16BE(o + 2); o += ie & 0x8000 ? 8 : 4; }
      lengths.set(id, len);
    }
  };
  const message = (b: Buffer, c: { records: number; messages: number; aggregates: number }) => {
    c.messages++;
    for (let o = 16; o + 4 <= b.length;) {
      const id = b.readUInt16BE(o);
      const len = b.readUInt16BE(o + 2);
      if (id === 2) templates(b, o + 4, o + len);
      else if (AGG_IDS.has(id)) c.aggregates += Math.floor((len - 4) / lengths.get(id)!);
      else if (id >= 256) c.records += Math.floor((len - 4) / lengths.get(id)!);
      o += len;
    }
  };
  const s = createSocket('udp4');
  s.on('message', (b) => message(b, count.udp));
  // over TCP: the stream cut into messages by their length
  const t = createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      let o = 0;
      while (buf.length - o >= 4 && buf.length - o >= buf.readUInt16BE(o + 2)) { const l = buf.readUInt16BE(o + 2); message(buf.subarray(o, o + l), count.tcp); o += l; }
      buf = buf.subarray(o);
    });
    c.on('error', () => {});
  });
  s.bind(0, '127.0.0.1', () => {
    s.setRecvBufferSize(8 * 1024 * 1024);
    t.listen(0, '127.0.0.1', () => process.send!({ port: s.address().port, tcpPort: (t.address() as AddressInfo).port }));
  });
  process.on('message', () => process.send!(count));
} else {
  const N = Number(process.argv[2] ?? 1_000_000);
  const rate = Number(process.argv[3] ?? 0);
  const natEvents = process.argv[4] === '1';
  const flows: EndedFlow[] = Array.from({ length: 1000 }, (_, i) => {
    const v6 = i % 10 === 0;
    const nat = i % 10 < 8;
    return {
      key: i, start: 1_796_000_000_000_000 + i * 1000, startErr: 0, end: 1_796_000_030_000_000 + i * 1000, endErr: 0, activeEnd: null,
      family: v6 ? 6 : 4, proto: i % 3 === 0 ? 6 : 17, src: v6 ? 'fd00::5' : `10.0.${i >> 8}.${i & 255}`, sport: 30000 + i,
      dst: v6 ? '2001:db8::1' : '198.51.100.1', dport: 443, natSrc: nat ? (v6 ? '2001:db8:1::1' : '203.0.113.7') : null, natSport: nat ? 40000 + i : null,
      natDst: null, natDport: null, origPackets: 12, origBytes: 3400, replyPackets: 10, replyBytes: 12000, state: 7, mark: 0, zone: 0,
      status: 0, ctId: i, flags: 0, ns: 0, netns: '', netnsInode: 0, corrects: false, report: 0, reported: 0,
    };
  });
  const rx = fork(new URL(import.meta.url).pathname, ['receiver']);
  const ask = <T>(msg?: unknown) => new Promise<T>((r) => { rx.once('message', (m) => r(m as T)); if (msg) rx.send(msg); });
  const { port, tcpPort } = await ask<{ port: number; tcpPort: number }>();
  const dir = mkdtempSync(join(tmpdir(), 'bench-ipfix-'));
  const fmt = makeFlowFormatter('json');
  const run = async (name: string, sink: Sink, line: boolean) => {
    const t0 = process.cpuUsage();
    const w0 = performance.now();
    for (let n = 0; n < N; n += 1000) {
      for (const f of flows) sink.push(line ? fmt(f) : '', f, 'flow');
      sink.flush();
      // (the sends complete; a full queue is waited out, as the daemon pauses its sources)
      await new Promise((r) => setImmediate(r));
      while (sink.full()) await new Promise((r) => setTimeout(r, 1));
      if (rate > 0) { const ahead = w0 + ((n + 1000) / rate) * 1000 - performance.now(); if (ahead > 0) await new Promise((r) => setTimeout(r, ahead)); }
    }
    await sink.close();
    const cpu = process.cpuUsage(t0);
    const secs = (performance.now() - w0) / 1000;
    return { name, cpu: (cpu.user + cpu.system) / 1e6, secs, st: sink.stats() };
  };
  const warn = (m: string) => console.error(m);
  const results = [];
  let aggRow: { cpu: number; secs: number; folded: number; st: ReturnType<Sink['stats']> } | undefined;
  results.push(await run('file (json lines)', new FileSink({ name: 'file', target: join(dir, 'flows.json'), queueSize: 65536, whenFull: 'block', warn }), true));
  for (const transport of ['udp', 'tcp'] as const) {
    results.push(await run(`ipfix ${transport}${natEvents ? ' + NAT events' : ''}`, new IpfixSink({
      name: 'ipfix', address: `${transport}://127.0.0.1:${transport === 'udp' ? port : tcpPort}`, domain: 1, templateRefreshSecs: 60, maxMessageSize: 1400, natEvents, natEventNumbers: 'rfc8158',
      queueSize: 65536, whenFull: 'block', warn,
    }), false));
  }
  // the aggregation stage: every flow folded, the aggregates sent at the end
  {
    const sink = new IpfixSink({
      name: 'ipfix', address: `udp://127.0.0.1:${port}`, domain: 2, templateRefreshSecs: 60, maxMessageSize: 1400, natEvents: false, natEventNumbers: 'rfc8158',
      aggregate: new AggregateEncoding(['src', 'nat_src', 'proto', 'dport'], { src4: 32, src6: 128, dst4: 32, dst6: 128 }), queueSize: 65536, whenFull: 'block', warn,
    });
    const agg = new Aggregator({ name: 'a', keys: ['src', 'nat_src', 'proto', 'dport'], srcPrefix4: 32, srcPrefix6: 128, dstPrefix4: 32, dstPrefix6: 128,
      interval: 60, delay: 10, maxKeys: 1_000_000, emit: (r) => sink.push('', r, 'aggregate') });
    const t0 = process.cpuUsage();
    const w0 = performance.now();
    for (let n = 0; n < N; n += 1000) {
      for (const f of flows) agg.push(f);
      if (rate > 0) { const ahead = w0 + ((n + 1000) / rate) * 1000 - performance.now(); if (ahead > 0) await new Promise((r) => setTimeout(r, ahead)); }
    }
    agg.tick(Infinity, true);
    sink.flush();
    await sink.close();
    const cpu = process.cpuUsage(t0);
    aggRow = { cpu: (cpu.user + cpu.system) / 1e6, secs: (performance.now() - w0) / 1000, folded: agg.stats().flows, st: sink.stats() };
  }
  await new Promise((r) => setTimeout(r, 300));
  const got = await ask<Record<'udp' | 'tcp', { records: number; messages: number; aggregates: number }>>('count');
  rx.kill();
  rmSync(dir, { recursive: true, force: true });
  console.log(`| sink | records | rate asked/s (flows) | achieved/s (flows) | received | loss % | CPU s | CPU s/100k flows |`);
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const c = r.name.startsWith('ipfix tcp') ? got.tcp : r.name.startsWith('ipfix udp') ? got.udp : undefined;
    const recv = c ? c.records : r.st.written;
    console.log(`| ${r.name} | ${r.st.written} | ${rate || 'max'} | ${Math.round(N / r.secs)} | ${recv}${c ? ` (${c.messages} messages)` : ''} | ${(100 * (r.st.written - recv) / r.st.written).toFixed(3)} | ${r.cpu.toFixed(2)} | ${(r.cpu / N * 1e5).toFixed(3)} |`);
  }
  if (aggRow) {
    const recv = got.udp.aggregates;
    console.log(`| aggregate → ipfix udp (${aggRow.folded} flows folded) | ${aggRow.st.written} | ${rate || 'max'} | ${Math.round(aggRow.folded / aggRow.secs)} | ${recv} | ${(100 * (aggRow.st.written - recv) / aggRow.st.written).toFixed(3)} | ${aggRow.cpu.toFixed(2)} | ${(aggRow.cpu / aggRow.folded * 1e5).toFixed(3)} |`);
  }
}
