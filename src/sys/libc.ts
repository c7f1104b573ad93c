/**
 * The libc symbols cryo calls through bun:ffi, loaded once, and the errno helper.
 *
 * Internal to src/sys: nothing outside this folder imports it (src/sys/index.ts exports typed
 * functions instead). Everything here is x86_64/aarch64 Linux glibc; struct layouts used by the
 * callers assume LP64.
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { Code, CryoError } from "../errors.ts";

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
  flock: { args: [i32, i32], returns: i32 },
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

/** errno numbers cryo reacts to. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOTTY: 25,
  EADDRINUSE: 98,
} as const;

/** Reads errno of the calling thread; call it right after the failing libc call. */
export function errno(): number {
  const p = libc.__errno_location() as Pointer | null;
  return p === null ? 0 : read.i32(p, 0);
}

/** Builds a CryoError for a failed syscall: "<call>: <strerror> (errno N)", with a code fitting the errno. */
export function sysError(call: string, err: number = errno()): CryoError & { errno: number } {
  const text = String(libc.strerror(err));
  const code =
    err === Errno.ENOENT || err === Errno.ECHILD || err === Errno.ESRCH
      ? Code.NOT_FOUND
      : err === Errno.EEXIST || err === Errno.EADDRINUSE
        ? Code.ALREADY_EXISTS
        : err === Errno.EINVAL || err === Errno.EBADF || err === Errno.ENOTTY
          ? Code.INVALID_ARGUMENT
          : err === Errno.EPERM || err === Errno.EACCES
            ? Code.PERMISSION_DENIED
            : err === Errno.EAGAIN
              ? Code.UNAVAILABLE
              : err === Errno.EBUSY
                ? Code.FAILED_PRECONDITION
                : Code.UNKNOWN;
  const e = new CryoError(code, `${call}: ${text} (errno ${err})`) as CryoError & { errno: number };
  e.errno = err;
  return e;
}

/** Returns the errno carried by an error from sysError, or undefined. */
export function errnoOf(err: unknown): number | undefined {
  return err instanceof CryoError && typeof (err as { errno?: unknown }).errno === "number"
    ? (err as unknown as { errno: number }).errno
    : undefined;
}
