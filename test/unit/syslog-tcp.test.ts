// The TCP syslog sink is at-least-once: a real SyslogSink over loopback at
// ~600 records/s against collectors that restart, half-close (as `ncat -lk`
// with stdin at EOF does), reset, or stop reading. Every record must arrive
// at least once; `written` counts each record once, and only once the
// collector's kernel has acknowledged it; duplicates are at most `resent`.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { parseAddress, sdValue, SyslogSink } from '../../src/sinks/syslog.js';
import { hostname } from 'node:os';

// <daemon.info> rfc3164 to a collector: "<30>Mmm dd hh:mm:ss HOST TAG[PID]: LINE"
const RECORD = /^<30>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ ct-test\[\d+\]: seq=(\d+) x+ end$/;

/** What a collector received: complete lines, by sequence number. */
class Tally {
  readonly counts = new Map<number, number>();
  lines = 0;
  garbled = 0;
  add(line: string): void {
    const m = RECORD.exec(line);
    if (!m) { this.garbled++; return; }
    this.lines++;
    const n = Number(m[1]);
    this.counts.set(n, (this.counts.get(n) ?? 0) + 1);
  }
  get distinct(): number { return this.counts.size; }
  get duplicates(): number { return this.lines - this.distinct; }
}

/** Newline framing for one connection; a partial line at its end is not a record. */
function liner(tally: Tally): (chunk: Buffer) => void {
  let rest = '';
  return (chunk) => {
    const parts = (rest + chunk.toString('latin1')).split('\n');
    rest = parts.pop()!;
    for (const p of parts) tally.add(p);
  };
}

interface Conn { sock: Socket; index: number; records: number }

/** A collector on 127.0.0.1 (the same port across restarts). Its hooks
 * decide how it misbehaves. */
class Collector {
  readonly tally = new Tally();
  readonly open = new Set<Socket>();
  /** [sink's written, distinct records received] at moments when this
   * collector had read everything its kernel had acknowledged */
  readonly samples: Array<[number, number]> = [];
  sink: SyslogSink | undefined;
  /** off where a connection stops reading: what it holds unread was acknowledged */
  sampling = true;
  port = 0;
  accepted = 0;
  onAccept: (c: Conn) => void = () => {};
  /** after a read; drained: the read took all there was */
  onData: (c: Conn, drained: boolean) => void = () => {};
  private server: Server | undefined;
  private stopping = false;

  start(): Promise<void> {
    const srv = createServer({ allowHalfOpen: true }, (s) => this.accept(s));
    this.server = srv;
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(this.port, '127.0.0.1', () => { this.port = (srv.address() as AddressInfo).port; resolve(); });
    });
  }

  private accept(sock: Socket): void {
    const c: Conn = { sock, index: this.accepted++, records: 0 };
    this.open.add(sock);
    const feed = liner(this.tally);
    sock.on('error', () => {});
    sock.on('close', () => this.open.delete(sock));
    // the sink has finished with this connection: so have we
    sock.on('end', () => sock.end());
    sock.on('data', (chunk: Buffer) => {
      const before = this.tally.lines;
      feed(chunk);
      c.records += this.tally.lines - before;
      // read() returned less than Node asked for (64 KiB): nothing this
      // connection's kernel acknowledged is left unread
      const drained = chunk.length < 65536;
      if (drained && this.open.size === 1) this.sample();
      if (this.stopping) { if (drained) sock.destroy(); return; }
      this.onData(c, drained);
    });
    this.onAccept(c);
  }

  sample(): void {
    if (this.sink && this.sampling) this.samples.push([this.sink.stats().written, this.tally.distinct]);
  }

  /** A well-behaved stop: no more connections; each open one is closed
   * right after a read that took everything it had. */
  async stop(): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((r) => this.server!.close(() => r()));
    // a connection with nothing coming in has nothing unread either
    const idle = setTimeout(() => { for (const s of this.open) s.destroy(); }, 2000);
    await closed;
    clearTimeout(idle);
    this.stopping = false;
  }

  close(): void {
    for (const s of this.open) s.destroy();
    this.server?.close();
  }
}

