/**
 * Classic BPF seccomp filters, read as the kernel runs them: which values can a filter return for one system
 * call (an architecture and a number), whatever the call's arguments and instruction pointer?
 *
 * The filter is run with `nr` and `arch` known and every other field of `struct seccomp_data` unknown. A
 * conditional jump on an unknown value follows both branches, so the answer covers every argument value
 * (it may include returns no real argument reaches: it errs towards "may return"). Jumps only go forward,
 * so every path ends; the number of steps is bounded all the same (a crafted filter could branch on
 * unknown values at every instruction).
 *
 * Only what the kernel accepts in a seccomp filter (kernel/seccomp.c seccomp_check_filter, and
 * net/core/filter.c bpf_check_classic) is run; anything else is an error, as a filter the kernel would not
 * have installed cannot come from a real dump.
 */
import { invalidArgument } from "../errors.ts";

/** struct sock_filter: 16-bit opcode, two 8-bit jump offsets, 32-bit constant. */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** SECCOMP_RET_* actions (the high 16 bits of a return value; the low 16 are data such as an errno). */
export const SeccompRet = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;
const ACTION_FULL = 0xffff0000;

/**
 * Whether a return value can let the call run: ALLOW and LOG run it; TRACE and USER_NOTIF leave it to a
 * tracer or a supervisor, which may run it. Everything else (KILL_*, TRAP, ERRNO, and actions the kernel
 * does not know, which it treats as KILL_PROCESS) does not.
 */
export function mayRun(ret: number): boolean {
  const action = (ret & ACTION_FULL) >>> 0;
  return action === SeccompRet.ALLOW || action === SeccompRet.LOG || action === SeccompRet.TRACE || action === SeccompRet.USER_NOTIF;
}

/** The kernel's limit of instructions per filter (BPF_MAXINSNS). */
const MAX_INSNS = 4096;
/** sizeof(struct seccomp_data). */
const DATA_SIZE = 64;
/** Scratch memory words (BPF_MEMWORDS). */
const MEM_WORDS = 16;
/** Steps over all paths of one evaluation before giving up. */
const DEFAULT_STEP_LIMIT = 200_000;

/** Parses struct sock_filter[] (little-endian, as CRIU stores the kernel's copy). */
export function parseFilter(bytes: Uint8Array, what: string): SockFilter[] {
  if (bytes.length === 0 || bytes.length % 8 !== 0) throw invalidArgument(what, { detail: `a seccomp filter of ${bytes.length} bytes is not a whole number of instructions` });
  if (bytes.length / 8 > MAX_INSNS) throw invalidArgument(what, { detail: `a seccomp filter of ${bytes.length / 8} instructions (the kernel allows ${MAX_INSNS})` });
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: SockFilter[] = [];
  for (let off = 0; off < bytes.length; off += 8) out.push({ code: v.getUint16(off, true), jt: v.getUint8(off + 2), jf: v.getUint8(off + 3), k: v.getUint32(off + 4, true) });
  return out;
}

// Opcodes the kernel allows in seccomp filters (class | size | mode, or class | op | source).
const LD_W_ABS = 0x20;
const LD_W_LEN = 0x80;
const LDX_W_LEN = 0x81;
const LD_IMM = 0x00;
const LDX_IMM = 0x01;
const LD_MEM = 0x60;
const LDX_MEM = 0x61;
const ST = 0x02;
const STX = 0x03;
const TAX = 0x07;
const TXA = 0x87;
const RET_K = 0x06;
const RET_A = 0x16;
const JA = 0x05;
const CLASS_ALU = 0x04;
const CLASS_JMP = 0x05;
const SRC_X = 0x08;

/** An unknown value (every known value is a u32, 0 … 2^32-1). */
const UNKNOWN = -1;

/** The result of possibleReturns: every return value reached, and whether some path returns an unknown accumulator. */
export interface Returns {
  values: Set<number>;
  unknown: boolean;
}

