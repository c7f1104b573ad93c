/**
 * CRIU work a dead shim daemon left behind, for containerd's cleanup (the `delete` action, cleanup.ts).
 *
 * CRIU runs in the daemon's helper process and goes on when the daemon dies. Two cases left processes behind:
 * - a restore: the daemon writes runc's state.json for a restored container only once CRIU is done; until then the
 *   container's cgroups (made at Create) and the tree CRIU is making in them belong to no runc container, so `runc
 *   delete` found nothing: a daemon killed in the middle of a restore left the restored tree running, with its
 *   cgroups (seen here with a 1 GiB memhog);
 * - a post-copy dump: CRIU stays as the page server of the frozen source until a restore has every page; a daemon
 *   killed meanwhile left that CRIU and its helper waiting for ever (seen here; the container's zombie with them).
 * So `delete` kills the processes that hold files open in a CRIU work directory of the bundle (the dump's and the
 * restore's: this container's CRIU and its lazy-pages daemon, and no other), looked for only when such a directory
 * exists (they go once CRIU is done). And the daemon marks a bundle while it restores into it (RESTORE_MARKER,
 * written at Create, removed when the restore is done or discarded): `delete` then also kills what is in the
 * container's cgroups and removes them.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { CONTAINERD_CHECKPOINT_NAME, inContainerdTemp } from "../containerd/layout.ts";
import { CryoError } from "../errors.ts";
import type { Logger } from "./logger.ts";
import { commOf, fdTargets, isAlive } from "../sys/proc.ts";

/** The marker file in the bundle of a container being restored. */
export const RESTORE_MARKER = "cryo-restoring";

/** CRIU's work directory of a restore into bundle (restore-container.ts keeps it there). */
export const restoreWorkDir = (bundle: string): string => join(bundle, "criu-restore-work");

/** CRIU's work directory of a dump of bundle's container (checkpoint-dump.ts, unless the request names one). */
export const dumpWorkDir = (bundle: string): string => join(bundle, "criu-work");

export function markRestoring(bundle: string): void {
  writeFileSync(join(bundle, RESTORE_MARKER), "");
}

/**
 * Records in the marker, once the restore has started on the container's cgroups, the PID namespaces of the
 * processes that were in them before it (pidNamespacesIn): those of a running container whose cgroup the restore's
 * spec names, and where the cgroups are (cgroupsPath: the restore's, which restoredCgroupsPath may have made the
 * copy's own). Until this is written the restore has put nothing in the cgroups.
 */
export function recordRestoreCgroups(bundle: string, before: readonly string[], cgroupsPath?: string): void {
  writeFileSync(join(bundle, RESTORE_MARKER), JSON.stringify(cgroupsPath === undefined ? { before } : { before, cgroupsPath }));
}

/**
 * Records in the marker, before the restore makes its cgroups, the cgroupsPath it makes them at: not always the spec's
 * (restore-cgroups.ts restoredCgroupsPath gives a copy restored under a new id a cgroup of its own, where the spec
 * names its source's). A cleanup after a dead daemon that took the spec's would have killed the source's processes.
 */
export function recordRestoreCgroupsPath(bundle: string, cgroupsPath: string): void {
  writeFileSync(join(bundle, RESTORE_MARKER), JSON.stringify({ cgroupsPath }));
}

/** The marker's JSON fields, or undefined (no marker, an empty one from markRestoring, or not JSON). */
function readMarker(bundle: string): { before?: unknown; cgroupsPath?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(join(bundle, RESTORE_MARKER), "utf8")) as { before?: unknown; cgroupsPath?: unknown };
  } catch {
    return undefined;
  }
}

/** What the marker records: undefined before recordRestoreCgroups (or from an older daemon). */
export function readRestoreRecord(bundle: string): { before: string[] } | undefined {
  const before = readMarker(bundle)?.before;
  return Array.isArray(before) && before.every((x) => typeof x === "string") ? { before: before as string[] } : undefined;
}

/**
 * The cgroupsPath the marker records (recordRestoreCgroupsPath, recordRestoreCgroups), if any: absolute, or relative
 * as runc keeps one (below the cgroups of runc's parent; openCgroup takes it below this process's, which the shim's
 * `delete` shares with the daemon it outlived, both containerd's children, unless the daemon moved to a ShimCgroup).
 */
export function restoreCgroupsPathOf(bundle: string): string | undefined {
  const path = readMarker(bundle)?.cgroupsPath;
  return typeof path === "string" && path !== "" ? path : undefined;
}

