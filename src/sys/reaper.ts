/**
 * The reaper: collects the exit status of every child of this process that Bun did not spawn.
 *
 * Who are those children: the shim is a child subreaper, so a container's init (started by
 * `runc create`, whose runc parent exits) and `runc exec --detach` processes are reparented to it.
 * Bun reaps its own Bun.spawn children itself (it holds a pidfd for each until it has waited for
 * it); the reaper must never steal those statuses, or Bun would lose their exit codes.
 *
 * How: on every SIGCHLD (Bun delivers it through `process.on("SIGCHLD")`; signals coalesce, so each
 * delivery triggers a full scan) the reaper
 *   1. waitpid(pid, WNOHANG)s every pid someone is watching (those are ours by contract), then
 *   2. lists this process's children (/proc/self/task/{*}/children), and for each zombie that
 *      nobody watches and that Bun does not hold a pidfd for, reaps it and keeps its exit until
 *      someone calls `watch(pid)` for it (a container can exit before its pid file is read). A kept
 *      exit whose pid a newer child of ours has since is that child's no more: `watch` waits for the child.
 * While watches are pending a backstop timer (default 1 s) rescans, and keeps the event loop alive.
 *
 * Exit status as containerd reports it: the exit code, or 128 + signal number when killed.
 * There is at most one active reaper per process.
 */
import { failedPrecondition, invalidArgument } from "../errors.ts";
import { wallClock, type WallTime } from "./clock.ts";
import { Errno, errno, libc, sysError } from "./libc.ts";
import { setChildSubreaper } from "./prctl.ts";
import { listChildren, pidfdTargets, readProcStat } from "./proc.ts";
import { decodeWaitStatus, type ExitInfo } from "./wait-status.ts";

const WNOHANG = 1;

/** One collected exit. */
export interface Exit extends ExitInfo {
  pid: number;
  /** When the reaper collected the status (within one SIGCHLD delivery of the real exit). */
  exitedAt: WallTime;
}

/** Options of createReaper. */
export interface ReaperOptions {
  /** Make this process a child subreaper first (default true). */
  subreaper?: boolean;
  /** Children the reaper must leave alone although Bun did not spawn them (say, a library that forks and waits itself). */
  skip?: (pid: number, comm: string) => boolean;
  /** How many unclaimed exits to keep; the oldest are dropped beyond it (default 4096). */
  maxUnclaimed?: number;
  /** Rescan interval while watches are pending, a backstop for lost signals (default 1000 ms; 0 disables). */
  backstopMs?: number;
}

/** Collects exits of reparented children; see the module comment for who reaps what. */
export interface Reaper extends Disposable {
  /**
   * Resolves with the exit of pid, a child of this process not spawned by Bun.spawn. An exit
   * collected before the call is delivered at once (and only once). Rejects with
   * FAILED_PRECONDITION when pid is not a child of this process.
   */
  watch(pid: number): Promise<Exit>;
  /** Calls listener for every exit this reaper collects (watched or not); returns the unsubscribe function. */
  onExit(listener: (exit: Exit) => void): () => void;
  /** Takes a collected exit nobody watched yet, without waiting (undefined if none). */
  take(pid: number): Exit | undefined;
  /** Scans now (what SIGCHLD triggers); useful right after runc exits. */
  reap(): void;
}

let active = false;

