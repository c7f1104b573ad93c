/** How a process joins a cgroup, or a resctrl group (intel-rdt.ts), by writing its pid. */
import { existsSync } from "node:fs";
import { join } from "node:path";

/**
 * The file a process joins a group through by writing its pid: a cgroup's `cgroup.procs` (the whole process),
 * else a resctrl group's `tasks` (which moves the one task of that id: the CRIU helper's main thread, the one
 * that forks `criu swrk`).
 */
export function joinFile(dir: string): string {
  return existsSync(join(dir, "cgroup.procs")) ? join(dir, "cgroup.procs") : join(dir, "tasks");
}