/** A process's PID namespace ("pid:[4026531836]"), or undefined when it is gone. */
export function pidNamespaceOf(pid: number, proc = "/proc"): string | undefined {
  try {
    return readlinkSync(join(proc, String(pid), "ns", "pid"));
  } catch {
    return undefined;
  }
}

/** The PID namespaces of pids (gone ones skipped), without repeats. */
export function pidNamespacesOf(pids: readonly number[], proc = "/proc"): string[] {
  return [...new Set(pids.map((p) => pidNamespaceOf(p, proc)).filter((n): n is string => n !== undefined))];
}

/** Of pids, those not in one of the namespaces `keep` (and still there): what a restore put in a cgroup it shares. */
export function pidsOutside(pids: readonly number[], keep: readonly string[], proc = "/proc"): number[] {
  return pids.filter((p) => {
    const ns = pidNamespaceOf(p, proc);
    return ns !== undefined && !keep.includes(ns);
  });
}

/** A path the bundle records for `delete` in a file of its own, named name: recorded, read (if any), forgotten. */
function pathRecord(name: string) {
  return {
    record: (bundle: string, path: string): void => writeFileSync(join(bundle, name), path),
    read: (bundle: string): string | undefined => {
      try {
        return readFileSync(join(bundle, name), "utf8") || undefined;
      } catch {
        return undefined;
      }
    },
    forget: (bundle: string): void => rmSync(join(bundle, name), { force: true }),
  };
}

/**
 * The bundle's record of containerd's extraction of the checkpoint a restore reads (restore-container.ts
 * containerdExtraction): the daemon removes that directory once the restore has every page, and `delete` removes it
 * when the daemon died before (containerd never does: a whole copy of the checkpoint each time).
 */
export const EXTRACTION_RECORD = "cryo-restore-extraction";
const extraction = pathRecord(EXTRACTION_RECORD);

/** Records dir as the restore's extraction of its checkpoint, for `delete`. */
export const recordExtraction = extraction.record;
/** The recorded extraction, if any. */
export const readExtraction = extraction.read;
/** The extraction is gone (removed by the daemon): nothing for `delete` to do. */
export const forgetExtraction = extraction.forget;

/**
 * The bundle's record of a local-pages restore's images directory in the page store (local-pages.ts restoreImagesDir:
 * `.restore-*`, the checkpoint's images linked or copied there): the daemon removes it once the restore has every
 * page, and `delete` removes it when the daemon died before. Before (fortieth session, a helper session's chaos run: a
 * daemon SIGKILLed 0.06 s into such a restore), it stayed in the store until `cryo pages prune` found it old enough.
 */
export const RESTORE_IMAGES_RECORD = "cryo-restore-images";
const restoreImages = pathRecord(RESTORE_IMAGES_RECORD);

/** Records dir as the restore's images directory in the page store, for `delete`. */
export const recordRestoreImages = restoreImages.record;
/** The recorded images directory, if any. */
export const readRestoreImages = restoreImages.read;
/** The images directory is gone (removed by the daemon): nothing for `delete` to do. */
export const forgetRestoreImages = restoreImages.forget;

/**
 * The bundle's record of containerd's directory of a Checkpoint in progress (checkpoint-dump.ts), for `delete`: a
 * daemon killed mid-dump fails containerd's request, which removes that directory at once, while the dump's CRIU,
 * which outlives the daemon until `delete` kills it, may still write files into it: containerd's removal then fails
 * and the directory stays (a helper session: 68 KB of CRIU images left, once in about 10 such kills).
 */
export const DUMP_RECORD = "cryo-dump-dir";

/** Records dir as the directory of the dump in progress when containerd made it (its name); returns whether it did. */
export function recordDumpDir(bundle: string, dir: string): boolean {
  if (!CONTAINERD_CHECKPOINT_NAME.test(basename(dir))) return false;
  writeFileSync(join(bundle, DUMP_RECORD), dir);
  return true;
}

/** The dump is over (answered): nothing for `delete` to do. */
export function forgetDumpDir(bundle: string): void {
  rmSync(join(bundle, DUMP_RECORD), { force: true });
}

/**
 * After stopCriuOf: removes the recorded directory of a dump its daemon did not finish (the record outlived the
 * daemon, so containerd's request failed and nobody reads the directory), when it is still containerd's kind of
 * directory in containerd's temp directory. Returns the removed path.
 */
