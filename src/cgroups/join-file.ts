/** How a process joins a cgroup, or a resctrl group (intel-rdt.ts), by writing its pid. */
import { existsSync } from "node:fs";
import { join } from "node:path";

/**
 * The file a process joins a group through by writing its pid: a cgroup's `cgroup.procs` (the whole process),
 * else a resctrl group's `tasks` (which moves the one task of that id: the CRIU helper's main thread, the one
 * that forks `criu swrk`). A v1 pids cgroup (`pids.max` beside `tasks`) is joined through `tasks` too: each of the
 * helper's threads counts against the container's pids limit there, and CRIU, which the main thread forks, and the
 * tree it restores inherit that thread's cgroup. (The helper joins one only in CRIU's ignore mode, where the tree
 * stays in CRIU's cgroups: with its dozen threads, a limit of 8 refused the fork of CRIU.)
 */
export function joinFile(dir: string): string {
  if (existsSync(join(dir, "pids.max")) && existsSync(join(dir, "tasks"))) return join(dir, "tasks");
  return existsSync(join(dir, "cgroup.procs")) ? join(dir, "cgroup.procs") : join(dir, "tasks");
}
