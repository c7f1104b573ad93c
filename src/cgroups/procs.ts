/** Process membership: listing every pid of a cgroup tree, moving a pid in, and killing what is left. */
import { join } from "node:path";
import { childCgroups, readOptional, writeValue } from "./cgroupfs.ts";
import { parsePids } from "./parse.ts";

/** All pids in `dir` and its descendant cgroups (cgroup.procs, recursively), sorted and unique. */
export async function listPidsRecursive(dir: string): Promise<number[]> {
  const out = new Set<number>();
  const walk = async (d: string): Promise<void> => {
    const text = await readOptional(join(d, "cgroup.procs"));
    if (text === undefined) return;
    for (const pid of parsePids(text)) out.add(pid);
    await Promise.all((await childCgroups(d)).map(walk));
  };
  await walk(dir);
  return [...out].sort((a, b) => a - b);
}

/** Moves a process (with all its threads) into the cgroup directory. */
export async function moveProcess(dir: string, pid: number): Promise<void> {
  await writeValue(join(dir, "cgroup.procs"), String(pid));
}

/** Sends SIGKILL to each pid; pids that are already gone are ignored. */
export function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* ESRCH: already gone */
    }
  }
}
