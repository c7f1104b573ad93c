// A tiny classic-BPF assembler for the seccomp tests: instructions as the kernel stores them (struct sock_filter).
import type { SockFilter } from "../../../src/seccomp/bpf.ts";
import { SeccompRet } from "../../../src/seccomp/bpf.ts";

export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_I386 = 0x40000003;
export const { ALLOW, ERRNO, KILL_PROCESS, LOG, TRACE, USER_NOTIF, TRAP } = SeccompRet;

export const ld = (offset: number): SockFilter => ({ code: 0x20, jt: 0, jf: 0, k: offset }); // A = seccomp_data[offset]
export const ldImm = (k: number): SockFilter => ({ code: 0x00, jt: 0, jf: 0, k });
export const ldxImm = (k: number): SockFilter => ({ code: 0x01, jt: 0, jf: 0, k });
export const jeq = (k: number, jt: number, jf: number): SockFilter => ({ code: 0x15, jt, jf, k });
export const jset = (k: number, jt: number, jf: number): SockFilter => ({ code: 0x45, jt, jf, k });
export const ret = (k: number): SockFilter => ({ code: 0x06, jt: 0, jf: 0, k });
export const retA: SockFilter = { code: 0x16, jt: 0, jf: 0, k: 0 };
export const divX: SockFilter = { code: 0x3c, jt: 0, jf: 0, k: 0 };

export function encode(insns: readonly SockFilter[]): Uint8Array {
  const out = new Uint8Array(insns.length * 8);
  const v = new DataView(out.buffer);
  insns.forEach((i, n) => {
    v.setUint16(n * 8, i.code, true);
    v.setUint8(n * 8 + 2, i.jt);
    v.setUint8(n * 8 + 3, i.jf);
    v.setUint32(n * 8 + 4, i.k, true);
  });
  return out;
}

/** An allow list as libseccomp writes one for x86_64: other architectures killed, listed calls allowed, the rest ERRNO(EPERM). */
export function allowList(nrs: readonly number[]): SockFilter[] {
  const body: SockFilter[] = [ld(0)];
  nrs.forEach((nr, i) => body.push(jeq(nr, nrs.length - i, 0))); // to the ALLOW after the ERRNO
  body.push(ret(ERRNO | 1), ret(ALLOW));
  return [ld(4), jeq(AUDIT_ARCH_X86_64, 0, body.length), ...body, ret(KILL_PROCESS)];
}
