/**
 * The cgroups of a restored container: which paths it gets (restoredCgroupsPath, restoredCgroupPaths, checked by
 * confineCgroupPaths), making them ahead of CRIU with the spec's limits and device rules (startRestoreCgroups), the
 * thaw of a tree CRIU left frozen, and the undo of a failed restore: killing only that restore's processes
 * (emptyCreatedCgroups) and removing only the directories it made (removeCgroupDirs). Used by restore-container.ts.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import type { CheckpointMetadata } from "../checkpoint/metadata.ts";
import { isV2Only, restoreJoinDirs } from "../checkpoint/runc-criu.ts";
// The cgroup modules themselves, not src/cgroups' index: that would also load the metrics encoder and its
// protobuf descriptors (engine.ts loads them for Stats only).
import { applyIntelRdtGroup, removeIntelRdtGroup, type IntelRdtPlan } from "../cgroups/intel-rdt.ts";
import { createCgroupDirsSync, managerFor } from "../cgroups/open.ts";
import { cgroupDirFor, locationFromRuncPaths, normaliseCgroupsPath } from "../cgroups/locate.ts";
import { parsePids } from "../cgroups/parse.ts";
import { killAll, listPidsRecursive } from "../cgroups/procs.ts";
import type { CgroupMounts } from "../cgroups/mountinfo.ts";
import type { LinuxResources } from "../cgroups/resources.ts";
import { applyV1DeviceRules, runcDeviceRules } from "../cgroups/v1-devices.ts";
import { applyV2DeviceRules } from "../cgroups/v2-devices.ts";
import { failedPrecondition, invalidArgument } from "../errors.ts";
import { descendsFrom, isAlive, readProcStat, underProcess } from "../sys/proc.ts";
import type { Logger } from "./logger.ts";
import { pidNamespaceOf, pidNamespacesOf, pidsOutside } from "./orphaned-criu.ts";

/** What startRestoreCgroups needs of a prepared restore (restore-container.ts PreparedRestore). */
export interface RestoreCgroupsPlan {
  /** runc's cgroup_paths for the restored container (restoredCgroupPaths). */
  cgroupPaths: Record<string, string>;
  /** The bundle spec's linux.resources, validated (set on the cgroups before CRIU runs). */
  resources: LinuxResources | undefined;
  /** The resctrl group the spec's linux.intelRdt gives the container's tasks. */
  intelRdt?: IntelRdtPlan;
}

/** Directories from dir up to (not including) the first existing ancestor: what mkdir -p would create. */
export function missingChain(dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; !existsSync(d) && d !== "/" && d !== "."; d = dirname(d)) out.push(d);
  return out; // leaf first
}

/**
 * The cgroupsPath a restored container gets. containerd's restore (`ctr containers restore`, a client's
 * WithRestoreSpec) copies the checkpointed spec, and with it containerd's default cgroupsPath for the source,
 * /<namespace>/<id>. A copy restored under another id or into another namespace would then live in the source's
 * cgroup: beside a source that still runs, a pause or a checkpoint's freeze of one froze both, its memory counted
 * against the source's limit, and the metrics of each counted both (runc's shim does the same). So a spec path that is
 * exactly the source's default becomes the new container's default, /<namespace>/<new id>. Any other path (CRI's, a
 * client's own) is the spec's; so is the source's path for a restore under the source's own id and namespace, and
 * for a checkpoint whose metadata does not name its namespace.
 *
 * A copy's spec still names the first source's default (containerd copies the spec at every restore; this function
 * changes only where the copy runs), so a checkpoint of a copy records a spec path that is not its own default. Such a
 * source ran in its own default (runc's state, `config.cgroups.path`) while its spec named another: its restore, under
 * a new id or under its own, gets the new container's default too. Before (found by a helper session's chaos run), a
 * copy of a copy, and a copy restored under its own id after its removal, went into the first source's cgroup: a
 * pause of either froze the first source, which containerd still showed RUNNING, and the first source's cgroup stayed
 * behind its delete, holding them.
 */