function alu(op: number, a: number, b: number): number | "div0" {
  if (op === 0x80) return a === UNKNOWN ? UNKNOWN : -a >>> 0; // NEG: no operand
  if (a === UNKNOWN || b === UNKNOWN) return UNKNOWN;
  switch (op) {
    case 0x00: return (a + b) >>> 0;
    case 0x10: return (a - b) >>> 0;
    case 0x20: return Math.imul(a, b) >>> 0;
    case 0x30: return b === 0 ? "div0" : Math.floor(a / b) >>> 0;
    case 0x40: return (a | b) >>> 0;
    case 0x50: return (a & b) >>> 0;
    case 0x60: return b >= 32 ? UNKNOWN : (a << b) >>> 0;
    case 0x70: return b >= 32 ? UNKNOWN : a >>> b;
    case 0x80: return -a >>> 0;
    case 0x90: return b === 0 ? "div0" : a % b;
    case 0xa0: return (a ^ b) >>> 0;
    default: return UNKNOWN;
  }
}

/**
 * Checks a filter as the kernel does before installing it: known opcodes only, loads within seccomp_data and
 * aligned, scratch memory indexes in range, jumps within the program, and a return at the end.
 */
export function checkFilter(filter: readonly SockFilter[], what: string): void {
  const bad = (pc: number, detail: string) => invalidArgument(what, { detail: `seccomp filter instruction ${pc}: ${detail}` });
  filter.forEach((insn, pc) => {
    const { code, k } = insn;
    switch (code) {
      case LD_W_ABS:
        if (k >= DATA_SIZE || k % 4 !== 0) throw bad(pc, `load at offset ${k}, outside struct seccomp_data or unaligned`);
        return;
      case LD_MEM: case LDX_MEM: case ST: case STX:
        if (k >= MEM_WORDS) throw bad(pc, `scratch memory word ${k}`);
        return;
      case LD_W_LEN: case LDX_W_LEN: case LD_IMM: case LDX_IMM: case TAX: case TXA: case RET_K: case RET_A:
        return;
      case JA:
        if (pc + 1 + k >= filter.length) throw bad(pc, "jump past the end");
        return;
    }
    if ((code & 0x07) === CLASS_ALU && (code & ~0xf8 & 0xffff) === CLASS_ALU && (code >> 4) <= 0xa) {
      const op = code & 0xf0;
      if ((op === 0x30 || op === 0x90) && (code & SRC_X) === 0 && k === 0) throw bad(pc, "division by the constant 0");
      if (op === 0x80 && (code & SRC_X) !== 0) throw bad(pc, `opcode 0x${code.toString(16)}`);
      return;
    }
    if ((code & 0x07) === CLASS_JMP && [0x10, 0x20, 0x30, 0x40].includes(code & 0xf0) && (code & ~0xf8 & 0xffff) === CLASS_JMP) {
      if (pc + 1 + Math.max(insn.jt, insn.jf) >= filter.length) throw bad(pc, "jump past the end");
      return;
    }
    throw bad(pc, `opcode 0x${code.toString(16)}, which seccomp does not run`);
  });
  const last = filter[filter.length - 1]!.code;
  if (last !== RET_K && last !== RET_A) throw bad(filter.length - 1, "the filter does not end with a return");
}

/** The accumulator, X or a scratch word holds the call's number itself (the path's set says which numbers). */
const NR = -2;

/**
 * Every value the (checked) filter can return for each call of `nrs` of architecture `arch` (an AUDIT_ARCH_*),
 * over all instruction pointers and arguments, in one pass: a path carries the set of call numbers that reach
 * it, and a comparison of the number splits that set (a linear list of 300 calls is walked once, not 300
 * times). Arithmetic on the number splits the set into one path per number. Throws INVALID_ARGUMENT when the
 * paths take more than `stepLimit` steps in all.
 */
