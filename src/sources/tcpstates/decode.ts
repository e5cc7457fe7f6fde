// The tcpstates probe's records (struct event in bpf/tcpstates.bpf.c) ->
// TcpStateChange, from the batch buffer the native ring reader fills:
// [u32 LE length][record] each, padded to 8 bytes.
import { ipv4ToString, ipv6ToString } from '../../util/ip.js';
import type { TcpStateChange } from '../../records/tcpstate.js';


/** a u64 (LE) as a number: exact below 2^53 (ns since boot: 104 days; beyond, the µs still are) */
const u64 = (b: Buffer, o: number) => b.readUInt32LE(o + 4) * 4294967296 + b.readUInt32LE(o);
/** a u64 (LE) in hex, no leading zeros (the socket's address, as printf %llx) */
function hex64(b: Buffer, o: number): string {
  const hi = b.readUInt32LE(o + 4);
  const lo = b.readUInt32LE(o).toString(16);
  return hi ? hi.toString(16) + '00000000'.slice(lo.length) + lo : lo;
}

/** sizeof(struct event) */
export const EVENT_SIZE = 104;

export interface TcpstatesDecodeStats {
  records: number;
  /** records of another size than struct event (skipped) */
  malformed: number;
}

/**
 * Decodes every record of b[0, len). `monoToEpochUs`: add to a
 * CLOCK_MONOTONIC time in µs to get µs since the epoch.
 */
export function decodeTcpstatesBatch(b: Buffer, len: number, monoToEpochUs: number, stats: TcpstatesDecodeStats, out: (r: TcpStateChange) => void): void {
  let o = 0;
  while (o + 4 <= len) {
    const n = b.readUInt32LE(o);
    const p = o + 4;
    o = p + ((n + 7) & ~7);
    if (o > len) { stats.malformed++; break; }
    if (n !== EVENT_SIZE) { stats.malformed++; continue; }
    const family = b.readUInt16LE(p + 44);
    const flags = b[p + 52];
    const v4 = family === 2;
    let comm = '';
    for (let i = p + 88; i < p + 104 && b[i] !== 0; i++) comm += String.fromCharCode(b[i]);
    stats.records++;
    out({
      time: Math.floor(u64(b, p) / 1000) + monoToEpochUs,
      skaddr: hex64(b, p + 8),
      deltaNs: flags & 1 ? u64(b, p + 16) : undefined,
      cookie: u64(b, p + 24),
      netnsInode: b.readUInt32LE(p + 32),
      netns: '',
      pid: b.readUInt32LE(p + 36),
      tid: b.readUInt32LE(p + 40),
      family,
      sport: b.readUInt16LE(p + 46),
      dport: b.readUInt16LE(p + 48),
      oldState: b[p + 50],
      newState: b[p + 51],
      saddr: v4 ? ipv4ToString(b, p + 56) : ipv6ToString(b, p + 56),
      daddr: v4 ? ipv4ToString(b, p + 72) : ipv6ToString(b, p + 72),
      comm,
      kthread: (flags & 2) !== 0,
      kernelSocket: (flags & 4) !== 0,
    });
  }
}
