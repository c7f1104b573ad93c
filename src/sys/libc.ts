/**
 * The libc symbols cryo calls through bun:ffi, loaded once, and the errno helper.
 *
 * Internal to src/sys: nothing outside this folder imports it (src/sys/index.ts exports typed
 * functions instead). Everything here is x86_64/aarch64 Linux glibc; struct layouts used by the
 * callers assume LP64.
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import type { CryoError } from "../errors.ts";
import { errnoError } from "./errno.ts";

export { Errno, errnoOf } from "./errno.ts";

const { i32, u32, u64, i64, ptr } = FFIType;

/** libc loaded once; variadic functions (fcntl, ioctl, prctl, syscall) are declared with fixed integer/pointer args. */
export const libc = dlopen("libc.so.6", {
  prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
  waitpid: { args: [i32, ptr, i32], returns: i32 },
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, ptr, u32], returns: i32 },
  listen: { args: [i32, i32], returns: i32 },
  accept4: { args: [i32, ptr, ptr, i32], returns: i32 },
  connect: { args: [i32, ptr, u32], returns: i32 },
  recvmsg: { args: [i32, ptr, i32], returns: i64 },
  sendmsg: { args: [i32, ptr, i32], returns: i64 },
  ioctl: { args: [i32, u64, ptr], returns: i32 },
  fcntl: { args: [i32, i32, i32], returns: i32 },
  dup: { args: [i32], returns: i32 },
  dup2: { args: [i32, i32], returns: i32 },
  pipe2: { args: [ptr, i32], returns: i32 },
  close: { args: [i32], returns: i32 },
  read: { args: [i32, ptr, u64], returns: i64 },
  mount: { args: [ptr, ptr, ptr, u64, ptr], returns: i32 },
  umount2: { args: [ptr, i32], returns: i32 },
  mknod: { args: [ptr, u32, u64], returns: i32 },
  pidfd_open: { args: [i32, u32], returns: i32 },
  pidfd_getfd: { args: [i32, i32, u32], returns: i32 },
  eventfd: { args: [u32, i32], returns: i32 },
  sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: i64 },
  setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
  getsockopt: { args: [i32, i32, i32, ptr, ptr], returns: i32 },
  clock_gettime: { args: [i32, ptr], returns: i32 },
  prlimit: { args: [i32, i32, ptr, ptr], returns: i32 }, // glibc's prlimit is prlimit64 on LP64
  syscall: { args: [i64, i64, ptr, u64], returns: i64 }, // syscall(nr, a, b, c): bpf(2) and ioprio_get/set(2), which glibc does not wrap
  sched_setaffinity: { args: [i32, u64, ptr], returns: i32 },
  strerror: { args: [i32], returns: FFIType.cstring },
  __errno_location: { args: [], returns: ptr },
}).symbols;

/** Reads errno of the calling thread; call it right after the failing libc call. */
export function errno(): number {
  const p = libc.__errno_location() as Pointer | null;
  return p === null ? 0 : read.i32(p, 0);
}

/** Builds a CryoError for a failed syscall: "<call>: <strerror> (errno N)", with a code fitting the errno. */
export function sysError(call: string, err: number = errno()): CryoError & { errno: number } {
  return errnoError(call, err, String(libc.strerror(err)));
}
