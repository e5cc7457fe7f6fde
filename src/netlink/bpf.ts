// A tiny classic-BPF assembler with labels, for socket filters
// (SO_ATTACH_FILTER). Instructions encode as struct sock_filter in host
// (little-endian) order.

export const BPF = {
  LD: 0x00, LDX: 0x01, ST: 0x02, ALU: 0x04, JMP: 0x05, RET: 0x06, MISC: 0x07,
  W: 0x00, H: 0x08, B: 0x10,
  IMM: 0x00, ABS: 0x20, IND: 0x40, MEM: 0x60,
  AND: 0x50, JA: 0x00, JEQ: 0x10, JGT: 0x20, JGE: 0x30, K: 0x00, X: 0x08, TAX: 0x00,
} as const;

const SKF_AD_OFF = -0x1000;
export const SKF_AD_NLATTR = 12;
export const SKF_AD_NLATTR_NEST = 16;

/** Accept the whole packet / drop it. */
export const ACCEPT = 0xffffffff;
export const DROP = 0;

interface Insn {
  code: number;
  k: number;
  jt?: string | number;
  jf?: string | number;
  /** for JA: label */
  target?: string;
}

export class BpfProgram {
  private insns: Insn[] = [];
  private labels = new Map<string, number>();
  private seq = 0;

  /** a fresh unique label name */
  label(prefix = 'L'): string {
    return `${prefix}${this.seq++}`;
  }

  here(name: string): this {
    if (this.labels.has(name)) throw new Error(`bpf: label ${name} defined twice`);
    this.labels.set(name, this.insns.length);
    return this;
  }

  get length(): number {
    return this.insns.length;
  }

  private emit(i: Insn): this {
    this.insns.push(i);
    return this;
  }

  /** A = packet[k] (W/H/B, big-endian) */
  ldAbs(size: number, k: number): this { return this.emit({ code: BPF.LD | size | BPF.ABS, k }); }
  /** A = packet[X + k] */
  ldInd(size: number, k: number): this { return this.emit({ code: BPF.LD | size | BPF.IND, k }); }
  ldImm(k: number): this { return this.emit({ code: BPF.LD | BPF.IMM, k }); }
  ldMem(slot: number): this { return this.emit({ code: BPF.LD | BPF.MEM, k: slot }); }
  ldxImm(k: number): this { return this.emit({ code: BPF.LDX | BPF.IMM, k }); }
  st(slot: number): this { return this.emit({ code: BPF.ST, k: slot }); }
  tax(): this { return this.emit({ code: BPF.MISC | BPF.TAX, k: 0 }); }
  and(k: number): this { return this.emit({ code: BPF.ALU | BPF.AND | BPF.K, k }); }
  /** A = offset of the attribute of type X in the attributes starting at A, or 0 */
  nlattr(): this { return this.emit({ code: BPF.LD | BPF.B | BPF.ABS, k: SKF_AD_OFF + SKF_AD_NLATTR }); }
  /** A = offset of the attribute of type X inside the nest whose header is at A, or 0 */
  nlattrNest(): this { return this.emit({ code: BPF.LD | BPF.B | BPF.ABS, k: SKF_AD_OFF + SKF_AD_NLATTR_NEST }); }
  /** if A == k goto jt else goto jf (labels, or 0 = next instruction) */
  jeq(k: number, jt: string | 0, jf: string | 0): this { return this.emit({ code: BPF.JMP | BPF.JEQ | BPF.K, k, jt, jf }); }
  ja(target: string): this { return this.emit({ code: BPF.JMP | BPF.JA, k: 0, target }); }
  ret(k: number): this { return this.emit({ code: BPF.RET | BPF.K, k }); }

