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
 * The directory of hierarchy `key` (a v1 controller or `name=...`; "" for cgroup2) mounted at `mount` for an OCI
 * cgroupsPath, as runc computes it: an absolute path below the hierarchy's root; a relative one (runc's default
 * for a spec without a cgroupsPath is the bare container id) below the cgroup of the process that asks, `own`
 * (its /proc/self/cgroup, parseProcCgroup), since runc resolves it against its own cgroup, which it inherits from
 * the shim: on a unified host below that cgroup's parent (runc's fs2, whose own cgroup has processes), on a v1 or
 * hybrid host below the cgroup itself in each hierarchy, the hybrid cgroup2 one included (runc's fs). Without
 * `own` a relative path is taken from the root.
 */
export function cgroupDirFor(cgroupsPath: string, key: string, mount: string, mounts: CgroupMounts, own?: ReadonlyMap<string, string>): string {
  const p = normaliseCgroupsPath(cgroupsPath);
  if (cgroupsPath.startsWith("/") || own === undefined) return posix.join(mount, p);
  const parent = own.get(key) ?? "/";
  return posix.join(mount, key === "" && mounts.mode === "unified" ? posix.dirname(parent) : parent, p);
}

/**
 * The location for an OCI `linux.cgroupsPath` on a host with `mounts` (cgroupDirFor: a relative path below `own`
 * when given, else below each hierarchy's root; containerd always passes an absolute path such as `/default/c1`).
 * `version` forces the hierarchy; by default v1 on legacy and hybrid hosts (where runc puts
 * containers), v2 on unified ones.
 */
export function locationFromCgroupsPath(cgroupsPath: string, mounts: CgroupMounts, version?: 1 | 2, own?: ReadonlyMap<string, string>): CgroupLocation {
  normaliseCgroupsPath(cgroupsPath);
  const v = version ?? (mounts.mode === "unified" ? 2 : 1);
  if (v === 2) {
    if (mounts.unified === undefined) throw invalidArgument(`cgroupsPath ${cgroupsPath}`, { detail: "no cgroup2 hierarchy is mounted" });
    return { version: 2, path: cgroupDirFor(cgroupsPath, "", mounts.unified, mounts, own) };
  }
  if (mounts.v1.size === 0) throw invalidArgument(`cgroupsPath ${cgroupsPath}`, { detail: "no cgroup v1 hierarchy is mounted" });
  const paths: Record<string, string> = {};
  for (const [controller, mountPoint] of mounts.v1) paths[controller] = cgroupDirFor(cgroupsPath, controller, mountPoint, mounts, own);
  return { version: 1, paths };
}
