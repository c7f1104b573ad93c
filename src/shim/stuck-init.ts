/**
 * The `delete` action's kill of a container whose shim died, before runc's delete.
 *
 * A process exec'd into a container (runc exec: setns + fork) is a child of the shim daemon, outside the container's
 * PID namespace. When the daemon dies, it goes to the daemon's nearest child subreaper or init. Once the container's
 * init is killed, the kernel kills the namespace and init waits in zap_pid_ns_processes until every pid of the
 * namespace is freed, so also until that new parent reaped the exec'd process's zombie. Init has left its cgroups by
 * then (they are empty), but it is neither gone nor a zombie: `runc delete --force` (runc 1.1) signals it, waits
 * 10 s for it to stop, and gives up with "container init still running", removing nothing. containerd kills the
 * `delete` action after 5 s anyway. A parent that never reaps (a subreaper that does not wait, such as a Bun process
 * that set PR_SET_CHILD_SUBREAPER) left the container's (empty) cgroups in every hierarchy and its runc state for
 * good (a chaos run saw 4 containers' cgroups left after a per-namespace daemon's SIGKILL; reproduced here).
 *
 * So `delete` kills init itself first and waits a little: when init is gone or a zombie, runc's delete is quick
 * as before; when init is exiting with its cgroups empty, nothing of the container runs any more, and `delete` does
 * what runc's destroy would: removes the container's cgroups (the paths its runc state records, nothing else) and
 * its runc state directory.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { RuncState } from "../runtime/state-file.ts";
import { parsePids } from "../cgroups/parse.ts";
import { isExiting, readProcStat, wchanOf } from "../sys/proc.ts";
import { CryoError } from "../errors.ts";
import type { Logger } from "./logger.ts";

/** Where init is: still running, gone (or a zombie: runc counts it stopped), or exiting and waiting on others. */
export type InitFate = "running" | "gone" | "stuck";

/** The pids in a cgroup directory (its cgroup.procs; none when the directory is gone). */
function cgroupPids(dir: string): number[] {
  try {
    return parsePids(readFileSync(join(dir, "cgroup.procs"), "utf8"));
  } catch {
    return [];
  }
}

/** The distinct cgroup directories runc's state records for the container (v1 controllers and the unified one). */
export function recordedCgroupDirs(state: RuncState): string[] {
  return [...new Set(Object.values(state.cgroup_paths).filter((p) => p.startsWith("/")))];
}

/** Where the init the state records is now (pid reuse counts as gone: another process has that pid). */
export function initFate(state: RuncState): InitFate {
  const stat = readProcStat(state.init_process_pid);
  if (stat === undefined || stat.startTime !== BigInt(state.init_process_start) || stat.state === "Z" || stat.state === "X") return "gone";
  const exiting = isExiting(state.init_process_pid);
  if (exiting === undefined) return "gone";
  if (!exiting) return "running";
  return recordedCgroupDirs(state).every((d) => cgroupPids(d).length === 0) ? "stuck" : "running";
}

/** Whether the container has a PID namespace of its own (killing its init then kills all of it). */
export function ownPidNamespace(state: RuncState): boolean {
  return state.config.namespaces.some((n) => n.type === "NEWPID" && n.path === "");
}

/**
 * Kills the container's init (SIGKILL, thawing a frozen v1 freezer cgroup so it takes effect) and waits up to
 * waitMs for it to be gone; returns "stuck" as soon as init is found exiting with the cgroups empty and sleeping in
 * zap_pid_ns_processes, or still so at the deadline. Only for a container with a PID namespace of its own.
 */
export async function killInit(state: RuncState, waitMs = 1500): Promise<InitFate> {
  let fate = initFate(state);
  if (fate === "gone") return fate;
  if (fate === "running") {
    try {
      process.kill(state.init_process_pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
    const freezer = state.cgroup_paths.freezer;
    if (freezer !== undefined && existsSync(join(freezer, "freezer.state"))) {
      const { stateV1, thawV1 } = await import("../cgroups/freezer.ts");
      if ((await stateV1(freezer).catch(() => "thawed")) === "frozen") await thawV1(freezer, 1000).catch(() => {});
    }
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    fate = initFate(state);
    if (fate === "gone") return fate;
    if (fate === "stuck" && wchanOf(state.init_process_pid) === "zap_pid_ns_processes") return fate;
    if (Date.now() >= deadline) return fate;
    await Bun.sleep(20);
  }
}

/**
 * What runc's destroy does for a container whose init is stuck exiting (cgroups empty): removes the cgroup
 * directories its state records (leaf first; a busy one is left and said) and its state directory.
 */
export async function removeStuckContainer(root: string, state: RuncState, log: Logger): Promise<void> {
  const { removeCgroupTree } = await import("../cgroups/cgroupfs.ts");
  const left: string[] = [];
  for (const dir of recordedCgroupDirs(state)) {
    try {
      await removeCgroupTree(dir, 500);
    } catch (err) {
      left.push(`${dir} (${CryoError.from(err).message})`);
    }
  }
  rmSync(join(root, state.id), { recursive: true, force: true });
  const parent = readProcStat(state.init_process_pid)?.ppid;
  log.warn(
    `container ${state.id}: its init ${state.init_process_pid} was killed and waits for processes exec'd into the container to be reaped by ` +
      `the process that inherited them from the dead shim${parent !== undefined ? ` (init's parent is ${parent})` : ""}: removed its cgroups and runc state without runc ` +
      `(runc delete --force waits 10 s for such an init and gives up)${left.length > 0 ? `; left busy: ${left.join(", ")}` : ""}`,
  );
}
