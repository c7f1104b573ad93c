/**
 * Starting CRIU helpers, and the one helper kept started ahead (warm) for the next call, process-wide.
 *
 * A light module (no zod, no protobuf, nothing of the client): a caller can start the warm helper before it
 * loads the rest of src/criu, e.g. the shim when a daemon's first Checkpoint or restore Create arrives and the
 * checkpoint engine still has to be loaded (25-60 ms of module evaluation under load): the helper then
 * starts beside that load instead of after it. `createCriu({ warm: true })` clients take it from here.
 *
 *   void import("../criu/warm.ts").then((w) => w.prewarmCriuHelper());
 */
import { join } from "node:path";
import { childrenOf } from "../sys/proc.ts";
import { CRIU_HELPER_WARM_ENV } from "./helper-env.ts";
import { CRIU_HELPER_ARG } from "./wire.ts";

/**
 * The helper's argv: the compiled binary with `__criu`, or bun with worker-main.ts from source.
 * Compiled, it is `/proc/self/exe` rather than process.execPath: the very binary this process runs (the
 * kernel holds its inode), so the helper speaks this process's protocol even after the file was replaced
 * or removed (an upgrade, a rebuild while shims run: execPath then names a new binary, or "... (deleted)").
 */
export function helperCommand(): string[] {
  const override = process.env.CRYO_CRIU_HELPER;
  if (override) return override.split(" ").filter((s) => s.length > 0);
  const compiled = import.meta.path.startsWith("/$bunfs/") || Bun.main.startsWith("/$bunfs/");
  if (compiled) return ["/proc/self/exe", CRIU_HELPER_ARG];
  return [process.execPath, join(import.meta.dir, "worker-main.ts")];
}

/** Starts a helper process (extra descriptors become its fds 3, 4, ...). */
export function spawnHelper(cmd: string[], extraFds: number[], env: Record<string, string> = {}) {
  return Bun.spawn(cmd, {
    stdio: ["pipe", "pipe", "pipe", ...extraFds] as ["pipe", "pipe", "pipe", ...number[]],
    env: { ...process.env, ...env },
  });
}

/** A helper process. */
export type HelperProcess = ReturnType<typeof spawnHelper>;

/** How long a warm helper waits for a call before it is killed, by default. */
export const WARM_IDLE_MS = 60_000;

// The warm helper: at most one per process, waiting on its stdin; unref'd so it never keeps the process alive.
let idle: { proc: HelperProcess; cmd: string } | undefined;
let idleTimer: ReturnType<typeof setTimeout> | undefined;

const alive = (p: HelperProcess) => p.exitCode === null && p.signalCode === null;

/**
 * Starts a warm helper (argv cmd, default helperCommand()) unless one with the same argv is alive; it is
 * killed after idleMs without a call. A failed spawn is ignored: the next call then starts one cold.
 */
export function prewarmCriuHelper(cmd: string[] = helperCommand(), idleMs = WARM_IDLE_MS): void {
  const key = cmd.join("\0");
  if (idle && idle.cmd === key && alive(idle.proc)) return;
  let proc: HelperProcess;
  try {
    proc = spawnHelper(cmd, [], { [CRIU_HELPER_WARM_ENV]: "1" });
  } catch {
    return;
  }
  if (idle) idle.proc.kill("SIGKILL"); // dead, or started for another argv
  proc.unref();
  idle = { proc, cmd: key };
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    if (idle?.proc === proc) idle = undefined;
    proc.kill("SIGKILL");
  }, idleMs);
  idleTimer.unref();
}

/** The warm helper for argv cmd if one is alive; it is the caller's from then on (ref'd again). */
export function takeWarmCriuHelper(cmd: string[]): HelperProcess | undefined {
  if (!idle || idle.cmd !== cmd.join("\0")) return undefined;
  const { proc } = idle;
  idle = undefined;
  clearTimeout(idleTimer);
  if (!alive(proc)) return undefined;
  proc.ref();
  return proc;
}

// Warm helpers told to join a restore's cgroups ahead of its request (prejoin), with their argv and cgroup directories.
// Here rather than in the client, so that the shim can have the helper join before it loads the client.
const joined: { cmd: string; dirs: string[]; proc: HelperProcess; timer: ReturnType<typeof setTimeout> }[] = [];

/**
 * Has the warm helper for argv cmd join these cgroup directories now (first thing, before any request): a
 * restore's call with the same joinCgroups then uses it (takeJoinedCriuHelper). The kernel's cgroup move
 * takes 10-15 ms here (an RCU grace period), which then overlaps the caller's work instead of the call.
 * Without a waiting helper: does nothing (the restore's helper joins then). Undo with releaseJoinedCriuHelper.
 */
export function prejoinCriuHelper(cmd: string[], dirs: string[], idleMs = WARM_IDLE_MS): void {
  if (dirs.length === 0) return;
  releaseJoinedCriuHelper(cmd, dirs);
  const proc = takeWarmCriuHelper(cmd);
  if (!proc) return;
  try {
    proc.stdin.write(`${JSON.stringify({ op: "join", dirs })}\n`);
    const flushed = proc.stdin.flush();
    if (flushed instanceof Promise) flushed.catch(() => {});
  } catch {
    // gone: the restore finds it dead and fails with its exit
  }
  // A restore whose Start never comes (its containerd restarted between Create and Start, or its client gone) kept the
  // helper in the container's cgroups until the task's Delete: after idleMs it is killed, as an unused warm helper is,
  // and a Start after that has its own helper join the cgroups then (a cold start, 10-15 ms more, nothing lost).
  const entry = { cmd: cmd.join("\0"), dirs: [...dirs], proc, timer: setTimeout(() => releaseEntry(entry), idleMs) };
  entry.timer.unref();
  joined.push(entry);
}

/** Drops a joined helper no restore took (its idle limit passed) and kills it. */
function releaseEntry(entry: (typeof joined)[number]): void {
  const i = joined.indexOf(entry);
  if (i < 0) return;
  joined.splice(i, 1);
  killHelper(entry.proc.pid);
}

/**
 * The helper prejoinCriuHelper had join these directories, or some of them (the helper joins the others when the
 * request comes: a restore in CRIU's ignore mode joins cgroups that a prejoin leaves out), if any; it is the caller's
 * from then on.
 */
export function takeJoinedCriuHelper(cmd: string[], dirs: string[]): HelperProcess | undefined {
  const argv = cmd.join("\0");
  const i = joined.findIndex((j) => j.cmd === argv && j.dirs.every((d) => dirs.includes(d)));
  if (i < 0) return undefined;
  const [entry] = joined.splice(i, 1);
  clearTimeout(entry!.timer);
  return entry!.proc;
}

/** Kills a helper that prejoinCriuHelper had join these directories and no restore used (it sits in the cgroups). */
export function releaseJoinedCriuHelper(cmd: string[], dirs: string[]): void {
  const proc = takeJoinedCriuHelper(cmd, dirs);
  if (proc) killHelper(proc.pid);
}

/** Kills a helper and the `criu swrk` it forked (its direct children). */
export function killHelper(pid: number): void {
  for (const child of childrenOf(pid)) {
    try {
      process.kill(child, "SIGKILL");
    } catch {
      // gone
    }
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone
  }
}
