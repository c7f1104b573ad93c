/**
 * flock(2) without blocking: the caller waits on its own event loop for a lock another process holds.
 *
 * Its own small libc handle (three symbols), not libc.ts's: the shim's `start` takes its socket's lock with it, and a
 * `start` that finds its daemon running loads no other part of libc (the whole handle costs it ~4 ms, this ~0.3 ms).
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { Errno, errnoError } from "./errno.ts";

const LOCK_EX = 2;
const LOCK_NB = 4;

const { flock, __errno_location, strerror } = dlopen("libc.so.6", {
  flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
  strerror: { args: [FFIType.i32], returns: FFIType.cstring },
}).symbols;

/** Takes an exclusive lock on fd's file: true, or false where another open file holds one (EWOULDBLOCK). */
export function tryLockExclusive(fd: number): boolean {
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const p = __errno_location() as Pointer | null;
    const e = p === null ? 0 : read.i32(p, 0);
    if (e === Errno.EINTR) continue;
    if (e === Errno.EAGAIN) return false; // EWOULDBLOCK
    throw errnoError(`flock ${fd}`, e, String(strerror(e)));
  }
}
