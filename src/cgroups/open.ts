/** Opening and creating cgroup managers on this host. */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CryoError, failedPrecondition, unknown } from "../errors.ts";
import { errnoOf, removeCgroupTree, writeValue } from "./cgroupfs.ts";
import { locationFromCgroupsPath, locationFromRuncPaths } from "./locate.ts";
import type { CgroupLocation, CgroupManager } from "./manager.ts";
import { findCgroupMounts, parseMountinfo, type CgroupMounts } from "./mountinfo.ts";
import { parseProcCgroup } from "./parse.ts";
import { createV1Manager } from "./v1-manager.ts";
import { createV2Manager } from "./v2-manager.ts";

let cachedMounts: Promise<CgroupMounts> | undefined;
let readMounts: CgroupMounts | undefined;

/** The host's cgroup mounts (mode, v1 controller mount points, cgroup2 mount), read once from /proc/self/mountinfo. */
export function hostCgroupMounts(): Promise<CgroupMounts> {
  if (readMounts) return Promise.resolve(readMounts);
  cachedMounts ??= readFile("/proc/self/mountinfo", "utf8")
    .then((text) => (readMounts = findCgroupMounts(parseMountinfo(text))))
    .catch((err) => {
      cachedMounts = undefined;
      throw unknown("reading /proc/self/mountinfo", { cause: err });
    });
  return cachedMounts;
}

/** hostCgroupMounts, synchronously (the same cache), for callers that cannot await (a restore's preparation). */
export function hostCgroupMountsSync(): CgroupMounts {
  return (readMounts ??= findCgroupMounts(parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"))));
}

/** This process's cgroups (/proc/self/cgroup), where runc, its child, resolves a relative cgroupsPath (cgroupDirFor). */
export function ownCgroupsSync(): Map<string, string> {
  return parseProcCgroup(readFileSync("/proc/self/cgroup", "utf8"));
}

/** A manager for a known location (no I/O). */
export function managerFor(location: CgroupLocation): CgroupManager {
  return location.version === 1 ? createV1Manager(location.paths) : createV2Manager(location.path);
}

/** Where to find an existing container's cgroup. */
export type CgroupSource =
  | { /** runc state.json `cgroup_paths` */ runcCgroupPaths: unknown }
  | { /** OCI spec `linux.cgroupsPath` */ cgroupsPath: string; /** force v1 or v2 (default: the host's mode) */ version?: 1 | 2 };

/**
 * Opens the cgroup of an existing container from runc's state or its OCI cgroupsPath (a relative one below this
 * process's cgroups, where runc would have made it had this process run it).
 */
export async function openCgroup(source: CgroupSource): Promise<CgroupManager> {
  if ("runcCgroupPaths" in source) return managerFor(locationFromRuncPaths(source.runcCgroupPaths));
  const own = source.cgroupsPath.startsWith("/") ? undefined : parseProcCgroup(await readFile("/proc/self/cgroup", "utf8"));
  return managerFor(locationFromCgroupsPath(source.cgroupsPath, await hostCgroupMounts(), source.version, own));
}

/** Options for createCgroup. */
export interface CreateCgroupOptions {
  /** v2: controllers to enable in each ancestor's cgroup.subtree_control ("+memory"...); default none. */
  enableControllers?: readonly string[];
}

/**
 * A cgroup's directories made synchronously: mkdir -p of each v1 controller directory (an empty v1 cpuset's
 * cpus and mems copied from its parent, else tasks cannot join), or of the v2 directory. A few system calls,
 * where file system round trips through the thread pool would each wait their turn on a busy event loop.
 * Returns the directories it made; on failure, removes them and throws.
 */
export function createCgroupDirsSync(location: CgroupLocation): string[] {
  const created: string[] = [];
  try {
    const dirs = location.version === 1 ? Object.entries(location.paths) : [["", location.path] as const];
    for (const [controller, dir] of dirs) {
      const missing: string[] = [];
      for (let d = dir; !existsSync(d) && d !== "/" && d !== "."; d = dirname(d)) missing.unshift(d);
      for (const d of missing) {
        try {
          mkdirSync(d);
          created.push(d);
        } catch (err) {
          if (errnoOf(err) === "EEXIST") continue;
          throw failedPrecondition(`cgroup ${d}`, { cause: err, detail: `mkdir: ${errnoOf(err) ?? String(err)}` });
        }
        if (location.version === 1 && controller === "cpuset") {
          for (const file of ["cpuset.cpus", "cpuset.mems"]) {
            if (readFileSync(join(d, file), "utf8").trim() !== "") continue;
            const parent = readFileSync(join(d, "..", file), "utf8").trim();
            if (parent !== "") writeFileSync(join(d, file), parent);
          }
        }
      }
    }
  } catch (err) {
    for (const d of created.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        // left for the caller's cleanup
      }
    }
    throw CryoError.from(err).wrap("create cgroup");
  }
  return created;
}

/**
 * Creates a cgroup (every v1 controller directory, or the v2 directory, with missing parents) and
 * returns its manager; on failure, removes what it created. Used when cryo, not runc, places a
 * process (restore), so that a failed restore can remove it again with destroy().
 */
export async function createCgroup(location: CgroupLocation, opts: CreateCgroupOptions = {}): Promise<CgroupManager> {
  const made = createCgroupDirsSync(location);
  if (location.version === 2 && opts.enableControllers && opts.enableControllers.length > 0) {
    const want = opts.enableControllers.map((c) => `+${c}`).join(" ");
    try {
      for (const d of made) await writeValue(join(d, "..", "cgroup.subtree_control"), want);
    } catch (err) {
      for (const d of [...made].reverse()) await removeCgroupTree(d, 1000).catch(() => {});
      throw CryoError.from(err).wrap("create cgroup");
    }
  }
  return managerFor(location);
}
