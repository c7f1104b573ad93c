/** The cgroup v2 manager: one directory in the unified hierarchy. */
import { join } from "node:path";
import { exists, removeCgroupTree, writeValue } from "./cgroupfs.ts";
import { freezeV2, stateV2, thawV2 } from "./freezer.ts";
import type { CgroupManager, DestroyOptions, OomWatchOptions, WaitOptions } from "./manager.ts";
import { watchOomV2 } from "./oom.ts";
import { killAll, listPidsRecursive, moveProcess } from "./procs.ts";
import type { LinuxResources } from "./resources.ts";
import { planV2Update } from "./v2-update.ts";
import { readV2Stats } from "./v2-stats.ts";
import { applyPlan } from "./write-plan.ts";

/** Creates a manager for the v2 cgroup at `path` (absolute, inside a cgroup2 mount). */
export function createV2Manager(path: string): CgroupManager {
  const manager: CgroupManager = {
    version: 2,
    location: { version: 2, path },
    freeze: (opts?: WaitOptions) => freezeV2(path, opts?.timeoutMs),
    thaw: (opts?: WaitOptions) => thawV2(path, opts?.timeoutMs),
    state: () => stateV2(path),
    pids: () => listPidsRecursive(path),
    async stats() {
      return { version: 2, metrics: await readV2Stats(path) };
    },
    async update(resources: LinuxResources) {
      const plan = planV2Update(resources, { bfqWeight: await exists(join(path, "io.bfq.weight")) });
      await applyPlan(plan, { "": path });
    },
    watchOom: (onOom: (count?: bigint) => void, opts?: OomWatchOptions) => watchOomV2(path, onOom, opts),
    addProcess: (pid: number) => moveProcess(path, pid),
    async destroy(opts?: DestroyOptions) {
      if (opts?.kill && (await exists(path))) {
        // cgroup.kill (5.14+) kills the whole tree atomically; otherwise signal each pid and thaw.
        if (await exists(join(path, "cgroup.kill"))) {
          await writeValue(join(path, "cgroup.kill"), "1");
        } else {
          killAll(await listPidsRecursive(path));
        }
        await thawV2(path, opts.timeoutMs);
      }
      await removeCgroupTree(path, opts?.timeoutMs);
    },
  };
  return manager;
}