export function restoredCgroupsPath(specPath: string, id: string, namespace: string | undefined, meta: Pick<CheckpointMetadata, "containerId" | "namespace"> & Partial<Pick<CheckpointMetadata, "cgroups" | "runcState">>): string {
  if (namespace === undefined || namespace === "" || meta.namespace === undefined) return specPath;
  const sourceDefault = `/${meta.namespace}/${meta.containerId}`;
  const spec = normaliseCgroupsPath(specPath);
  const ranInDefault = spec !== sourceDefault && sourceRanIn(meta) === sourceDefault && meta.cgroups?.cgroupsPath !== undefined && samePath(meta.cgroups.cgroupsPath, spec);
  if (id === meta.containerId && namespace === meta.namespace) return ranInDefault ? sourceDefault : specPath;
  return spec === sourceDefault || ranInDefault ? `/${namespace}/${id}` : specPath;
}

/** The cgroupsPath the checkpointed container ran in, normalised: runc's state (config.cgroups.path), as recorded. */
function sourceRanIn(meta: Partial<Pick<CheckpointMetadata, "runcState">>): string | undefined {
  const config = meta.runcState?.config as { cgroups?: { path?: unknown } } | undefined;
  const path = config?.cgroups?.path;
  if (typeof path !== "string" || path === "") return undefined;
  try {
    return normaliseCgroupsPath(path);
  } catch {
    return undefined;
  }
}

/** Whether the cgroupsPath a, normalised, is the normalised path given (false when a is not a valid cgroupsPath). */
function samePath(a: string, normalised: string): boolean {
  try {
    return normaliseCgroupsPath(a) === normalised;
  } catch {
    return false;
  }
}

/**
 * runc's cgroup_paths for the restored container, as runc computes them: for each hierarchy the checkpointed
 * container was in (the checkpoint's keys), this host's mount of it joined with the spec's cgroupsPath (a relative
 * one below `own`, the daemon's cgroups, which runc inherits: cgroupDirFor). Never
 * the checkpoint's own paths: a crafted one could name another service's cgroup, whose processes a runc kill or
 * delete would then reach. FAILED_PRECONDITION when a hierarchy is not mounted here.
 */
export function restoredCgroupPaths(meta: CheckpointMetadata, cgroupsPath: string, mounts: CgroupMounts, own?: ReadonlyMap<string, string>): Record<string, string> {
  normaliseCgroupsPath(cgroupsPath);
  const out: Record<string, string> = {};
  for (const key of Object.keys(meta.cgroups.paths)) {
    const mount = key === "" ? mounts.unified : mounts.v1.get(key);
    if (mount === undefined) throw failedPrecondition(`cgroup hierarchy ${key === "" ? "cgroup2" : key}`, { detail: "the checkpointed container was in it, and it is not mounted on this host" });
    out[key] = cgroupDirFor(cgroupsPath, key, mount, mounts, own);
  }
  return out;
}

/** A cgroupsPath as runc keeps it (config.cgroups.path): cleaned, and relative if it was (normaliseCgroupsPath). */
export function runcCgroupsPath(cgroupsPath: string): string {
  const p = normaliseCgroupsPath(cgroupsPath);
  return cgroupsPath.startsWith("/") ? p : p.slice(1);
}

/**
 * Checks that every restored cgroup path lies strictly below the mount point of its own hierarchy on this
 * host (key "" the cgroup2 mount, a controller key that controller's v1 mount). The paths come from the
 * checkpoint's metadata, and the restore (root) makes these directories and writes into them: a crafted
 * checkpoint must not name /etc/x, the hierarchy's root, or another controller's tree. INVALID_ARGUMENT otherwise.
 */
export function confineCgroupPaths(paths: Readonly<Record<string, string>>, mounts: CgroupMounts, where: string): void {
  for (const [key, p] of Object.entries(paths)) {
    const mount = key === "" ? mounts.unified : mounts.v1.get(key);
    const shown = key === "" ? "cgroup2" : key;
    if (mount === undefined) throw failedPrecondition(where, { detail: `cgroup hierarchy ${shown} (${p}) is not mounted on this host` });
    if (posix.normalize(p) !== p || p.split("/").includes("..") || !p.startsWith(`${mount}/`)) {
      throw invalidArgument(where, { detail: `cgroup path ${p} is not below this host's ${shown} hierarchy at ${mount}` });
    }
  }
}

