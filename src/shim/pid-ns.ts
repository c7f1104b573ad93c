/**
 * Which processes of a cgroup belong to a container with a PID namespace of its own. A cgroup can hold another
 * container's processes too: a spec can name another container's cgroup (`ctr containers restore` under a new name
 * keeps the checkpointed spec's cgroupsPath; cryo's restore gives such a copy its own since the twenty-eighth session,
 * runc's shim does not), and runc's `kill --all` (every process of the cgroup) reaches both. A process is the container's when it, or one of its ancestors, is in the container's PID namespace: its
 * init's tree, processes exec'd into it (their parent is the shim, outside), and what those start in nested
 * namespaces.
 */
import { readProcStat } from "../sys/proc.ts";
import { pidNamespaceOf } from "./orphaned-criu.ts";

/** How the check reads /proc (tests pass their own). */
export interface ProcReader {
  /** The PID namespace of pid (`pid:[inode]`), undefined when gone. */
  pidNs(pid: number): string | undefined;
  /** The parent of pid, undefined when gone. */
  ppid(pid: number): number | undefined;
}

export const procReader: ProcReader = {
  pidNs: (pid) => pidNamespaceOf(pid),
  ppid: (pid) => readProcStat(pid)?.ppid,
};

/** The pids among `pids` that are in the namespace `ns` or have an ancestor there (64 generations at most). */
export function pidsInNamespaceTree(pids: readonly number[], ns: string, proc: ProcReader = procReader): number[] {
  return pids.filter((pid) => {
    let p: number | undefined = pid;
    for (let i = 0; p !== undefined && p > 1 && i < 64; i++) {
      if (proc.pidNs(p) === ns) return true;
      p = proc.ppid(p);
    }
    return false;
  });
}
