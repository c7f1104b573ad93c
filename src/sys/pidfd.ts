/**
 * Process file descriptors: pidfd_open(2) and pidfd_getfd(2) (Linux 5.6+, glibc 2.36 wrappers).
 *
 * pidfd_getfd copies a descriptor out of another process (like SCM_RIGHTS without its cooperation);
 * it needs PTRACE_MODE_ATTACH_REALCREDS over the target (root here). cryo takes CRIU's orphan pty
 * master out of the CRIU helper this way while the helper waits in its notify callback.
 */
import { libc, sysError } from "./libc.ts";

const PIDFD_NONBLOCK = 0o4000;

/** Opens a pidfd for pid (close-on-exec is always set); `nonblock` makes waitid on it non-blocking. */
export function pidfdOpen(pid: number, options: { nonblock?: boolean } = {}): number {
  const fd = libc.pidfd_open(pid, options.nonblock ? PIDFD_NONBLOCK : 0);
  if (fd < 0) throw sysError(`pidfd_open(${pid})`);
  return fd;
}

/** Duplicates descriptor `targetFd` of the process behind `pidfd` into this process (close-on-exec set). */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  const fd = libc.pidfd_getfd(pidfd, targetFd, 0);
  if (fd < 0) throw sysError(`pidfd_getfd(${pidfd}, ${targetFd})`);
  return fd;
}

/** Copies descriptor `targetFd` out of process `pid` (pidfd_open + pidfd_getfd, the pidfd closed after). */
export function takeFdFromProcess(pid: number, targetFd: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    return pidfdGetfd(pidfd, targetFd);
  } finally {
    libc.close(pidfd);
  }
}