/** A restored container's cgroups being made, and the CRIU helper that joins them. */
export interface RestoreCgroups {
  /** The directories this restore makes (only those are removed again). */
  created: string[];
  /** The cgroups, then the resctrl group: where the restored tree goes (what a failed restore empties). */
  dirs: string[];
  /** The directories the CRIU helper joins ahead (prejoin): `dirs` but the cgroups it stays out of (restoreJoinDirs). */
  joinDirs: string[];
  /** The resctrl group, once `ready`: `created` when this restore made it (only then is it removed again). */
  intelRdt?: { dir: string; created: boolean };
  /**
   * The PID namespaces of the processes in the cgroups before the restore (a running original's, whose checkpointed
   * spec a restore under a new name reuses); empty when they had none. In a cgroup that existed, only processes
   * outside these are the restore's.
   */
  before: string[];
  /** Settles once the cgroups are made, limited, and the helper was told to join them; rejects with a failure. */
  ready: Promise<void>;
}

/**
 * Makes the restored container's cgroups (the missing ones), has the waiting CRIU helper join them
 * (`prejoin`, see Criu.prejoin), then sets the spec's limits, as runc does before CRIU runs (CRIU's soft mode
 * restores properties only of cgroups it created itself). The directories are made synchronously (a few
 * mkdirs) and the join is asked for at once: the kernel's cgroup move costs 10-15 ms here (an RCU grace
 * period) and overlaps whatever the restore works out meanwhile; the CRIU call awaits `ready`.
 * Undo with discardRestoreCgroups.
 */
export function startRestoreCgroups(prepared: RestoreCgroupsPlan, prejoin: (dirs: string[]) => void): RestoreCgroups {
  const { cgroupPaths, resources, intelRdt } = prepared;
  const created = [...new Set(Object.values(cgroupPaths).flatMap((p) => missingChain(p)))];
  const dirs = restoreJoinDirs(cgroupPaths, intelRdt?.dir, []);
  const joinDirs = restoreJoinDirs(cgroupPaths, intelRdt?.dir);
  const before = pidNamespacesOf(dirs.filter((d) => !created.includes(d)).flatMap(procsIn));
  const rdt = intelRdt ? { dir: intelRdt.dir, created: false } : undefined;
  const ready = (async () => {
    await refuseFrozenCgroup(cgroupPaths);
    const location = makeCgroupDirs(cgroupPaths, resources, created);
    // The resctrl group with its schemata, before the helper joins it (runc: Apply, then Set).
    if (intelRdt && rdt) rdt.created = applyIntelRdtGroup(intelRdt, `restore: linux.intelRdt`).created;
    prejoin(joinDirs);
    if (resources) {
      try {
        await managerFor(location).update(resources);
      } catch (err) {
        // Another restore of the same checkpoint (the same cgroups path) failed and removed the directories between
        // their making and this update (seen once in a fresh-clone CI run: "cpu.shares: does not exist"): made again, once.
        if ((await remakeRestoreCgroups(created, cgroupPaths, resources)).length === 0) throw err;
      }
    }
  })();
  ready.catch(() => {}); // awaited by the restore; a failure is thrown there
  return { created, dirs, joinDirs, ready, before, ...(rdt ? { intelRdt: rdt } : {}) };
}

/** Makes the container's cgroup directories and sets their device rules where this restore made the device cgroup. */
function makeCgroupDirs(cgroupPaths: Readonly<Record<string, string>>, resources: LinuxResources | undefined, created: readonly string[]): ReturnType<typeof locationFromRuncPaths> {
  const location = locationFromRuncPaths(cgroupPaths);
  createCgroupDirsSync(location);
  const unified = cgroupPaths[""];
  if (unified !== undefined) mkdirSync(unified, { recursive: true });
  // Before anything of the container runs in them: its device rules, which runc would have set (v1-devices.ts,
  // v2-devices.ts). Not in a cgroup that has processes: a restore under a new name shares the running original's
  // cgroup, whose rules runc set, and resetting them would deny its processes every device for a moment (v1), or
  // add a second filter to theirs (v2).
  const target = deviceRulesTarget(cgroupPaths);
  if (target && (created.includes(target.dir) || readFileSync(join(target.dir, "cgroup.procs"), "utf8").trim() === "")) {
    const rules = runcDeviceRules(resources?.devices);
    if (target.version === 1) applyV1DeviceRules(target.dir, rules);
    else applyV2DeviceRules(target.dir, rules);
  }
  return location;
}

