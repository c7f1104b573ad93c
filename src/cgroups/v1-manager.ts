/** The cgroup v1 manager: one directory per controller, as runc's `cgroup_paths` lists them. */
import { join } from "node:path";
import { failedPrecondition } from "../errors.ts";
import { exists, readOptional, removeCgroupTree } from "./cgroupfs.ts";
import { freezeV1, stateV1, thawV1 } from "./freezer.ts";
import type { CgroupManager, DestroyOptions, OomWatchOptions, WaitOptions } from "./manager.ts";
import { watchOomV1 } from "./oom.ts";
import { parseUint } from "./parse.ts";
import { killAll, listPidsRecursive, moveProcess } from "./procs.ts";
import type { LinuxResources } from "./resources.ts";
import { planV1Update } from "./v1-update.ts";
import { readV1Stats } from "./v1-stats.ts";
import { applyPlan } from "./write-plan.ts";

/** Controllers whose directory is preferred for listing pids (every v1 hierarchy holds all tasks). */
const PIDS_SOURCE = ["freezer", "pids", "memory", "cpu", "cpuacct", "devices", "blkio", "cpuset"];

/** Creates a manager for a v1 cgroup given controller (or `name=systemd`) -> absolute directory. */
export function createV1Manager(paths: Record<string, string>): CgroupManager {
  const frozenPaths = Object.freeze({ ...paths });
  const dirs = [...new Set(Object.values(frozenPaths))];
  const freezerDir = () => {
    const dir = frozenPaths.freezer;
    if (dir === undefined) throw failedPrecondition("cgroup freezer", { detail: "the freezer controller is not mounted for this cgroup" });
    return dir;
  };
  const pidsDir = () => {
    for (const c of PIDS_SOURCE) if (frozenPaths[c] !== undefined) return frozenPaths[c];
    return dirs[0];
  };

  const manager: CgroupManager = {
    version: 1,
    location: { version: 1, paths: frozenPaths },
    async freeze(opts?: WaitOptions) {
      await freezeV1(freezerDir(), opts?.timeoutMs);
    },
    async thaw(opts?: WaitOptions) {
      await thawV1(freezerDir(), opts?.timeoutMs);
    },
    async state() {
      if (frozenPaths.freezer === undefined) return "thawed";
      return stateV1(frozenPaths.freezer);
    },
    async pids() {
      const dir = pidsDir();
      return dir === undefined ? [] : listPidsRecursive(dir);
    },
    async stats() {
      return { version: 1, metrics: await readV1Stats(frozenPaths) };
    },
    async update(resources: LinuxResources) {
      const mem = frozenPaths.memory;
      const blkio = frozenPaths.blkio;
      const [limitText, hasMemsw, hasCfqWeight, hasBfqWeight] = await Promise.all([
        mem === undefined ? undefined : readOptional(join(mem, "memory.limit_in_bytes")),
        mem === undefined ? false : exists(join(mem, "memory.memsw.limit_in_bytes")),
        blkio === undefined ? false : exists(join(blkio, "blkio.weight")),
        blkio === undefined ? false : exists(join(blkio, "blkio.bfq.weight")),
      ]);
      const plan = planV1Update(resources, {
        ...(limitText === undefined ? {} : { memoryLimit: parseUint(limitText, "memory.limit_in_bytes") }),
        hasMemsw,
        bfqWeight: !hasCfqWeight && hasBfqWeight,
      });
      await applyPlan(plan, frozenPaths);
    },
    watchOom(onOom: (count?: bigint) => void, opts?: OomWatchOptions) {
      const mem = frozenPaths.memory;
      if (mem === undefined) throw failedPrecondition("cgroup memory", { detail: "the memory controller is not mounted for this cgroup" });
      return watchOomV1(mem, onOom, opts);
    },
    async addProcess(pid: number) {
      for (const dir of dirs) await moveProcess(dir, pid);
    },
    async destroy(opts?: DestroyOptions) {
      if (opts?.kill) {
        killAll(await manager.pids());
        if (frozenPaths.freezer !== undefined && (await exists(frozenPaths.freezer))) await thawV1(frozenPaths.freezer, opts.timeoutMs);
      }
      for (const dir of dirs) await removeCgroupTree(dir, opts?.timeoutMs);
    },
  };
  return manager;
}
