/**
 * Where a container's cgroup is: from runc's state (`cgroup_paths`) or from an OCI
 * `linux.cgroupsPath` plus the host's cgroup mounts. Pure functions; open.ts does the I/O.
 */
import { posix } from "node:path";
import * as z from "zod/mini";
import { lazySchema, parseDetail } from "../runtime/schema-detail.ts";
import { invalidArgument } from "../errors.ts";
import type { CgroupLocation } from "./manager.ts";
import type { CgroupMounts } from "./mountinfo.ts";

/**
 * zod schema of runc's state.json `cgroup_paths`: controller (or "" for v2) -> absolute directory.
 * zod/mini, built on first use (every shim daemon loads this module at start).
 */
export const runcCgroupPathsSchema = lazySchema(() =>
  z.record(
    z.string(),
    z.string().check(z.refine((p: string) => p.startsWith("/") && !p.split("/").includes(".."), "must be an absolute path without ..")),
  ),
);

/**
 * The location from runc's `cgroup_paths`. Any controller key means v1 (runc on a hybrid host adds
 * "" for the unified directory beside the v1 controllers; the v1 ones are used); only "" means v2.
 */
export function locationFromRuncPaths(cgroupPaths: unknown): CgroupLocation {
  const r = parseDetail(runcCgroupPathsSchema(), cgroupPaths);
  if (!r.ok) throw invalidArgument("runc cgroup_paths", { detail: r.detail });
  const paths = { ...r.data };
  const unified = paths[""];
  delete paths[""];
  if (Object.keys(paths).length > 0) return { version: 1, paths };
  if (unified !== undefined) return { version: 2, path: unified };
  throw invalidArgument("runc cgroup_paths", { detail: "empty" });
}

/** Normalises an OCI cgroupsPath; INVALID_ARGUMENT for systemd-style `slice:prefix:name` and `..`. */
export function normaliseCgroupsPath(cgroupsPath: string): string {
  if (!cgroupsPath.startsWith("/") && cgroupsPath.split(":").length === 3) {
    throw invalidArgument(`cgroupsPath ${cgroupsPath}`, { detail: "systemd cgroup paths (slice:prefix:name) are not supported; cryo works on cgroupfs" });
  }
  if (cgroupsPath.split("/").includes("..")) throw invalidArgument(`cgroupsPath ${cgroupsPath}`, { detail: "must not contain .." });
  const p = posix.normalize(`/${cgroupsPath}`);
  if (p === "/") throw invalidArgument(`cgroupsPath ${JSON.stringify(cgroupsPath)}`, { detail: "must name a cgroup below the root" });
  return p.replace(/\/+$/, "");
}

/**
 * The location for an OCI `linux.cgroupsPath` on a host with `mounts`. The path is taken relative to
 * each hierarchy's root (containerd always passes an absolute path such as `/default/c1`).
 * `version` forces the hierarchy; by default v1 on legacy and hybrid hosts (where runc puts
 * containers), v2 on unified ones.
 */
export function locationFromCgroupsPath(cgroupsPath: string, mounts: CgroupMounts, version?: 1 | 2): CgroupLocation {
  const p = normaliseCgroupsPath(cgroupsPath);
  const v = version ?? (mounts.mode === "unified" ? 2 : 1);
  if (v === 2) {
    if (mounts.unified === undefined) throw invalidArgument(`cgroupsPath ${cgroupsPath}`, { detail: "no cgroup2 hierarchy is mounted" });
    return { version: 2, path: posix.join(mounts.unified, p) };
  }
  if (mounts.v1.size === 0) throw invalidArgument(`cgroupsPath ${cgroupsPath}`, { detail: "no cgroup v1 hierarchy is mounted" });
  const paths: Record<string, string> = {};
  for (const [controller, mountPoint] of mounts.v1) paths[controller] = posix.join(mountPoint, p);
  return { version: 1, paths };
}
