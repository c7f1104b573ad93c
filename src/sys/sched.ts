/**
 * Another thread's CPU affinity and I/O priority, which CRIU neither dumps nor restores (src/checkpoint/thread-state.ts
 * carries them): sched_setaffinity(2) and ioprio_get/ioprio_set(2) on a thread id of this process's PID namespace.
 * Setting either on another user's thread takes CAP_SYS_NICE (root has it); an I/O priority of the real-time class
 * takes CAP_SYS_NICE or CAP_SYS_ADMIN whoever sets it.
 */
import type { Pointer } from "bun:ffi";
import { libc, sysError } from "./libc.ts";

const SYS_ioprio_set = { x64: 251, arm64: 30 }[process.arch as "x64" | "arm64"] ?? 251;
const SYS_ioprio_get = { x64: 252, arm64: 31 }[process.arch as "x64" | "arm64"] ?? 252;
/** ioprio_get/ioprio_set's `which`: who is a thread id. */
const IOPRIO_WHO_PROCESS = 1;

/** Binds thread tid to the given CPUs (numbers as /proc's Cpus_allowed_list names them). */
export function setThreadAffinity(tid: number, cpus: readonly number[]): void {
  const max = Math.max(0, ...cpus);
  // A mask of whole 64-bit words, as glibc's cpu_set_t is laid out on LP64 (little-endian bits within each word).
  const mask = new BigUint64Array(Math.floor(max / 64) + 1);
  for (const c of cpus) mask[Math.floor(c / 64)]! |= 1n << BigInt(c % 64);
  if (libc.sched_setaffinity(tid, mask.byteLength, mask) !== 0) throw sysError(`sched_setaffinity(${tid}, ${cpus.join(",")})`);
}

/** The I/O priority of thread tid (class << 13 | level; 0: none set, the kernel derives one from its nice). */
export function threadIoprio(tid: number): number {
  // The syscall binding's third argument is a pointer type: a thread id passes as that word.
  const r = Number(libc.syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid as unknown as Pointer, 0));
  if (r < 0) throw sysError(`ioprio_get(${tid})`);
  return r;
}

/** Sets the I/O priority of thread tid (class << 13 | level). */
export function setThreadIoprio(tid: number, ioprio: number): void {
  const r = Number(libc.syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid as unknown as Pointer, ioprio));
  if (r !== 0) throw sysError(`ioprio_set(${tid}, ${ioprio})`);
}
