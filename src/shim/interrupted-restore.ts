/**
 * A restore whose shim daemon died before it was done.
 *
 * The daemon writes runc's state.json for a restored container only once CRIU is done; until then the container's
 * cgroups (made at Create) and the tree CRIU is making in them belong to no runc container, and CRIU, run by the
 * daemon's helper, goes on without it. containerd's cleanup after a dead shim (`delete`, cleanup.ts) then ran
 * `runc delete`, which found nothing: a daemon killed in the middle of a restore left the restored tree running,
 * with its cgroups (seen here with a 1 GiB memhog). So the daemon marks a bundle while it restores into it
 * (RESTORE_MARKER, written at Create, removed when the restore is done or discarded), and `delete` finds a marked
 * bundle's restore stopped: the processes that hold files open in the restore's work directory (CRIU and its
 * lazy-pages daemon, this restore's and no other's), then everything in the container's cgroups, which are removed.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CryoError } from "../errors.ts";
import type { Logger } from "./logger.ts";

/** The marker file in the bundle of a container being restored. */
export const RESTORE_MARKER = "cryo-restoring";

/** CRIU's work directory of a restore into bundle (restore-container.ts keeps it there). */
export const restoreWorkDir = (bundle: string): string => join(bundle, "criu-restore-work");

export function markRestoring(bundle: string): void {
  writeFileSync(join(bundle, RESTORE_MARKER), "");
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
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = readdirSync(join(proc, name, "fd"));
    } catch {
      continue; // gone, or a kernel thread
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(join(proc, name, "fd", fd));
      } catch {
        continue;
      }
      if (target.startsWith(prefix)) {
        out.push(Number(name));
        break;
      }
    }
  }
  return out;
}

/**
 * Stops the restore a dead daemon left in bundle (see the module comment): kills CRIU's processes for it, then
 * the container's processes, removes its cgroups (from the spec's linux.cgroupsPath) and runc's state directory
 * when runc has no state in it, and removes the marker. Failures are logged; the rest goes on.
 */
export async function stopInterruptedRestore(bundle: string, stateDir: string, log: Logger): Promise<void> {
  const criu = processesHoldingFilesBelow(restoreWorkDir(bundle)).filter((pid) => pid !== process.pid);
  for (const pid of criu) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  if (criu.length > 0) log.warn(`killed CRIU's processes of a restore its shim did not finish: ${criu.join(", ")}`);
  try {
    const spec = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8")) as { linux?: { cgroupsPath?: unknown } };
    const cgroupsPath = spec.linux?.cgroupsPath;
    if (typeof cgroupsPath === "string" && cgroupsPath !== "") {
      const { hostCgroupMounts, openCgroup } = await import("../cgroups/open.ts");
      // On a hybrid host the restore made the container's cgroup2 directory too, as runc does.
      const versions = (await hostCgroupMounts()).mode === "hybrid" ? [1, 2] as const : [undefined];
      const pids = new Set<number>();
      for (const version of versions) {
        try {
          const cgroup = await openCgroup(version === undefined ? { cgroupsPath } : { cgroupsPath, version });
          for (const pid of await cgroup.pids().catch(() => [])) pids.add(pid);
          // Thawed, killed, waited for, and the directories removed, in every controller.
          await cgroup.destroy({ kill: true });
        } catch (err) {
          log.warn(`the cgroup${version ? ` (v${version})` : ""} of a restore its shim did not finish: ${CryoError.from(err).message}`);
        }
      }
      log.warn(`removed the cgroup ${cgroupsPath} of a restore its shim did not finish${pids.size > 0 ? `, killing ${[...pids].join(", ")}` : ""}`);
    }
  } catch (err) {
    log.warn(`the cgroups of a restore its shim did not finish: ${CryoError.from(err).message}`);
  }
  if (existsSync(stateDir) && !existsSync(join(stateDir, "state.json"))) rmSync(stateDir, { recursive: true, force: true });
  unmarkRestoring(bundle);
}
