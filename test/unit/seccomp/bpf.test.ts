import { expect, test } from "bun:test";
import { checkFilter, mayRun, parseFilter, possibleReturns, returnsByNr, type SockFilter } from "../../../src/seccomp/bpf.ts";
import { ALLOW, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, allowList, divX, encode, ERRNO, jeq, jset, KILL_PROCESS, ld, ldImm, ldxImm, LOG, ret, retA, TRACE, TRAP, USER_NOTIF } from "./asm.ts";

const returns = (f: SockFilter[], arch: number, nr: number) => {
  const r = possibleReturns(f, arch, nr, "t");
  return { values: [...r.values].sort(), unknown: r.unknown };
};

test("instructions round-trip through struct sock_filter bytes", () => {
  const f = allowList([0, 1, 60]);
  expect(parseFilter(encode(f), "t")).toEqual(f);
  expect(() => parseFilter(new Uint8Array(12), "t")).toThrow("a seccomp filter of 12 bytes is not a whole number of instructions");
  expect(() => parseFilter(new Uint8Array(0), "t")).toThrow("not a whole number");
  expect(() => parseFilter(new Uint8Array(8 * 4097), "t")).toThrow("a seccomp filter of 4097 instructions (the kernel allows 4096)");
});

test("an allow list: the listed calls are allowed, others ERRNO, other architectures killed", () => {
  const f = allowList([0, 1, 60]);
  checkFilter(f, "t");
  expect(returns(f, AUDIT_ARCH_X86_64, 1)).toEqual({ values: [ALLOW], unknown: false });
  expect(returns(f, AUDIT_ARCH_X86_64, 175)).toEqual({ values: [ERRNO | 1], unknown: false });
  expect(returns(f, AUDIT_ARCH_I386, 1)).toEqual({ values: [KILL_PROCESS], unknown: false });
});

test("a branch on an argument or the instruction pointer follows both ways", () => {
  // args[0] (low word at offset 16) == 0x1234 allows anything.
  const f = [ld(16), jeq(0x1234, 1, 0), ret(ERRNO | 1), ret(ALLOW)];
  expect(returns(f, AUDIT_ARCH_X86_64, 175)).toEqual({ values: [ERRNO | 1, ALLOW].sort(), unknown: false });
  const ip = [ld(8), jset(1, 0, 1), ret(TRAP), ret(ERRNO)];
  expect(returns(ip, AUDIT_ARCH_X86_64, 1).values).toEqual([TRAP, ERRNO].sort());
  // Returning an accumulator loaded from an argument: any value.
  expect(returns([ld(24), retA], AUDIT_ARCH_X86_64, 1)).toEqual({ values: [], unknown: true });
  // Arithmetic on known values stays known; a division by a zero X ends the filter with 0 (KILL_THREAD).
  expect(returns([ld(0), { code: 0x04, jt: 0, jf: 0, k: 1 }, jeq(2, 0, 1), ret(ALLOW), ret(ERRNO)], AUDIT_ARCH_X86_64, 1).values).toEqual([ALLOW]);
  expect(returns([ldImm(5), ldxImm(0), divX, ret(ALLOW)], AUDIT_ARCH_X86_64, 1).values).toEqual([0]);
});

test("paths that branch too much are refused, not explored forever", () => {
  // Twenty unknown branches in a row that meet again: 2^20 paths.
  const f: SockFilter[] = [];
  for (let i = 0; i < 20; i++) f.push(ld(16 + 8 * (i % 6)), jeq(i, 0, 1), ldImm(i));
  f.push(ret(ERRNO));
  checkFilter(f, "t");
  expect(() => possibleReturns(f, AUDIT_ARCH_X86_64, 1, "restore c1")).toThrow("restore c1: invalid argument: the seccomp filter branches too much to be checked (over 200000 steps)");
});

test("filters the kernel would not install are refused", () => {
  const bad = (f: SockFilter[]) => () => checkFilter(f, "filter 1");
  expect(bad([{ code: 0x28, jt: 0, jf: 0, k: 0 }, ret(ALLOW)])).toThrow("filter 1: invalid argument: seccomp filter instruction 0: opcode 0x28, which seccomp does not run");
  expect(bad([ld(64), ret(ALLOW)])).toThrow("instruction 0: load at offset 64, outside struct seccomp_data or unaligned");
  expect(bad([ld(2), ret(ALLOW)])).toThrow("load at offset 2");
  expect(bad([ld(0), jeq(0, 5, 0), ret(ALLOW)])).toThrow("instruction 1: jump past the end");
  expect(bad([ld(0)])).toThrow("instruction 0: the filter does not end with a return");
  expect(bad([{ code: 0x34, jt: 0, jf: 0, k: 0 }, ret(ALLOW)])).toThrow("division by the constant 0");
  expect(bad([{ code: 0x60, jt: 0, jf: 0, k: 16 }, ret(ALLOW)])).toThrow("scratch memory word 16");
});