export function removeAbandonedDumpDir(bundle: string, env: Record<string, string | undefined> = process.env): string | undefined {
  let dir: string;
  try {
    dir = readFileSync(join(bundle, DUMP_RECORD), "utf8");
  } catch {
    return undefined;
  }
  forgetDumpDir(bundle);
  if (!inContainerdTemp(dir, CONTAINERD_CHECKPOINT_NAME, env) || !existsSync(dir)) return undefined;
  rmSync(dir, { recursive: true, force: true });
  return dir;
}

export function unmarkRestoring(bundle: string): void {
  rmSync(join(bundle, RESTORE_MARKER), { force: true });
}

export function isRestoring(bundle: string): boolean {
  return existsSync(join(bundle, RESTORE_MARKER));
}

/** Pids of the processes with a descriptor open on a file below dir (read from /proc; gone processes skipped). */
export function processesHoldingFilesBelow(dir: string, proc = "/proc"): number[] {
  const prefix = `${dir}/`;
  const out: number[] = [];
  for (const name of readdirSync(proc)) {
    if (/^\d+$/.test(name) && fdTargets(Number(name), proc).some((t) => t.target.startsWith(prefix))) out.push(Number(name));
  }
  return out;
}


/** Kills the processes holding files open below bundle's CRIU work directories (see the module comment); returns their pids. */
export function stopCriuOf(bundle: string, log: Logger): number[] {
  const killed: number[] = [];
  for (const dir of [dumpWorkDir(bundle), restoreWorkDir(bundle)]) {
    if (!existsSync(dir)) continue;
    const pids = processesHoldingFilesBelow(dir).filter((pid) => pid !== process.pid);
    // Named by their command: CRIU, and a task of the container a dump's parasite was in (it holds CRIU's log).
    const named = pids.map((pid) => `${pid} (${commOf(pid) ?? "gone"})`);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    if (pids.length > 0) log.warn(`killed the processes its shim's CRIU left holding files in ${dir}: ${named.join(", ")}`);
    killed.push(...pids);
  }
  return killed;
}

/** Waits until none of pids is alive any more (a zombie nobody has reaped counts as gone), at most timeoutMs. */
export async function waitGone(pids: readonly number[], timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive) && Date.now() < deadline) await Bun.sleep(10);
}

/**
 * How long `delete` waits for each hierarchy's cgroup of an interrupted restore to empty. containerd 1.6 gives the
 * whole `delete` 5 s and kills it then: a tree that would not die (a helper session held CRIU's restore in gdb) kept
 * the cgroups busy for rmdir's default 5 s each, and the unmounts and removals after them never ran. A cgroup still
 * busy then is tried again at the end of `delete`, until 4 s into it (retryBusyCgroups).
 */
export const DEAD_RESTORE_CGROUP_WAIT_MS = 1000;

/** A cgroup of an interrupted restore still busy at stopInterruptedRestore's wait: tried again by retryBusyCgroups. */
export interface BusyCgroup {
  cgroupsPath: string;
  /** The hierarchy on a hybrid host (1: every v1 controller, 2: the unified one), undefined on a pure one. */
  version: 1 | 2 | undefined;
}

/**
 * Stops the restore a dead daemon left in bundle (see the module comment), after stopCriuOf: kills the container's
 * processes and removes its cgroups (from the spec's linux.cgroupsPath), removes runc's state directory when runc
 * has no state in it, and removes the marker. Failures are logged; the rest goes on. Returns the cgroups still busy
 * after DEAD_RESTORE_CGROUP_WAIT_MS, for `delete` to try again once the rest of its work is done (retryBusyCgroups).
 */
