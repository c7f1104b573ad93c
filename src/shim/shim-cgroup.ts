/**
 * The `ShimCgroup` runtime option: `start` moves the daemon it launches into that cgroup, as
 * containerd's runc shim does (v1: the same path under every controller hierarchy where it exists;
 * v2: the path under the cgroup2 mount). The cgroup must exist; a path that exists nowhere is an error.
 */
import { existsSync } from "node:fs";
import { CryoError, notFound } from "../errors.ts";
import { hostCgroupMounts, locationFromCgroupsPath, managerFor, type CgroupLocation } from "../cgroups/index.ts";

/** Moves pid into the cgroup at path (relative to the cgroup mounts, e.g. "/system.slice/shims"). */
export async function placeInShimCgroup(pid: number, path: string): Promise<void> {
  let location: CgroupLocation;
  try {
    location = locationFromCgroupsPath(path, await hostCgroupMounts());
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
