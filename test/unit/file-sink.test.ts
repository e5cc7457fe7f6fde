// The file sink's queue policies, with a destination that stops taking
// data: a FIFO nobody reads (until the test drains it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink } from '../../src/sinks/file.js';

function fifo(): { path: string; reader: number; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-sink-'));
  const path = join(dir, 'fifo');
  spawnSync('mkfifo', [path]);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return { path, reader, done: () => { closeSync(reader); rmSync(dir, { recursive: true, force: true }); } };
}

function drainSome(fd: number): number {
  const b = Buffer.alloc(1 << 16);
  let n = 0;
  for (;;) {
    try { const r = readSync(fd, b); if (r <= 0) return n; n += r; } catch { return n; }
  }
}

const line = 'x'.repeat(200);
const tick = () => new Promise((r) => setTimeout(r, 20));

describe('file sink queue', () => {
  it('drop: counts what it drops once full, never more than the queue holds', async () => {
    const f = fifo();
    const sink = new FileSink({ name: 't', target: f.path, queueSize: 1000, whenFull: 'drop', warn: () => {} });
    let pushed = 0;
    for (let b = 0; b < 100; b++) {
      for (let i = 0; i < 100; i++) { sink.push(line); pushed++; }
      sink.flush();
      await tick();
    }
    const st = sink.stats();
    assert.ok(st.dropped > 0, 'the pipe filled and records were dropped');
    assert.ok(st.queued <= 1000);
    assert.equal(st.written + st.dropped + st.queued, pushed);
    // the reader catches up: everything that was kept arrives
    let got = 0;
    const closed = sink.close();
    while (sink.stats().queued > 0) { got += drainSome(f.reader); await tick(); }
    await closed;
    got += drainSome(f.reader);
    assert.equal(got, (pushed - st.dropped) * (line.length + 1));
    f.done();
  });

  it('block: reports full, then drained once half of the queue is written', async () => {
    const f = fifo();
    const sink = new FileSink({ name: 't', target: f.path, queueSize: 1000, whenFull: 'block', warn: () => {} });
    let drained = 0;
    sink.onDrain(() => drained++);
    // fill it to exactly the queue size: full at the end of a batch, with
    // no push while full (the case that must still be reported drained)
    while (!sink.full()) {
      for (let i = 0; i < 100 && !sink.full(); i++) sink.push(line);
      sink.flush();
      await tick();
    }
    assert.equal(sink.stats().dropped, 0);
    assert.equal(drained, 0);
    for (let i = 0; i < 250 && drained === 0; i++) { drainSome(f.reader); await tick(); }
    assert.equal(drained, 1, 'drained once the reader caught up');
    assert.ok(!sink.full());
    const closed = sink.close();
    while (sink.stats().queued > 0) { drainSome(f.reader); await tick(); }
    await closed;
    f.done();
  });

  it('rotates by size, keeping N files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conntrail-sink-'));
    const p = join(dir, 'r.log');
    const sink = new FileSink({ name: 't', target: p, queueSize: 1000, whenFull: 'block', rotateSize: 1000, rotateKeep: 2, warn: () => {} });
    let n = 0;
    for (let b = 0; b < 10; b++) {
      for (let i = 0; i < 10; i++) sink.push(`line ${String(n++).padStart(4, '0')} ${'x'.repeat(40)}`);
      sink.flush();
      while (sink.stats().queued) await tick();
    }
    await sink.close();
    const { existsSync: ex } = await import('node:fs');
    assert.ok(ex(`${p}.1`) && ex(`${p}.2`) && !ex(`${p}.3`));
    const all = [`${p}.2`, `${p}.1`, p].flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean));
    // the newest lines, in order, across the kept files; each rotated file reached the size
    assert.deepEqual(all, all.map((_, i) => all[0].replace(/line (\d+)/, () => `line ${String(Number(/line (\d+)/.exec(all[0])![1]) + i).padStart(4, '0')}`)));
    assert.ok(readFileSync(`${p}.1`).length >= 1000);
    assert.equal(all[all.length - 1].slice(0, 9), `line ${String(n - 1).padStart(4, '0')}`);
    rmSync(dir, { recursive: true, force: true });
  });

  it('appends to a file it creates with mode 0640', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conntrail-sink-'));
    const p = join(dir, 'out.log');
    const sink = new FileSink({ name: 't', target: p, queueSize: 10, whenFull: 'block', fsync: 'batch', warn: () => {} });
    sink.push('a');
    sink.push('b');
    sink.flush();
    await sink.close();
    assert.equal(readFileSync(p, 'utf8'), 'a\nb\n');
    const { statSync } = await import('node:fs');
    assert.equal(statSync(p).mode & 0o777, 0o640);
    rmSync(dir, { recursive: true, force: true });
  });
});
