/**
 * errno numbers and the error of a failed syscall, without bun:ffi: src/sys/libc.ts builds on it, and so does a
 * small libc handle (flock.ts) that a `start` of the shim loads without the whole of libc.ts.
 */
import { Code, CryoError } from "../errors.ts";

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

/** A CryoError for a failed syscall: "<call>: <text> (errno N)" (text: strerror's), with a code fitting the errno. */
export function errnoError(call: string, err: number, text: string): CryoError & { errno: number } {
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