/**
 * Makes again the restore's cgroup directories that went away since startRestoreCgroups, as this restore's own (its
 * failure removes them), with the spec's device rules and limits; returns them (none: nothing was missing). Another
 * restore of the same checkpoint, given the same cgroups path by containerd, made them and, failing, removed them
 * before this restore's CRIU moved its tree in (CRIU: `cg: Can't move 1 into freezer//NS/ID/cgroup.procs (-1/-1): No
 * such file or directory`; seen in test/integration/checkpoint-ctr's two restores at once).
 */
export async function remakeRestoreCgroups(created: string[], cgroupPaths: Readonly<Record<string, string>>, resources: LinuxResources | undefined): Promise<string[]> {
  const missing = [...new Set(Object.values(cgroupPaths).flatMap((p) => missingChain(p)))];
  if (missing.length === 0) return [];
  created.push(...missing.filter((d) => !created.includes(d)));
  const location = makeCgroupDirs(cgroupPaths, resources, created);
  if (resources) await managerFor(location).update(resources);
  return missing;
}

/**
 * Thaws a restored container's cgroup that CRIU left frozen (its full and strict modes restore the recorded state):
 * the v1 freezer's freezer.state, or a v2 container's cgroup.freeze.
 */
export function thawRestored(cgroupPaths: Readonly<Record<string, string>>, log: Logger, label: string): void {
  const freezer = freezerOf(cgroupPaths);
  if (freezer === undefined) return;
  const { file, thawed } = freezer;
  try {
    if (readFileSync(file, "utf8").trim() === thawed) return;
    writeFileSync(file, thawed);
    log.info(`${label}: thawed the restored tree: CRIU restored the freezer state its checkpoint recorded`);
  } catch (err) {
    log.warn(`${label}: thaw the restored tree: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * A restore into a frozen cgroup (a paused container under the same cgroups path: containerd gives a copy restored
 * under a new name the original's) would hang: CRIU waits for tasks that cannot run, and a cancelled restore's tree
 * stays there, killed but frozen, until the other is resumed (a helper session). Refused, as runc's restore refuses
 * it ("container's cgroup unexpectedly frozen").
 */
async function refuseFrozenCgroup(cgroupPaths: Readonly<Record<string, string>>): Promise<void> {
  const freezer = freezerOf(cgroupPaths);
  if (freezer === undefined) return;
  const { file, thawed } = freezer;
  const read = () => {
    try {
      return readFileSync(file, "utf8").trim();
    } catch {
      return thawed; // not there yet: this restore makes it
    }
  };
  // A paused container stays frozen; a freeze that passes (another restore's CRIU at work there) is waited out.
  let state = read();
  for (const deadline = performance.now() + FROZEN_WAIT_MS; state !== thawed && performance.now() < deadline; state = read()) await Bun.sleep(50);
  if (state !== thawed) throw failedPrecondition(`restore into cgroup ${freezer.dir}`, { detail: `it is frozen (${state}): a paused container shares it; resume that one first` });
}

/** How many times a restore makes again the cgroup directories another restore's failure removed under it (restoreContainer). */
export const CGROUP_GONE_RETRIES = 3;

/** How long a restore waits for a frozen cgroup it would join to thaw before it refuses. */
const FROZEN_WAIT_MS = 1000;

/** Where a container is frozen: the v1 freezer cgroup's freezer.state, or a v2-only container's cgroup.freeze. */
function freezerOf(cgroupPaths: Readonly<Record<string, string>>): { dir: string; file: string; thawed: string } | undefined {
  if (cgroupPaths.freezer !== undefined) return { dir: cgroupPaths.freezer, file: join(cgroupPaths.freezer, "freezer.state"), thawed: "THAWED" };
  const v2 = isV2Only(cgroupPaths) ? cgroupPaths[""] : undefined;
  return v2 === undefined ? undefined : { dir: v2, file: join(v2, "cgroup.freeze"), thawed: "0" };
}

/** The freezer cgroup's identity (device and inode), undefined when it is not there. */
export function freezerIdentity(cgroupPaths: Readonly<Record<string, string>>): string | undefined {
  const dir = freezerOf(cgroupPaths)?.dir;
  if (dir === undefined) return undefined;
  try {
    const st = statSync(dir);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Where a restored container's device rules go: its v1 devices cgroup when the host has that controller
 * (a hybrid host too), else its cgroup2 directory (a BPF program, as runc on a cgroup v2 host).
 */
export function deviceRulesTarget(cgroupPaths: Readonly<Record<string, string>>): { version: 1 | 2; dir: string } | undefined {
  if (cgroupPaths.devices !== undefined) return { version: 1, dir: cgroupPaths.devices };
  if (cgroupPaths[""] !== undefined) return { version: 2, dir: cgroupPaths[""] };
  return undefined;
}

/** The pids in one cgroup directory (its cgroup.procs; none when it is not there). */
function procsIn(dir: string): number[] {
  try {
    return parsePids(readFileSync(join(dir, "cgroup.procs"), "utf8"));
  } catch {
    return [];
  }
}

/** Undoes startRestoreCgroups: the helper that joined is killed (`release`), then the cgroups it made are emptied and removed. */
export async function discardRestoreCgroups(cgroups: RestoreCgroups, release: (dirs: string[]) => void, others?: OtherContainers): Promise<void> {
  await cgroups.ready.catch(() => {});
  release(cgroups.joinDirs);
  await emptyCreatedCgroups(cgroups.dirs, cgroups.created, cgroups.before, process.pid, others);
  await removeCgroupDirs(cgroups.created, process.pid);
  if (cgroups.intelRdt?.created) removeIntelRdtGroup(cgroups.intelRdt.dir);
}

/**
 * Kills every process in the container's cgroups that this restore made (only those: a cgroup that existed
 * may be a running original's), and thaws them, so that the kill takes effect in a frozen v1 freezer cgroup:
 * what a killed CRIU call or a failed restore left there (a partly restored tree, a helper) goes with them.
 *
 * `ancestor` (the shim daemon: the restore's helper is its child, the restored tree the helper's, and what a dead
 * helper leaves is handed to the daemon, the child subreaper) limits the kill to the processes that descend from it.
 * Two restores of one checkpoint at once (two clones under new names) land in one cgroup, containerd keeping the
 * original's cgroups path: before, a failed or cancelled one killed the other's helper or restored tree, which had
 * joined the directory after it was made (a helper session: 5 of 8 such pairs lost the good clone). Another
 * daemon's are never descendants; `delete` after a dead daemon (orphaned-criu.ts) has no daemon to ask.
 */
export async function emptyCreatedCgroups(dirs: readonly string[], created: readonly string[], before?: readonly string[], ancestor?: number, others?: OtherContainers): Promise<void> {
  // Another restore of this daemon whose CRIU has let its tree go but whose runc state is not written yet: its tree is
  // neither under CRIU nor another container's by the rules below, and would be killed as this restore's.
  if (ancestor !== undefined) await othersLanded();
  const isOurs = restoreOwnership(ancestor, others);
  const ours = (pids: number[]) => pids.filter(isOurs);
  // In a cgroup that existed (a running original's): only what is outside the PID namespaces that were there before,
  // the tree a killed CRIU left (seen here: a 512 MiB copy left for good in the original's cgroup).
  const shared = dirs.filter((d) => !created.includes(d));
  // An empty `before` (a cgroup that existed but held nothing: another restore's, made a moment earlier) keeps nothing
  // out, which only the descendant test makes safe.
  if (before !== undefined && (before.length > 0 || ancestor !== undefined) && shared.length > 0) {
    killAll(ours(pidsOutside([...new Set((await Promise.all(shared.map((d) => listPidsRecursive(d).catch(() => [])))).flat())], before)));
  }
  const own = dirs.filter((d) => created.includes(d));
  if (own.length === 0) return;
  const inOwn = await Promise.all(own.map(async (d) => ({ d, pids: await listPidsRecursive(d).catch((): number[] => []) })));
  const mine = new Set(ours([...new Set(inOwn.flatMap((x) => x.pids))]));
  // Thawed so that the kill takes effect; not where another container's processes are (it may be paused).
  const foreign = new Set(inOwn.filter((x) => x.pids.some((p) => !mine.has(p) && isAlive(p))).map((x) => x.d));
  killAll([...mine]);
  for (const d of own) {
    if (foreign.has(d)) continue;
    for (const [file, value] of [["freezer.state", "THAWED"], ["cgroup.freeze", "0"]] as const) {
      try {
        if (existsSync(join(d, file))) writeFileSync(join(d, file), value);
      } catch {
        // removed meanwhile
      }
    }
  }
}

/**
 * The restores of this daemon between the start of their CRIU call and the writing of their runc state (or their
 * failure). A restored tree is spared while its CRIU call runs (under the helper, `underProcess`) and once its
 * state.json names it (`otherContainersProcesses`); between the two (CRIU's answer on its way to the daemon, the
 * helper gone, the tree handed to the daemon) it is spared only by a failing restore's cleanup waiting for it to land
 * (at most IN_FLIGHT_WAIT_MS). The docs' "left" case of two restores of one checkpoint at once.
 */
const restoresInFlight = new Set<Promise<void>>();

/** How long a failed restore's cleanup waits for the other restores in flight (a 1 GiB restore takes ~2.5 s here). */
const IN_FLIGHT_WAIT_MS = 20_000;

/** Registers a restore in flight; the returned function (idempotent) marks it landed. Exported for tests. */
export function inFlight(): () => void {
  const { promise, resolve } = Promise.withResolvers<void>();
  restoresInFlight.add(promise);
  return () => {
    restoresInFlight.delete(promise);
    resolve();
  };
}

/** Waits until the restores in flight now have landed (their state.json written, or failed), at most IN_FLIGHT_WAIT_MS. */
async function othersLanded(): Promise<void> {
  if (restoresInFlight.size === 0) return;
  let timer: Timer | undefined;
  await Promise.race([Promise.all([...restoresInFlight]), new Promise<void>((r) => (timer = setTimeout(r, IN_FLIGHT_WAIT_MS)))]);
  clearTimeout(timer);
}

/**
 * Which processes in a restore's cgroups are its own (see emptyCreatedCgroups): without `ancestor`, all; with it, those
 * descending from the daemon, except, in one daemon serving several restores (per-namespace grouping), another
 * restore's still at work (under its CRIU helper, `__criu`, or CRIU: a failed restore's own helper is gone or killed by
 * `release`, and CRIU kills the tree it restored when it fails) and another container's (a restore that already
 * completed has its tree under the daemon as any container has: runc's state of it, another id in the same runc root,
 * names its init, whose PID namespace, or without one of its own whose tree, is spared; a helper session saw the good
 * clone killed just after it was restored in 3 of 4 per-namespace pairs).
 */
function restoreOwnership(ancestor: number | undefined, others: OtherContainers | undefined): (pid: number) => boolean {
  if (ancestor === undefined) return () => true;
  const spared = others ? otherContainersProcesses(others) : () => false;
  return (p) => descendsFrom(p, ancestor) && !underProcess(p, ancestor, isCriuWork) && !spared(p);
}

/** The containers of a runc root other than the one restored: their processes are never a failed restore's. */
export interface OtherContainers {
  runcRoot: string;
  id: string;
}

/** Whether a pid belongs to another container of the runc root: in its init's PID namespace, or (the host's) its tree. */
function otherContainersProcesses({ runcRoot, id }: OtherContainers): (pid: number) => boolean {
  const ownNs = pidNamespaceOf(process.pid);
  const namespaces = new Set<string>();
  const inits: number[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(runcRoot);
  } catch {
    // no runc root: no other container
  }
  for (const name of names) {
    if (name === id) continue;
    try {
      const state = JSON.parse(readFileSync(join(runcRoot, name, "state.json"), "utf8")) as { init_process_pid?: unknown; init_process_start?: unknown };
      const pid = state.init_process_pid;
      if (typeof pid !== "number" || pid <= 0) continue;
      // A container whose init is gone: its pid may be another process's now (runc checks the start time the same way).
      if (typeof state.init_process_start !== "number" || readProcStat(pid)?.startTime !== BigInt(state.init_process_start)) continue;
      const ns = pidNamespaceOf(pid);
      if (ns === undefined) continue;
      if (ns !== ownNs) namespaces.add(ns);
      else inits.push(pid);
    } catch {
      // not a container's state
    }
  }
  return (pid) => {
    const ns = pidNamespaceOf(pid);
    return (ns !== undefined && namespaces.has(ns)) || inits.some((i) => i === pid || descendsFrom(pid, i));
  };
}

/** A CRIU helper (this binary started with `__criu`) or CRIU itself, by its command line. */
function isCriuWork(cmdline: string[]): boolean {
  return cmdline.slice(1, 3).includes("__criu") || cmdline.some((a) => /\/criu\/worker-main\.ts$/.test(a)) || /(^|\/)criu$/.test(cmdline[0] ?? "");
}

/** How long removeCgroupDirs waits for killed tasks to leave a directory (a killed CRIU helper on a loaded machine can take more than a second). */
const CGROUP_REMOVE_MS = 5000;

/**
 * Removes cgroup directories this restore created, leaf first, retrying for up to CGROUP_REMOVE_MS while killed
 * tasks leave; throws naming what is left (the callers log it: a leftover would be taken for someone else's by
 * the next restore of the id, and never removed). With `ancestor` (the shim daemon, see emptyCreatedCgroups), a
 * directory that holds processes not descending from it, and every directory above it, is kept at once (a dying
 * helper of the restore's own descends from it, and is waited for): another
 * restore of the same checkpoint runs there now (containerd gives both the original's cgroups path), and its own
 * delete removes them. Before, each such directory was retried for the whole 5 s, ~50 s for a container's cgroups.
 */
export async function removeCgroupDirs(dirs: string[], ancestor?: number): Promise<{ kept: string[] }> {
  const sorted = [...new Set(dirs)].sort((a, b) => b.length - a.length);
  const left: string[] = [];
  const kept: string[] = [];
  // A process that ends between the listing and the walk up its parents (the restore's own helper, killed just before,
  // reaped meanwhile) breaks the walk: it is not another container's, and nor is one whose parent ended under the walk
  // (reparented to the daemon). Another container's is one that is still there, outside the daemon's tree, twice.
  const foreign = async (d: string) => (await listPidsRecursive(d).catch((): number[] => [])).filter((p) => !descendsFrom(p, ancestor!) && isAlive(p));
  const inUse = async (d: string) => {
    if (ancestor === undefined) return false;
    const first = await foreign(d);
    if (first.length === 0) return false;
    await Bun.sleep(20);
    return (await foreign(d)).some((p) => first.includes(p));
  };
  for (const d of sorted) {
    if (kept.some((k) => k.startsWith(`${d}/`))) {
      kept.push(d);
      continue;
    }
    let last: unknown;
    const deadline = performance.now() + CGROUP_REMOVE_MS;
    while (existsSync(d)) {
      try {
        rmdirSync(d);
      } catch (err) {
        last = err;
        if (await inUse(d)) {
          kept.push(d);
          break;
        }
        if (performance.now() > deadline) break;
        await Bun.sleep(20);
      }
    }
    if (existsSync(d) && !kept.includes(d)) left.push(`${d} (${last instanceof Error ? last.message : String(last)})`);
  }
  if (left.length > 0) throw new Error(`cgroups left behind: ${left.join(", ")}`);
  return { kept };
}
