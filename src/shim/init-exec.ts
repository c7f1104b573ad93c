/**
 * Whether a runc container's init has exec'd the container's process yet.
 *
 * `runc start` returns before its init's execve is done: runc 1.1.12+ (and Debian's 1.1.5+ds1-1+deb12u1, with the
 * CVE-2024-21626 fix) closes every descriptor of runc init, the exec FIFO's among them, right before the execve, and
 * `runc start` returns on the FIFO's EOF. Until the execve is through, the init is still runc init: its executable
 * is runc's copy of itself, bind-mounted read-only and detached (runc's cloned_binary.c), a mount in no mount
 * namespace. A dump that seizes it fails in CRIU with `Can't lookup mount=N for fd=-3 path=/` (-3 is CRIU's
 * FD_DESC_INVALID: the exe link or a file mapping), which a checkpoint right after `ctr run -d` met under load.
 */
import { commOf } from "../sys/proc.ts";

/** The name runc's nsexec gives the init (PR_SET_NAME) until the execve gives it the program's. */
export const RUNC_INIT_COMM = "runc:[2:INIT]";

/** How long Start waits for the init's execve after `runc start` returned (normally done in well under a ms). */
export const INIT_EXEC_WAIT_MS = 2_000;

/** True while pid is runc's init that has not exec'd the container's process (false once exec'd, or gone). */
export function runcInitPending(pid: number, comm: (pid: number) => string | undefined = commOf): boolean {
  return comm(pid) === RUNC_INIT_COMM;
}

export interface AwaitInitExecOptions {
  timeoutMs?: number;
  /** First poll interval; doubles up to 20 ms. */
  pollMs?: number;
  comm?: (pid: number) => string | undefined;
  sleep?: (ms: number) => Promise<unknown>;
  now?: () => number;
}

/**
 * Waits until pid is no longer runc init (it exec'd, or it is gone). Resolves true then, false when it still is after
 * timeoutMs.
 */
export async function awaitInitExec(pid: number, o: AwaitInitExecOptions = {}): Promise<boolean> {
  const comm = o.comm ?? commOf;
  const sleep = o.sleep ?? ((ms: number) => Bun.sleep(ms));
  const now = o.now ?? (() => performance.now());
  const deadline = now() + (o.timeoutMs ?? INIT_EXEC_WAIT_MS);
  let poll = o.pollMs ?? 1;
  for (;;) {
    if (!runcInitPending(pid, comm)) return true;
    const left = deadline - now();
    if (left <= 0) return false;
    await sleep(Math.min(poll, left));
    poll = Math.min(poll * 2, 20);
  }
}
