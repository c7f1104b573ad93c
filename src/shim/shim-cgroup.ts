/**
 * The `ShimCgroup` runtime option: `start` moves the daemon it launches into that cgroup, as
 * containerd's runc shim does (v1: the same path under every controller hierarchy where it exists;
 * v2: the path under the cgroup2 mount). The cgroup must exist; a path that exists nowhere is an error. "/" is
 * the root cgroup (out of containerd's cgroup), as with runc's shim.
 */
import { existsSync } from "node:fs";
import { posix } from "node:path";
import { CryoError, invalidArgument, notFound } from "../errors.ts";
import { hostCgroupMounts, locationFromCgroupsPath, managerFor, type CgroupLocation, type CgroupMounts } from "../cgroups/index.ts";

/** "/" (or "//", "/."): the root cgroup, which a container's cgroupsPath may not name but a shim's may (runc's shim takes it). */
function isRootPath(path: string): boolean {
  return path.startsWith("/") && !path.split("/").includes("..") && posix.normalize(path) === "/";
}

/** The root cgroup of every hierarchy: v1 on legacy and hybrid hosts, v2 on unified ones, as for any other path. */
function rootLocation(path: string, mounts: CgroupMounts): CgroupLocation {
  if (mounts.mode === "unified") {
    if (mounts.unified === undefined) throw invalidArgument(`cgroupsPath ${path}`, { detail: "no cgroup2 hierarchy is mounted" });
    return { version: 2, path: mounts.unified };
  }
  if (mounts.v1.size === 0) throw invalidArgument(`cgroupsPath ${path}`, { detail: "no cgroup v1 hierarchy is mounted" });
  return { version: 1, paths: Object.fromEntries(mounts.v1) };
}

/** Moves pid into the cgroup at path (relative to the cgroup mounts, e.g. "/system.slice/shims"). */
export async function placeInShimCgroup(pid: number, path: string): Promise<void> {
  let location: CgroupLocation;
  try {
    const mounts = await hostCgroupMounts();
    location = isRootPath(path) ? rootLocation(path, mounts) : locationFromCgroupsPath(path, mounts);
  } catch (err) {
    // Named as the runtime option it is (the message said only `cgroupsPath /../x: ...`, a spec field's name).
    throw CryoError.from(err).wrap(`shim cgroup ${path}`);
  }
  let present: CgroupLocation;
  if (location.version === 1) {
    const paths = Object.fromEntries(Object.entries(location.paths).filter(([, dir]) => existsSync(dir)));
    if (Object.keys(paths).length === 0) throw notFound(`shim cgroup ${path}`);
    present = { version: 1, paths };
  } else {
    if (!existsSync(location.path)) throw notFound(`shim cgroup ${path}`);
    present = location;
  }
  try {
    await managerFor(present).addProcess(pid);
  } catch (err) {
    throw CryoError.from(err).wrap(`shim cgroup ${path}: add pid ${pid}`);
  }
}