export async function stopInterruptedRestore(bundle: string, stateDir: string, log: Logger): Promise<BusyCgroup[]> {
  const busy: BusyCgroup[] = [];
  try {
    const spec = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8")) as { linux?: { cgroupsPath?: unknown; intelRdt?: { closID?: unknown } } };
    // A resctrl group of the container's own (no closID): made by the restore, removed as `runc delete` would.
    const rdt = spec.linux?.intelRdt;
    if (rdt && (rdt.closID === undefined || rdt.closID === "")) {
      const { hostIntelRdt, removeIntelRdtGroup } = await import("../cgroups/intel-rdt.ts");
      const root = hostIntelRdt().root;
      if (root !== undefined) {
        try {
          removeIntelRdtGroup(join(root, basename(stateDir)));
        } catch (err) {
          log.warn(`the resctrl group of a restore its shim did not finish: ${CryoError.from(err).message}`);
        }
      }
    }
    // Where the restore made its cgroups (the marker's), else the spec's.
    const cgroupsPath = restoreCgroupsPathOf(bundle) ?? spec.linux?.cgroupsPath;
    const record = readRestoreRecord(bundle);
    if (typeof cgroupsPath === "string" && cgroupsPath !== "" && record !== undefined && record.before.length > 0) {
      // The cgroups are a running original's too: only what the restore put there goes (its tree has a PID
      // namespace of its own), and the cgroups stay. Killing everything there killed the original (seen here).
      const { openCgroup } = await import("../cgroups/open.ts");
      try {
        const stray = pidsOutside(await (await openCgroup({ cgroupsPath })).pids(), record.before);
        (await import("../cgroups/procs.ts")).killAll(stray);
        log.warn(`the cgroup ${cgroupsPath} of a restore its shim did not finish is another container's too: left to it${stray.length > 0 ? `, killing the restore's ${stray.join(", ")}` : ""}`);
      } catch (err) {
        log.warn(`the cgroup of a restore its shim did not finish: ${CryoError.from(err).message}`);
      }
    } else if (typeof cgroupsPath === "string" && cgroupsPath !== "" && record === undefined) {
      // The restore had not started on the cgroups: nothing of it is in them. Removed only if empty (made at Create).
      const { openCgroup } = await import("../cgroups/open.ts");
      try {
        const cgroup = await openCgroup({ cgroupsPath });
        if ((await cgroup.pids().catch(() => [0])).length === 0) await cgroup.destroy();
      } catch (err) {
        log.warn(`the cgroup of a restore its shim did not finish: ${CryoError.from(err).message}`);
      }
    } else if (typeof cgroupsPath === "string" && cgroupsPath !== "") {
      const { hostCgroupMounts, openCgroup } = await import("../cgroups/open.ts");
      // On a hybrid host the restore made the container's cgroup2 directory too, as runc does.
      const versions = (await hostCgroupMounts()).mode === "hybrid" ? ([1, 2] as const) : [undefined];
      const pids = new Set<number>();
      for (const version of versions) {
        try {
          const cgroup = await openCgroup(version === undefined ? { cgroupsPath } : { cgroupsPath, version });
          for (const pid of await cgroup.pids().catch(() => [])) pids.add(pid);
          // Thawed, killed, waited for, and the directories removed, in every controller; waited for at most
          // DEAD_RESTORE_CGROUP_WAIT_MS per hierarchy, so that the rest of `delete` runs within containerd's time for it.
          await cgroup.destroy({ kill: true, timeoutMs: DEAD_RESTORE_CGROUP_WAIT_MS });
        } catch (err) {
          busy.push({ cgroupsPath, version });
          log.warn(`the cgroup${version ? ` (v${version})` : ""} of a restore its shim did not finish: ${CryoError.from(err).message}; tried again at the end of delete`);
        }
      }
      log.warn(`removed the cgroup ${cgroupsPath} of a restore its shim did not finish${pids.size > 0 ? `, killing ${[...pids].join(", ")}` : ""}`);
    }
  } catch (err) {
    log.warn(`the cgroups of a restore its shim did not finish: ${CryoError.from(err).message}`);
  }
  if (existsSync(stateDir) && !existsSync(join(stateDir, "state.json"))) rmSync(stateDir, { recursive: true, force: true });
  unmarkRestoring(bundle);
  return busy;
}

/**
 * Tries again, until deadline (a performance.now() time), to remove the cgroups stopInterruptedRestore found busy. A
 * killed tree that takes longer than DEAD_RESTORE_CGROUP_WAIT_MS to leave them (a loaded machine; a task frozen in
 * another hierarchy's freezer) left them for good before: containerd runs `delete` once after a dead shim, and a v1
 * removal stops at the first busy controller, so every controller's directory stayed, empty soon after (a helper
 * session's chaos run, and a fresh-clone CI run under load). What is still busy at the deadline is logged and left.
 */
export async function retryBusyCgroups(busy: readonly BusyCgroup[], deadline: number, log: Logger): Promise<void> {
  const { openCgroup } = await import("../cgroups/open.ts");
  for (const { cgroupsPath, version } of busy) {
    const what = `the cgroup ${cgroupsPath}${version ? ` (v${version})` : ""} of a restore its shim did not finish`;
    const left = Math.max(0, deadline - performance.now());
    try {
      const cgroup = await openCgroup(version === undefined ? { cgroupsPath } : { cgroupsPath, version });
      await cgroup.destroy({ kill: true, timeoutMs: left });
      log.warn(`${what}: removed on a second try`);
    } catch (err) {
      log.warn(`${what}: still busy, left: ${CryoError.from(err).message}`);
    }
  }
}