/** Starts the reaper: child subreaper + SIGCHLD handling. Dispose it to stop (pending watches are rejected). */
export function createReaper(options: ReaperOptions = {}): Reaper {
  if (active) throw failedPrecondition("reaper", { detail: "one is already active in this process" });
  if (options.subreaper ?? true) setChildSubreaper(true);
  active = true;

  const maxUnclaimed = options.maxUnclaimed ?? 4096;
  const backstopMs = options.backstopMs ?? 1000;
  const statusBuf = new Int32Array(1);
  const unclaimed = new Map<number, Exit>();
  const waiting = new Map<number, { promise: Promise<Exit>; resolve: (e: Exit) => void; reject: (e: unknown) => void }>();
  const listeners = new Set<(exit: Exit) => void>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let disposed = false;

  /** waitpid(pid, WNOHANG): an Exit, "running", or "not-child". */
  function tryWait(pid: number): Exit | "running" | "not-child" {
    for (;;) {
      const r = libc.waitpid(pid, statusBuf, WNOHANG);
      if (r === pid) return { pid, ...decodeWaitStatus(statusBuf[0] ?? 0), exitedAt: wallClock() };
      if (r === 0) return "running";
      const err = errno();
      if (err === Errno.EINTR) continue;
      if (err === Errno.ECHILD) return "not-child";
      throw sysError(`waitpid(${pid})`, err);
    }
  }

  function emit(exit: Exit): void {
    for (const l of listeners) {
      try {
        l(exit);
      } catch {
        // a listener's failure must not stop reaping
      }
    }
  }

  function deliver(exit: Exit): void {
    const w = waiting.get(exit.pid);
    if (w) {
      waiting.delete(exit.pid);
      w.resolve(exit);
    } else {
      // A kept exit of this pid is an older process's (the pid was used again): the newer exit replaces it, last.
      unclaimed.delete(exit.pid);
      unclaimed.set(exit.pid, exit);
      while (unclaimed.size > maxUnclaimed) {
        const oldest = unclaimed.keys().next().value;
        if (oldest === undefined) break;
        unclaimed.delete(oldest);
      }
    }
    emit(exit);
    syncTimer();
  }

  function syncTimer(): void {
    if (waiting.size > 0 && timer === undefined && backstopMs > 0 && !disposed) {
      timer = setInterval(reap, backstopMs);
    } else if (waiting.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  }

  function reap(): void {
    if (disposed) return;
    for (const [pid, w] of [...waiting]) {
      const r = tryWait(pid);
      if (r === "running") continue;
      if (r === "not-child") {
        waiting.delete(pid);
        w.reject(failedPrecondition(`pid ${pid}`, { detail: "not a child of this process (or reaped elsewhere)" }));
        continue;
      }
      deliver(r);
    }
    const zombies: { pid: number; comm: string }[] = [];
    for (const pid of listChildren()) {
      // A child with the pid of a kept exit is a newer process (that exit's process was reaped): it is scanned too.
      if (waiting.has(pid)) continue;
      const st = readProcStat(pid);
      if (st?.state === "Z") zombies.push({ pid, comm: st.comm });
    }
    if (zombies.length === 0) return;
    const bunOwned = pidfdTargets();
    for (const z of zombies) {
      if (bunOwned.has(z.pid)) continue;
      if (options.skip?.(z.pid, z.comm)) continue;
      const r = tryWait(z.pid);
      if (typeof r === "object") deliver(r);
    }
    syncTimer();
  }

  // A burst of exits (a thousand `runc ps` of concurrent Pids calls) is a burst of SIGCHLDs, and each scan reads every
  // child's stat and every fd: one scan per burst (the next turn of the event loop), not one per signal.
  let scanDue = false;
  const onSigchld = (): void => {
    if (scanDue) return;
    scanDue = true;
    setImmediate(() => {
      scanDue = false;
      reap();
    });
  };
  process.on("SIGCHLD", onSigchld);

  return {
    watch(pid: number): Promise<Exit> {
      if (disposed) return Promise.reject(failedPrecondition("reaper", { detail: "disposed" }));
      if (!Number.isInteger(pid) || pid <= 0) return Promise.reject(invalidArgument(`pid ${pid}`));
      const done = unclaimed.get(pid);
      if (done) {
        unclaimed.delete(pid);
        // The kept exit is this pid's only while no other child of ours has the pid since: exits nobody watches
        // (processes a failed CRIU restore forked, say) stay kept, and the kernel gives their pids to new
        // processes, such as a later container's init, which that old exit would otherwise end at once.
        // (A pid Bun.spawn holds now is not waited for here: that would take its status from Bun.)
        if (pidfdTargets().has(pid)) return Promise.resolve(done);
        const now = tryWait(pid);
        if (now === "not-child") return Promise.resolve(done);
        if (now !== "running") {
          emit(now);
          return Promise.resolve(now);
        }
      }
      const pending = waiting.get(pid);
      if (pending) return pending.promise;
      if (pidfdTargets().has(pid)) {
        return Promise.reject(invalidArgument(`pid ${pid}`, { detail: "spawned by Bun.spawn: await its .exited instead" }));
      }
      const r = tryWait(pid);
      if (r === "not-child") {
        return Promise.reject(failedPrecondition(`pid ${pid}`, { detail: "not a child of this process" }));
      }
      if (r !== "running") {
        emit(r);
        return Promise.resolve(r);
      }
      let resolve!: (e: Exit) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<Exit>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      waiting.set(pid, { promise, resolve, reject });
      syncTimer();
      return promise;
    },
    onExit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    take(pid) {
      const e = unclaimed.get(pid);
      if (e) unclaimed.delete(pid);
      return e;
    },
    reap,
    [Symbol.dispose]() {
      if (disposed) return;
      disposed = true;
      process.off("SIGCHLD", onSigchld);
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      for (const [pid, w] of waiting) w.reject(failedPrecondition("reaper", { detail: `disposed while watching pid ${pid}` }));
      waiting.clear();
      unclaimed.clear();
      listeners.clear();
      active = false;
    },
  };
}
