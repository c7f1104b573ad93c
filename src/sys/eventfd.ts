/** eventfd(2): a nonblocking counter descriptor (cgroup v1 OOM notification) and its nonblocking read. */
import { Errno, errno, libc, sysError } from "./libc.ts";
import { unknown } from "../errors.ts";

const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

/** Creates an eventfd with EFD_NONBLOCK | EFD_CLOEXEC; reads never block. */
export function createEventFd(): number {
  const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw sysError("eventfd");
  return fd;
}

/**
 * Reads and resets the eventfd counter without blocking: the number of events since the last read,
 * or 0n when none arrived (EAGAIN). One read() syscall.
 */
export function drainEventFd(fd: number): bigint {
  const buf = new BigUint64Array(1);
  for (;;) {
    const n = Number(libc.read(fd, buf, 8n));
    if (n === 8) return buf[0] ?? 0n;
    const e = errno();
    if (n < 0 && e === Errno.EAGAIN) return 0n;
    if (n < 0 && e === Errno.EINTR) continue;
    throw unknown(`eventfd ${fd}`, { detail: `read returned ${n} (errno ${e})` });
  }
}