/** ~600 records/s: 6 every 10 ms, `total` in all. */
function produce(sink: SyslogSink, total: number, pad: number): { produced: () => number; done: Promise<void>; stop: () => void } {
  let n = 0;
  let timer: NodeJS.Timeout | undefined;
  const fill = 'x'.repeat(pad);
  const done = new Promise<void>((resolve) => {
    timer = setInterval(() => {
      for (let i = 0; i < 6 && n < total; i++) sink.push(`seq=${n++} ${fill} end`);
      sink.flush();
      if (n >= total) { clearInterval(timer); resolve(); }
    }, 10);
  });
  return { produced: () => n, done, stop: () => clearInterval(timer) };
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function tcpSink(port: number, warnings: string[]): SyslogSink {
  return new SyslogSink({
    name: 't', address: `tcp://127.0.0.1:${port}`, protocol: 'rfc3164', facility: 'daemon', severity: 'info',
    tag: 'ct-test', queueSize: 1 << 20, whenFull: 'block', warn: (m) => warnings.push(m),
  });
}

/** Runs a scenario; whatever happens, its sink, collector, producer and children go. */
async function scenario(body: (cleanup: Array<() => unknown>) => Promise<void>): Promise<void> {
  const cleanup: Array<() => unknown> = [];
  try {
    await body(cleanup);
  } finally {
    for (const f of cleanup.reverse()) {
      try { await f(); } catch { /* the next one still runs */ }
    }
  }
}

/** Everything produced arrived; written is every record, once; no more duplicates than resent. */
function verify(t: TestContext, what: string, sink: SyslogSink, tally: Tally, total: number, samples: Array<[number, number]>, connections: number): void {
  const st = sink.stats();
  t.diagnostic(`${what}: produced=${total} received=${tally.lines} distinct=${tally.distinct} duplicates=${tally.duplicates} ` +
    `written=${st.written} resent=${st.resent} errors=${st.errors} connections=${connections} samples=${samples.length}`);
  const missing: number[] = [];
  for (let i = 0; i < total; i++) if (!tally.counts.has(i)) missing.push(i);
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} records never arrived`);
  assert.equal(tally.distinct, total, 'nothing arrived that was not produced');
  assert.equal(st.dropped, 0);
  assert.equal(st.queued, 0);
  assert.equal(st.written, total, 'each record counted written exactly once');
  assert.ok(st.written <= tally.distinct);
  for (const [w, d] of samples) assert.ok(w <= d, `written ${w} while only ${d} distinct records had arrived`);
  assert.ok(tally.duplicates <= st.resent, `${tally.duplicates} duplicates, only ${st.resent} resent`);
}

describe('syslog sink over TCP: at-least-once', { timeout: 90_000 }, () => {
  it('a collector stopped and restarted three times gets every record', async (t) => {
    await scenario(async (cleanup) => {
      const col = new Collector();
      await col.start();
      cleanup.push(() => col.close());
      const warnings: string[] = [];
      const sink = tcpSink(col.port, warnings);
      col.sink = sink;
      cleanup.push(() => sink.close());
      const total = 2400;
      const p = produce(sink, total, 100);
      cleanup.push(p.stop);
      for (const at of [500, 1100, 1700]) {
        await waitFor(() => p.produced() >= at && col.open.size > 0, 15_000, `${at} records were produced, connected`);
        const errors = sink.stats().errors;
        await col.stop();
        const down = Date.now();
        // down until the sink has noticed, and long enough for a refused reconnect
        await waitFor(() => sink.stats().errors > errors && Date.now() - down > 400, 10_000, 'the sink noticed the collector gone');
        await col.start();
      }
      await p.done;
      await waitFor(() => col.tally.distinct === total && sink.stats().written === total, 20_000, 'every record arrived and was acknowledged');
      await sink.close();
      assert.equal(col.tally.garbled, 0);
      assert.ok(warnings.some((w) => /tcp:\/\/127\.0\.0\.1:\d+: .*records are kept/.test(w)), warnings.join('\n'));
      assert.ok(!warnings.some((w) => /not confirmed|not sent/.test(w)), warnings.join('\n'));
      verify(t, 'restarted x3', sink, col.tally, total, col.samples, col.accepted);
      assert.ok(col.accepted >= 4);
    });
  });

  it('a collector that half-closes at once (ncat -lk with stdin at EOF), then reads to the end or stops and closes', async (t) => {
    await scenario(async (cleanup) => {
      const col = new Collector();
      // FIN right after accepting; every other connection is closed after
      // its first read, the others read until the sink closes its side
      col.onAccept = (c) => { c.sock.end(); };
      col.onData = (c, drained) => { if (c.index % 2 === 1 && drained) c.sock.destroy(); };
      await col.start();
      cleanup.push(() => col.close());
      const sink = tcpSink(col.port, []);
      col.sink = sink;
      cleanup.push(() => sink.close());
      const total = 1800;
      const p = produce(sink, total, 100);
      cleanup.push(p.stop);
      await p.done;
      await waitFor(() => col.tally.distinct === total && sink.stats().written === total, 30_000, 'every record arrived and was acknowledged');
      await sink.close();
      assert.equal(col.tally.garbled, 0);
      verify(t, 'half-close', sink, col.tally, total, col.samples, col.accepted);
      assert.ok(col.accepted >= 3, 'the sink reconnected after each FIN');
    });
  });

  it('a collector that resets the connection three times', async (t) => {
    await scenario(async (cleanup) => {
      const col = new Collector();
      let resets = 0;
      col.onData = (c, drained) => {
        if (resets < 3 && c.records >= 200 && drained) {
          resets++;
          col.sample();
          c.sock.resetAndDestroy();
        }
      };
      await col.start();
      cleanup.push(() => col.close());
      const sink = tcpSink(col.port, []);
      col.sink = sink;
      cleanup.push(() => sink.close());
      const total = 1800;
      const p = produce(sink, total, 100);
      cleanup.push(p.stop);
      await p.done;
      await waitFor(() => col.tally.distinct === total && sink.stats().written === total, 20_000, 'every record arrived and was acknowledged');
      await sink.close();
      assert.equal(resets, 3);
      assert.equal(col.tally.garbled, 0);
      verify(t, 'reset x3', sink, col.tally, total, col.samples, col.accepted);
    });
  });

  it('a collector that stops reading, then half-closes: what it never acknowledged is sent again', async (t) => {
    await scenario(async (cleanup) => {
      const col = new Collector();
      col.sampling = false;
      let stuck: Socket | undefined;
      col.onAccept = (c) => { if (c.index === 0) { stuck = c.sock; c.sock.pause(); } };
      await col.start();
      cleanup.push(() => col.close());
      const sink = tcpSink(col.port, []);
      col.sink = sink;
      cleanup.push(() => sink.close());
      const total = 1500;
      const p = produce(sink, total, 1000);
      cleanup.push(p.stop);
      // its receive window is full: records pile up unacknowledged
      await waitFor(() => stuck !== undefined && sink.stats().queued >= 300, 20_000, 'the stuck collector stopped acknowledging');
      const written = sink.stats().written;
      assert.ok(written < p.produced());
      stuck!.end();
      await waitFor(() => sink.stats().resent > 0, 10_000, 'the sink gave up on the connection and put its records back');
      // now it reads what its kernel holds (the sink sends those again too)
      stuck!.resume();
      await p.done;
      await waitFor(() => col.tally.distinct === total && sink.stats().written === total, 30_000, 'every record arrived and was acknowledged');
      await sink.close();
      assert.equal(col.tally.garbled, 0);
      verify(t, 'stuck, then FIN', sink, col.tally, total, col.samples, col.accepted);
      assert.ok(sink.stats().resent > 0);
    });
  });

  it('close() waits a bounded time and does not count what the collector did not acknowledge', async (t) => {
    await scenario(async (cleanup) => {
      const col = new Collector();
      col.sampling = false;
      col.onAccept = (c) => c.sock.pause();
      await col.start();
      cleanup.push(() => col.close());
      const warnings: string[] = [];
      const sink = tcpSink(col.port, warnings);
      col.sink = sink;
      cleanup.push(() => sink.close());
      const total = 1500;
      const p = produce(sink, total, 1000);
      cleanup.push(p.stop);
      await p.done;
      const t0 = Date.now();
      await sink.close();
      const st = sink.stats();
      t.diagnostic(`close with a stuck collector: produced=${total} written=${st.written} queued=${st.queued} in ${Date.now() - t0} ms`);
      assert.ok(st.written < total);
      assert.equal(st.written + st.queued, total);
      assert.ok(warnings.some((w) => new RegExp(`${st.queued} records not confirmed by tcp://`).test(w)), warnings.join('\n'));
      // what arrives once it reads again includes at least everything counted
      for (const s of col.open) s.resume();
      await waitFor(() => col.open.size === 0, 20_000, 'the collector read to the end');
      assert.ok(col.tally.distinct >= st.written, `written ${st.written}, received ${col.tally.distinct}`);
    });
  });

  it('ncat -lk with stdin at EOF gets every record', async (t) => {
    if (spawnSync('ncat', ['--version']).status !== 0) { t.skip('ncat is not installed'); return; }
    await scenario(async (cleanup) => {
      // a free port for ncat
      const probe = createServer();
      await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
      const port = (probe.address() as AddressInfo).port;
      await new Promise<void>((r) => probe.close(() => r()));
      const nc: ChildProcess = spawn('ncat', ['-lk', '127.0.0.1', String(port)], { stdio: ['ignore', 'pipe', 'ignore'] });
      cleanup.push(() => nc.kill());
      const tally = new Tally();
      nc.stdout!.on('data', liner(tally));
      const sink = tcpSink(port, []);
      cleanup.push(() => sink.close());
      const total = 1200;
      const p = produce(sink, total, 100);
      cleanup.push(p.stop);
      await p.done;
      await waitFor(() => tally.distinct === total && sink.stats().written === total, 30_000, 'every record arrived and was acknowledged');
      await sink.close();
      verify(t, 'ncat -lk', sink, tally, total, [], -1);
    });
  });
});