test("which returns let a call run: ALLOW, LOG, and TRACE and USER_NOTIF (a tracer or supervisor may)", () => {
  expect([ALLOW, LOG, TRACE, USER_NOTIF, ALLOW | 5].map(mayRun)).toEqual([true, true, true, true, true]);
  expect([ERRNO | 1, KILL_PROCESS, 0, TRAP, 0x7ffe0000].map(mayRun)).toEqual([false, false, false, false, false]);
});

/** A reference: one call at a time, every unknown comparison followed both ways (no sets). */
function reference(f: readonly SockFilter[], arch: number, nr: number): { values: number[]; unknown: boolean } {
  const values = new Set<number>();
  let unknown = false;
  const U = -1;
  const run = (pc: number, A: number, X: number, M: number[]): void => {
    for (;;) {
      const { code, jt, jf, k } = f[pc]!;
      pc++;
      if (code === 0x06) return void values.add(k >>> 0);
      if (code === 0x16) return void (A === U ? (unknown = true) : values.add(A));
      if (code === 0x20) A = k === 0 ? nr : k === 4 ? arch : U;
      else if (code === 0x00) A = k;
      else if (code === 0x01) X = k;
      else if (code === 0x02) M = M.map((v, i) => (i === k ? A : v));
      else if (code === 0x60) A = M[k]!;
      else if (code === 0x07) X = A;
      else if (code === 0x87) A = X;
      else if ((code & 7) === 4) {
        const b = code & 8 ? X : k;
        if (A === U || b === U) A = U;
        else if ((code & 0xf0) === 0x30 && b === 0) return void values.add(0);
        else A = [(A + b) >>> 0, (A - b) >>> 0, Math.imul(A, b) >>> 0, Math.floor(A / b), (A | b) >>> 0, (A & b) >>> 0][(code & 0xf0) >> 4] ?? U;
      } else {
        const b = code & 8 ? X : k;
        const op = code & 0xf0;
        if (A === U || b === U) {
          run(pc + jf, A, X, M);
          pc += jt;
        } else pc += (op === 0x10 ? A === b : op === 0x20 ? A > b : op === 0x30 ? A >= b : (A & b) !== 0) ? jt : jf;
      }
    }
  };
  run(0, 0, 0, new Array(16).fill(0));
  return { values: [...values].sort(), unknown };
}

test("one pass over every call agrees with running the filter once per call (random filters)", () => {
  let seed = 7;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
  const nrs = [0, 1, 2, 3, 5, 8, 59, 60, 61, 62, 175, 200, 434, 435, 0x40000000, 0x40000001, 0x40000200];
  const rets = [ALLOW, ERRNO | 1, KILL_PROCESS, TRACE, LOG, TRAP];
  for (let round = 0; round < 300; round++) {
    const len = 6 + rand(30);
    const f: SockFilter[] = [];
    for (let pc = 0; pc < len - 1; pc++) {
      const left = len - pc - 2; // how far a jump may go
      const kind = rand(12);
      const jump = (code: number, k: number): SockFilter => ({ code, jt: rand(left + 1), jf: rand(left + 1), k });
      if (kind < 3) f.push(ld([0, 0, 4, 16, 20, 8][rand(6)]!));
      else if (kind < 7) f.push(jump([0x15, 0x25, 0x35, 0x45][rand(4)]!, rand(3) === 0 ? 0x40000000 : nrs[rand(nrs.length)]!));
      else if (kind === 7) f.push(jump(0x1d, 0)); // JEQ X
      else if (kind === 8) f.push({ code: [0x04, 0x14, 0x54, 0x44, 0x34][rand(5)]!, jt: 0, jf: 0, k: 1 + rand(4) }); // ALU K
      else if (kind === 9) f.push(rand(2) ? { code: 0x07, jt: 0, jf: 0, k: 0 } : ldxImm(nrs[rand(nrs.length)]!)); // TAX, LDX imm
      else if (kind === 10) f.push({ code: 0x02, jt: 0, jf: 0, k: 3 }, { code: 0x60, jt: 0, jf: 0, k: 3 }) && pc++;
      else f.push(rand(3) === 0 ? retA : ret(rets[rand(rets.length)]!));
    }
    while (f.length > len - 1) f.pop();
    // Jumps must stay inside after trimming.
    f.forEach((i, pc) => {
      if ((i.code & 7) === 5) {
        i.jt = Math.min(i.jt, f.length - pc - 1);
        i.jf = Math.min(i.jf, f.length - pc - 1);
      }
    });
    f.push(ret(rets[rand(rets.length)]!));
    checkFilter(f, "random");
    for (const arch of [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386]) {
      const all = returnsByNr(f, arch, nrs, "random");
      for (const nr of nrs) {
        const got = all.get(nr)!;
        expect({ round, nr, values: [...got.values].sort(), unknown: got.unknown }).toEqual({ round, nr, ...reference(f, arch, nr) });
      }
    }
  }
});
