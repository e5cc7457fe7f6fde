// Loads the native addon (built by node-gyp at install into build/Release).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeStats {
  datagrams: number;
  bytes: number;
  batches: number;
  enobufs: number;
  truncated: number;
  wakeups: number;
  recvCalls: number;
  /** the kernel's drop count for this socket (SO_MEMINFO), -1 if unknown */
  kernelDrops: number;
  rmemAlloc: number;
  /** when the receive queue was last seen empty (µs since the epoch; 0 before start) */
  lastEmptyUs: number;
}

export interface NativeSocketOptions {
  protocol: number;
  netns?: string;
  groups?: number;
  slotSize?: number;
  slots?: number;
  bufferSize?: number;
  coalesceMs?: number;
  /** look up the process behind each message's nlmsg_pid as it is received (portidName) */
  portidNames?: boolean;
}

export interface NativeNetlinkSocket {
  readonly portid: number;
  readonly fd: number;
  addMembership(group: number): void;
  dropMembership(group: number): void;
  setRcvbuf(bytes: number): number;
  getRcvbuf(): number;
  setsockoptInt(level: number, opt: number, value: number): void;
  getsockoptInt(level: number, opt: number): number;
  attachFilter(program: Buffer): void;
  detachFilter(): void;
  send(msg: Buffer): number;
  /** onBatch(len, count, overruns, fromUs): len 0 when only an overrun is reported; every
   * message of the batch was generated after fromUs (µs: when the queue was last seen empty) */
  start(onBatch: (len: number, count: number, overruns: number, fromUs: number) => void, onError: (err: Error) => void): Buffer;
  /** the overrun count, and (µs) when the first loss since the last call may have happened, 0: none */
  takeLoss(): { overruns: number; from: number };
  pause(): void;
  resume(): void;
  stats(): NativeStats;
  /** the name of the process behind a portid of the batch being delivered (null: none held its socket when the message came; undefined: not looked up) */
  portidName(portid: number): string | null | undefined;
  close(): void;
}

export interface NativeBpfStats {
  records: number;
  bytes: number;
  batches: number;
  wakeups: number;
  /** records larger than the batch buffer (skipped; never for the fixed-size records of our programs) */
  oversized: number;
}

/** A loaded CO-RE BPF object (libbpf): its maps, its programs attached, a ring buffer read in batches. */
export interface NativeBpfObject {
  attach(): void;
  mapUpdate(map: string, key: Buffer, value: Buffer): void;
  /** deletes a key (a hash map's); false: it was not there */
  mapDelete(map: string, key: Buffer): boolean;
  /** the sum over CPUs of a per-CPU u64 value */
  perCpuSum(map: string, key: Buffer): number;
  /** onBatch(len, count): buf[0, len) holds `count` records, each [u32 LE length][bytes] padded to 8 */
  startRing(map: string, onBatch: (len: number, count: number) => void, onError: (err: Error) => void): Buffer;
  pause(): void;
  resume(): void;
  stats(): NativeBpfStats;
  /** runs of its programs the kernel skipped (the program was already running on that CPU) */
  missed(): number;
  /** detaches the programs, then delivers what the ring still holds (before it returns); returns when they were detached (CLOCK_MONOTONIC µs) */
  drain(): number;
  close(): void;
}

interface NativeModule {
  NetlinkSocket: new (opts: NativeSocketOptions) => NativeNetlinkSocket;
  /** present when the addon was built with libbpf */
  BpfObject?: new (path: string, opts?: { mapSizes?: Record<string, number>; batchBytes?: number; coalesceMs?: number }) => NativeBpfObject;
  /** why BpfObject is missing (built without libbpf) */
  bpfUnavailable?: string;
  /** CLOCK_REALTIME - CLOCK_MONOTONIC now, µs */
  monotonicToRealtimeUs(): number;
  /** one datagram to a unix socket path ("@name": abstract) */
  unixDatagramSend(path: string, data: Buffer): void;
  /** the payload in a sealed memfd, its descriptor in the datagram (journald) */
  unixDatagramSendMemfd(path: string, data: Buffer): void;
  /** bytes a connected TCP socket holds that its peer has not acknowledged (SIOCOUTQ) */
  tcpUnacked(fd: number): number;
  /** writes /proc/sys/NAME (dots for slashes) as seen from a network namespace ("" = ours) */
  writeSysctl(netns: string, name: string, value: string): void;
  /** reads /proc/sys/NAME for each name as seen from a network namespace; null where it cannot */
  readSysctl(netns: string, names: string[]): Array<string | null>;
}

function findBuilt(file: string): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'build', 'Release', file);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return undefined;
}

function findAddon(): string {
  const p = findBuilt('conntrail_native.node');
  if (!p) throw new Error('native addon not built: run "npm install" (node-gyp rebuild) in the conntrail directory');
  return p;
}

/** the path of a BPF object built at install (build/Release/NAME.bpf.o), undefined if it was not built */
export function bpfObjectPath(name: string): string | undefined {
  return findBuilt(`${name}.bpf.o`);
}

let cached: NativeModule | undefined;
export function native(): NativeModule {
  if (!cached) cached = createRequire(import.meta.url)(findAddon()) as NativeModule;
  return cached;
}