describe('syslog sink: UDP and unix datagrams keep their behaviour', () => {
  it('UDP: each datagram sent counts written', async () => {
    await scenario(async (cleanup) => {
      const srv = createSocket('udp4');
      let got = 0;
      srv.on('message', () => got++);
      await new Promise<void>((r) => srv.bind(0, '127.0.0.1', () => r()));
      cleanup.push(() => srv.close());
      const sink = new SyslogSink({
        name: 'u', address: `udp://127.0.0.1:${srv.address().port}`, protocol: 'rfc5424', facility: 'local3', severity: 'notice',
        tag: 'ct-test', queueSize: 1000, whenFull: 'drop', warn: () => {},
      });
      for (let i = 0; i < 100; i++) sink.push(`seq=${i}`);
      sink.flush();
      await sink.close();
      assert.deepEqual({ ...sink.stats(), name: 'u' }, { name: 'u', written: 100, dropped: 0, queued: 0, errors: 0, resent: 0 });
      await waitFor(() => got === 100, 5000, 'the datagrams arrived');
    });
  });

  it('unix: a socket that is not there is retried by one timer, not one per flush', async () => {
    const warnings: string[] = [];
    const sink = new SyslogSink({
      name: 'x', address: `/nonexistent/conntrail-${process.pid}.sock`, protocol: 'rfc3164', facility: 'daemon', severity: 'info',
      tag: 'ct-test', queueSize: 1000, whenFull: 'drop', warn: (m) => warnings.push(m),
    });
    for (let i = 0; i < 10; i++) { sink.push(`seq=${i}`); sink.flush(); }
    assert.equal(sink.stats().errors, 1);
    await sink.close();
    sink.flush(); // after close: nothing
    sink.push('late');
    const st = sink.stats();
    assert.equal(st.errors, 2, 'one more try at close');
    assert.equal(st.written, 0);
    assert.equal(st.queued, 10);
    assert.equal(st.dropped, 1);
    assert.match(warnings.join('\n'), /10 records not sent at exit/);
  });
});

