/** Opening and creating cgroup managers on this host. */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CryoError, unknown } from "../errors.ts";
import { makeCgroupDir, readOptional, removeCgroupTree, writeValue } from "./cgroupfs.ts";
import { locationFromCgroupsPath, locationFromRuncPaths } from "./locate.ts";
import type { CgroupLocation, CgroupManager } from "./manager.ts";
import { findCgroupMounts, parseMountinfo, type CgroupMounts } from "./mountinfo.ts";
import { createV1Manager } from "./v1-manager.ts";
import { createV2Manager } from "./v2-manager.ts";

let cachedMounts: Promise<CgroupMounts> | undefined;

/** The host's cgroup mounts (mode, v1 controller mount points, cgroup2 mount), read once from /proc/self/mountinfo. */
export function hostCgroupMounts(): Promise<CgroupMounts> {
  cachedMounts ??= readFile("/proc/self/mountinfo", "utf8")
    .then((text) => findCgroupMounts(parseMountinfo(text)))
    .catch((err) => {
      cachedMounts = undefined;
      throw unknown("reading /proc/self/mountinfo", { cause: err });
    });
  return cachedMounts;
}

/** A manager for a known location (no I/O). */
export function managerFor(location: CgroupLocation): CgroupManager {
  return location.version === 1 ? createV1Manager(location.paths) : createV2Manager(location.path);
}

/** Where to find an existing container's cgroup. */
export type CgroupSource =
  | { /** runc state.json `cgroup_paths` */ runcCgroupPaths: unknown }
  | { /** OCI spec `linux.cgroupsPath` */ cgroupsPath: string; /** force v1 or v2 (default: the host's mode) */ version?: 1 | 2 };

/** Opens the cgroup of an existing container from runc's state or its OCI cgroupsPath. */
export async function openCgroup(source: CgroupSource): Promise<CgroupManager> {
  if ("runcCgroupPaths" in source) return managerFor(locationFromRuncPaths(source.runcCgroupPaths));
  return managerFor(locationFromCgroupsPath(source.cgroupsPath, await hostCgroupMounts(), source.version));
}

/** Options for createCgroup. */
export interface CreateCgroupOptions {
  /** v2: controllers to enable in each ancestor's cgroup.subtree_control ("+memory"...); default none. */
  enableControllers?: readonly string[];
}

/** Copies cpuset.cpus/mems from the parent into a new v1 cpuset cgroup whose values are empty (else tasks cannot join). */
async function inheritCpuset(dir: string): Promise<void> {
  for (const file of ["cpuset.cpus", "cpuset.mems"]) {
    const own = await readOptional(join(dir, file));
    if (own === undefined || own.trim() !== "") continue;
    const parent = await readOptional(join(dir, "..", file));
    if (parent !== undefined && parent.trim() !== "") await writeValue(join(dir, file), parent.trim());
  }
}

/**
 * Creates a cgroup (every v1 controller directory, or the v2 directory, with missing parents) and
 * returns its manager; on failure, removes what it created. Used when cryo, not runc, places a
 * process (restore), so that a failed restore can remove it again with destroy().
 */
export async function createCgroup(location: CgroupLocation, opts: CreateCgroupOptions = {}): Promise<CgroupManager> {
  const created: string[] = [];
  try {
    if (location.version === 1) {
      for (const [controller, dir] of Object.entries(location.paths)) {
        const made = await makeCgroupDir(dir);
        created.push(...made);
        if (controller === "cpuset") for (const d of made) await inheritCpuset(d);
      }
    } else {
      const made = await makeCgroupDir(location.path);
      created.push(...made);
      if (opts.enableControllers && opts.enableControllers.length > 0) {
        const want = opts.enableControllers.map((c) => `+${c}`).join(" ");
        for (const d of made) await writeValue(join(d, "..", "cgroup.subtree_control"), want);
      }
    }
  } catch (err) {
    for (const d of created.reverse()) await removeCgroupTree(d, 1000).catch(() => {});
    throw CryoError.from(err).wrap("create cgroup");
  }
  return managerFor(location);
}
