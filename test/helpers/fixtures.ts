// Captured netlink messages: [u32le length][u32le reserved][f64le receive µs][message], repeated.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBatch, newDecodeStats } from '../../src/sources/conntrack/decode.js';
import type { FlowEvent } from '../../src/records/event.js';

export const FIXTURE_DIR = join(process.cwd(), 'test', 'fixtures');

/** Decodes a captured fixture; throws if any message was malformed. */
export function decodeFixture(name: string, dump = false): FlowEvent[] {
  const events: FlowEvent[] = [];
  const stats = newDecodeStats();
  for (const m of readFixture(join(FIXTURE_DIR, `${name}.bin`))) {
    decodeBatch(m.bytes, m.bytes.length, stats, (ev) => { ev.recvTime = m.recvTime; events.push(ev); }, dump);
  }
  if (stats.malformed !== 0) throw new Error(`${name}: ${stats.malformed} malformed messages`);
  return events;
}

export interface RawMessage { bytes: Buffer; recvTime: number }

export function writeFixture(path: string, msgs: RawMessage[]): void {
  const parts: Buffer[] = [];
  for (const m of msgs) {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(m.bytes.length, 0);
    h.writeDoubleLE(m.recvTime, 8);
    parts.push(h, m.bytes);
  }
  writeFileSync(path, Buffer.concat(parts));
}

export function readFixture(path: string): RawMessage[] {
  const b = readFileSync(path);
  const out: RawMessage[] = [];
  let o = 0;
  while (o + 16 <= b.length) {
    const len = b.readUInt32LE(o);
    const recvTime = b.readDoubleLE(o + 8);
    out.push({ bytes: b.subarray(o + 16, o + 16 + len), recvTime });
    o += 16 + len;
  }
  return out;
}

/** Splits a received batch (concatenated datagrams) into netlink messages. */
export function splitMessages(buf: Buffer, len: number): Buffer[] {
  const out: Buffer[] = [];
  let o = 0;
  while (o + 16 <= len) {
    const l = buf.readUInt32LE(o);
    if (l < 16 || o + l > len) break;
    out.push(Buffer.from(buf.subarray(o, o + l)));
    o += (l + 3) & ~3;
  }
  return out;
}
