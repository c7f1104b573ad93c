/** flock(2) without blocking: the caller waits on its own event loop for a lock another process holds. */
import { Errno, errno, libc, sysError } from "./libc.ts";

const LOCK_EX = 2;
const LOCK_NB = 4;

/** Takes an exclusive lock on fd's file: true, or false where another open file holds one (EWOULDBLOCK). */
export function tryLockExclusive(fd: number): boolean {
  for (;;) {
    if (libc.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const e = errno();
    if (e === Errno.EINTR) continue;
    if (e === Errno.EAGAIN) return false; // EWOULDBLOCK
    throw sysError(`flock ${fd}`, e);
  }
}

