/**
 * src/cgroups: a container's cgroup, on cgroupfs directly (no runc, no systemd), v1 and v2: freeze and
 * thaw, pids, stats as containerd's metrics messages, updates from OCI LinuxResources, OOM watching,
 * and create/destroy for restore. The rest of cryo may use exactly what is exported here.
 *
 * ```ts
 * const cg = await openCgroup({ runcCgroupPaths: state.cgroup_paths });
 * await cg.freeze();                                   // Pause
 * const { version, metrics } = await cg.stats();        // Stats -> packMetrics(...)
 * await cg.update(decodeLinuxResources(any.value));     // Update
 * using oom = cg.watchOom(() => publish("/tasks/oom")); // OOM events
 * ```
 */
export type { CgroupManager, CgroupLocation, FreezerState, WaitOptions, OomWatchOptions, DestroyOptions } from "./manager.ts";
export { openCgroup, createCgroup, managerFor, hostCgroupMounts, type CgroupSource, type CreateCgroupOptions } from "./open.ts";
export { locationFromRuncPaths, locationFromCgroupsPath } from "./locate.ts";
export type { CgroupMode, CgroupMounts } from "./mountinfo.ts";
export { parseLinuxResources, decodeLinuxResources, linuxResourcesSchema, type LinuxResources, type LinuxResourcesInput } from "./resources.ts";
export { packMetrics, METRICS_TYPE_NAME, type CgroupMetrics, type V1Metrics, type V2Metrics } from "./metrics.ts";