  /** Resolves labels and encodes; throws if a conditional jump is too long. */
  assemble(): Buffer {
    const out = Buffer.alloc(this.insns.length * 8);
    this.insns.forEach((ins, i) => {
      const rel = (t: string | number | undefined, what: string): number => {
        if (t === undefined || t === 0) return 0;
        const at = this.labels.get(String(t));
        if (at === undefined) throw new Error(`bpf: undefined label ${t}`);
        const d = at - (i + 1);
        if (d < 0) throw new Error(`bpf: backward jump to ${t}`);
        if (what !== 'ja' && d > 255) throw new Error(`bpf: jump to ${t} too long (${d})`);
        return d;
      };
      let k = ins.k;
      let jt = 0;
      let jf = 0;
      if (ins.target !== undefined) k = rel(ins.target, 'ja');
      else {
        jt = rel(ins.jt, 'jt');
        jf = rel(ins.jf, 'jf');
      }
      out.writeUInt16LE(ins.code, i * 8);
      out.writeUInt8(jt, i * 8 + 2);
      out.writeUInt8(jf, i * 8 + 3);
      out.writeUInt32LE(k >>> 0, i * 8 + 4);
    });
    return out;
  }
}

/** A 16-bit host-order (little-endian) field as BPF_H|BPF_ABS loads it (big-endian). */
export function hostU16AsLoaded(v: number): number {
  return ((v & 0xff) << 8) | ((v >> 8) & 0xff);
}

/**
 * Runs a program over a packet in JS, as the kernel would (only the
 * instructions BpfProgram emits). For tests: the kernel has the last word.
 */
export function runBpf(prog: Buffer, pkt: Uint8Array): number {
  const mem = new Uint32Array(16);
  let A = 0;
  let X = 0;
  const len = pkt.length;
  const u16le = (o: number) => pkt[o] | (pkt[o + 1] << 8);
  const load = (size: number, off: number): number | undefined => {
    const n = size === BPF.W ? 4 : size === BPF.H ? 2 : 1;
    if (off < 0 || off + n > len) return undefined;
    let v = 0;
    for (let i = 0; i < n; i++) v = (v * 256) + pkt[off + i];
    return v >>> 0;
  };
  const nlaFind = (start: number, end: number, type: number): number => {
    let o = start;
    while (o + 4 <= end) {
      const l = u16le(o);
      if (l < 4 || o + l > end) return 0;
      if ((u16le(o + 2) & 0x3fff) === type) return o;
      o += (l + 3) & ~3;
    }
    return 0;
  };
  for (let pc = 0; pc < prog.length / 8; pc++) {
    const code = prog.readUInt16LE(pc * 8);
    const jt = prog[pc * 8 + 2];
    const jf = prog[pc * 8 + 3];
    const k = prog.readUInt32LE(pc * 8 + 4);
    const cls = code & 0x07;
    if (cls === BPF.LD) {
      const mode = code & 0xe0;
      const size = code & 0x18;
      if (mode === BPF.IMM) A = k;
      else if (mode === BPF.MEM) A = mem[k];
      else if (mode === BPF.ABS && (k | 0) === SKF_AD_OFF + SKF_AD_NLATTR) {
        A = A > len - 4 ? 0 : nlaFind(A, len, X);
      } else if (mode === BPF.ABS && (k | 0) === SKF_AD_OFF + SKF_AD_NLATTR_NEST) {
        if (A > len - 4) { A = 0; continue; }
        const nl = u16le(A);
        if (nl > len - A) { A = 0; continue; }
        A = nlaFind(A + 4, A + nl, X);
      } else {
        const v = load(size, mode === BPF.ABS ? k : X + k);
        if (v === undefined) return 0;
        A = v;
      }
    } else if (cls === BPF.LDX) X = k;
    else if (cls === BPF.ST) mem[k] = A;
    else if (cls === BPF.MISC) X = A;
    else if (cls === BPF.ALU) A = (A & k) >>> 0;
    else if (cls === BPF.JMP) {
      if ((code & 0xf0) === BPF.JA) pc += k;
      else pc += A === k ? jt : jf;
    } else if (cls === BPF.RET) return k;
  }
  return 0;
}
