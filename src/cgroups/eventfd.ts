/**
 * Minimal libc FFI for OOM notification on cgroup v1: a nonblocking eventfd and a nonblocking read of
 * its 8-byte counter. Belongs in src/sys (engineer "runtime") and should move there; kept here, behind
 * these three functions, until it does.
 */
import { dlopen, FFIType, read as readPtr, type Pointer } from "bun:ffi";
import { unknown } from "../errors.ts";

const { i32, u32, i64, u64, ptr } = FFIType;

const lib = dlopen("libc.so.6", {
  eventfd: { args: [u32, i32], returns: i32 },
  read: { args: [i32, ptr, u64], returns: i64 },
  close: { args: [i32], returns: i32 },
  __errno_location: { args: [], returns: ptr },
}).symbols;

const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const EAGAIN = 11;
const EINTR = 4;

function errno(): number {
  const p = lib.__errno_location() as Pointer | null;
  return p === null ? 0 : readPtr.i32(p, 0);
}

/** Creates an eventfd with EFD_NONBLOCK | EFD_CLOEXEC; reads never block. */
export function createEventFd(): number {
  const fd = lib.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw unknown("eventfd", { detail: `errno ${errno()}` });
  return fd;
}

/**
 * Reads and resets the eventfd counter without blocking: the number of events since the last read,
 * or 0n when none arrived (EAGAIN). One read() syscall, microseconds.
 */
export function drainEventFd(fd: number): bigint {
  const buf = new BigUint64Array(1);
  for (;;) {
    const n = Number(lib.read(fd, buf, 8));
    if (n === 8) return buf[0] ?? 0n;
    const e = errno();
    if (n < 0 && e === EAGAIN) return 0n;
    if (n < 0 && e === EINTR) continue;
    throw unknown(`eventfd ${fd}`, { detail: `read returned ${n} (errno ${e})` });
  }
}

/** Closes a descriptor made here (errors ignored: it is being thrown away). */
export function closeFd(fd: number): void {
  lib.close(fd);
}