export function returnsByNr(filter: readonly SockFilter[], arch: number, nrs: Iterable<number>, what: string, stepLimit = DEFAULT_STEP_LIMIT): Map<number, Returns> {
  const out = new Map<number, Returns>();
  for (const nr of nrs) out.set(nr >>> 0, { values: new Set(), unknown: false });
  if (out.size === 0) return out;
  // A path: [pc, A, X, M0..M15] and the call numbers that follow it.
  const stack: { regs: number[]; nrs: Set<number> }[] = [{ regs: [0, 0, 0, ...new Array<number>(MEM_WORDS).fill(0)], nrs: new Set(out.keys()) }];
  const at = (v: number, nr: number) => (v === NR ? nr : v);
  let steps = 0;
  while (stack.length > 0) {
    const { regs: s, nrs: set } = stack.pop()!;
    for (;;) {
      if (++steps > stepLimit) throw invalidArgument(what, { detail: `the seccomp filter branches too much to be checked (over ${stepLimit} steps)` });
      const pc = s[0]!;
      const { code, jt, jf, k } = filter[pc]!;
      s[0] = pc + 1;
      if (code === RET_K) {
        for (const nr of set) out.get(nr)!.values.add(k >>> 0);
        break;
      }
      if (code === RET_A) {
        for (const nr of set) {
          const r = out.get(nr)!;
          if (s[1] === UNKNOWN) r.unknown = true;
          else r.values.add(at(s[1]!, nr));
        }
        break;
      }
      switch (code) {
        case LD_W_ABS: s[1] = k === 0 ? NR : k === 4 ? arch >>> 0 : UNKNOWN; continue;
        case LD_W_LEN: s[1] = DATA_SIZE; continue;
        case LDX_W_LEN: s[2] = DATA_SIZE; continue;
        case LD_IMM: s[1] = k >>> 0; continue;
        case LDX_IMM: s[2] = k >>> 0; continue;
        case LD_MEM: s[1] = s[3 + k]!; continue;
        case LDX_MEM: s[2] = s[3 + k]!; continue;
        case ST: s[3 + k] = s[1]!; continue;
        case STX: s[3 + k] = s[2]!; continue;
        case TAX: s[2] = s[1]!; continue;
        case TXA: s[1] = s[2]!; continue;
        case JA: s[0] = pc + 1 + k; continue;
      }
      const a = s[1]!;
      const b = (code & SRC_X) !== 0 ? s[2]! : k >>> 0;
      const isAlu = (code & 0x07) === CLASS_ALU;
      const op = code & 0xf0;
      if ((a === NR || (b === NR && !(isAlu && op === 0x80))) && a !== UNKNOWN && b !== UNKNOWN) {
        if (isAlu) {
          // Arithmetic on the call's number: one path per number, each with the number known, to run this instruction again.
          s[0] = pc;
          for (const nr of set) stack.push({ regs: s.map((v, i) => (i === 0 ? v : at(v, nr))), nrs: new Set([nr]) });
          break;
        }
        // A comparison with the call's number: split the set.
        let yes: Set<number>;
        let no: Set<number>;
        if (op === 0x10 && (a === NR) !== (b === NR)) {
          const key = a === NR ? b : a;
          yes = set.has(key) ? new Set([key]) : new Set();
          no = set;
          no.delete(key);
        } else {
          yes = new Set();
          no = new Set();
          for (const nr of set) (compare(op, at(a, nr), at(b, nr)) ? yes : no).add(nr);
        }
        if (yes.size > 0 && no.size > 0) stack.push({ regs: [pc + 1 + jt, ...s.slice(1)], nrs: yes });
        if (no.size > 0) {
          s[0] = pc + 1 + jf;
          if (no !== set) {
            stack.push({ regs: s, nrs: no });
            break;
          }
          continue;
        }
        s[0] = pc + 1 + jt;
        stack.push({ regs: s, nrs: yes });
        break;
      }
      if (isAlu) {
        const r = alu(op, a, b);
        if (r === "div0") {
          // The kernel ends the filter and returns 0 (SECCOMP_RET_KILL_THREAD).
          for (const nr of set) out.get(nr)!.values.add(0);
          break;
        }
        s[1] = r;
        continue;
      }
      // A conditional jump on known or unknown values.
      if (a !== UNKNOWN && b !== UNKNOWN) {
        s[0] = pc + 1 + (compare(op, a, b) ? jt : jf);
        continue;
      }
      if (jt !== jf) stack.push({ regs: [pc + 1 + jf, ...s.slice(1)], nrs: new Set(set) });
      s[0] = pc + 1 + jt;
    }
  }
  return out;
}

function compare(op: number, a: number, b: number): boolean {
  return op === 0x10 ? a === b : op === 0x20 ? a > b : op === 0x30 ? a >= b : (a & b) !== 0;
}

/** returnsByNr for one call. */
export function possibleReturns(filter: readonly SockFilter[], arch: number, nr: number, what: string, stepLimit = DEFAULT_STEP_LIMIT): Returns {
  return returnsByNr(filter, arch, [nr], what, stepLimit).get(nr >>> 0)!;
}