describe('syslog address', () => {
  it('takes unix paths, IPv4, bracketed IPv6 and host names with a port in 1-65535', () => {
    assert.deepEqual(parseAddress('/dev/log'), { kind: 'unix', path: '/dev/log' });
    assert.deepEqual(parseAddress('tcp://127.0.0.1:514'), { kind: 'tcp', host: '127.0.0.1', port: 514 });
    assert.deepEqual(parseAddress('udp://[2001:db8::1]:65535'), { kind: 'udp', host: '2001:db8::1', port: 65535 });
    assert.deepEqual(parseAddress('tcp://collector-1.example.com:1'), { kind: 'tcp', host: 'collector-1.example.com', port: 1 });
    assert.deepEqual(parseAddress('tcp://localhost:6514'), { kind: 'tcp', host: 'localhost', port: 6514 });
  });

  it('rejects ports and hosts that cannot be, saying what was expected', () => {
    assert.throws(() => parseAddress('tcp://127.0.0.1:99999'), /port 99999 is out of range \(expected 1-65535\)/);
    assert.throws(() => parseAddress('udp://127.0.0.1:0'), /port 0 is out of range/);
    assert.throws(() => parseAddress('tcp://127.0.0.256:514'), /"127\.0\.0\.256" is not an IP address or host name \(expected e\.g\./);
    assert.throws(() => parseAddress('tcp://exa_mple.com:514'), /is not an IP address or host name/);
    assert.throws(() => parseAddress('tcp://-bad.example:514'), /is not an IP address or host name/);
    assert.throws(() => parseAddress('tcp://:514'), /is not an IP address or host name/);
    assert.throws(() => parseAddress('tcp://[10.0.0.1]:514'), /in brackets is not an IPv6 address/);
    assert.throws(() => parseAddress('tcp://::1:514'), /an IPv6 address goes in brackets \(tcp:\/\/\[::1\]:514\)/);
    assert.throws(() => parseAddress('tcp://host'), /is not a unix socket path, udp:\/\/HOST:PORT or tcp:\/\/HOST:PORT/);
    assert.throws(() => parseAddress('relp://host:514'), /is not a unix socket path/);
  });
});

describe('syslog sink: RFC 5424 structured data', () => {
  it('names the namespace of a record from another one, escaped as PARAM-VALUE; the daemon\'s own and RFC 3164 have none', async () => {
    const sink = (protocol: 'rfc3164' | 'rfc5424', sdId?: string) => new SyslogSink({
      name: 's', address: 'udp://127.0.0.1:9', protocol, facility: 'daemon', severity: 'info', tag: 'ct', sdId, queueSize: 10, whenFull: 'drop', warn: () => {},
    });
    const at = new Date(Date.UTC(2026, 11, 2, 10, 0, 0, 5));
    const a = sink('rfc5424');
    assert.equal(a.message('L', at, { netns: 'qr-"a]\\b', netnsInode: 4026532000 }),
      `<30>1 2026-12-02T10:00:00.005Z ${hostname().split('.')[0]} ct ${process.pid} - [conntrail@32473 netns="qr-\\"a\\]\\\\b" netns_inode="4026532000"] L`);
    assert.equal(a.message('L', at, { netns: '', netnsInode: 0 }), `<30>1 2026-12-02T10:00:00.005Z ${hostname().split('.')[0]} ct ${process.pid} - - L`);
    const b = sink('rfc5424', 'netns@99999');
    assert.match(b.message('L', at, { netns: 'x', netnsInode: 7 }), / - \[netns@99999 netns="x" netns_inode="7"\] L$/);
    const c = sink('rfc3164');
    assert.doesNotMatch(c.message('L', at, { netns: 'x', netnsInode: 7 }), /netns/);
    assert.equal(sdValue('a"b\\c]d'), 'a\\"b\\\\c\\]d');
    await Promise.all([a.close(), b.close(), c.close()]);
  });
});
