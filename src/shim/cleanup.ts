/**
 * The `delete` action: containerd runs it when a shim died, to clean up its container.
 * It stops the CRIU work the shim left (a post-copy page server, a restore it did not finish: orphaned-criu.ts),
 * force-deletes the container in runc (with the runc binary and root recorded at Create), unmounts the rootfs,
 * and prints a binary DeleteResponse: the init pid, exit status 137 (128 + SIGKILL) and the current time, as
 * containerd's runc shim reports.
 */
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { existsSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { labelsToAnnotations, readRuncState } from "../runtime/state-file.ts";
import { Code, CryoError, invalidArgument } from "../errors.ts";
import { wallClock, type WallTime } from "../sys/clock.ts";
import { RUNTIME_FILE, readRuntimeFile } from "./runtime-file.ts";
import type { ShimFlags } from "./flags.ts";
import type { Logger } from "./logger.ts";
import { addressPath } from "./grouping.ts";
import { removeRestoreYard } from "../criu/restore-yard.ts";
import { forgetRestoreImages, isRestoring, readExtraction, readRestoreImages, removeAbandonedDumpDir, restoreWorkDir, retryBusyCgroups, stopCriuOf, stopInterruptedRestore, waitGone } from "./orphaned-criu.ts";
import { unmountRootfs } from "./rootfs.ts";
import { removeIfDead } from "./socket-sweep.ts";

/** Exit status reported for a container whose shim died (128 + SIGKILL). */
export const DEAD_SHIM_EXIT_STATUS = 137;

/**
 * How long `delete` may take before it stops retrying busy cgroups: containerd 1.6 kills the `delete` action after 5 s,
 * and the process's own start comes before this count.
 */
const DELETE_BUDGET_MS = 4000;

/** Runs `delete`; returns the serialized DeleteResponse for stdout. */
export async function deleteShim(flags: ShimFlags, log: Logger): Promise<Uint8Array> {
  const started = performance.now();
  if (!flags.id) throw invalidArgument("delete", { detail: "-id is required" });
  const bundle = flags.bundle;
  const options = readRuntimeFile(bundle);
  // No record (Create never got that far): runc's default root for the namespace, as Create would have used.
  if (!existsSync(join(bundle, RUNTIME_FILE))) options.root = join(options.root, flags.namespace);
  // CRIU its shim left working for the container (a post-copy page server, a restore): killed first, and waited
  // for, since a CRIU still at work mounts more in its work directory (its cgroup yard: seen left behind when the
  // detach below came first).
  await waitGone(stopCriuOf(bundle, log));
  // The yard directory in /tmp that a restoring CRIU, killed just now or by the daemon that died, left behind.
  const yard = removeRestoreYard(join(restoreWorkDir(bundle), "restore.log"));
  if (yard !== undefined) log.warn(`removed ${yard}: the mount yard of a restore whose CRIU was killed`);
  // containerd's directory of a Checkpoint the dead daemon never answered, which that CRIU may have kept from going.
  const abandoned = removeAbandonedDumpDir(bundle);
  if (abandoned !== undefined) log.warn(`removed ${abandoned}: the directory of a checkpoint its shim died during (containerd's request failed with it)`);
  // A shim that died in the middle of a restore left CRIU's root (a bind of the rootfs), the restore's staged tmpfs
  // mounts and CRIU's cgroup yard: detached before anything is removed, so that neither the state directory's
  // removal reaches into the rootfs through them nor the bundle's removal fails on them.
  await detachRestoreLeftovers([join(options.root, flags.id, "criu-root"), restoreWorkDir(bundle)], log);
  // containerd's extraction of the checkpoint a restore read, which the dead daemon would have removed once every
  // page was in (containerd never does): the recorded path, if it still is such a directory. Before the cgroups
  // below, whose processes may take their time to go.
  await removeExtraction(bundle, log);
  await removeRestoreImages(bundle, log);
  // A restore it did not finish, whose tree runc has no state for (orphaned-criu.ts).
  const busy = isRestoring(bundle) ? await stopInterruptedRestore(bundle, join(options.root, flags.id), log) : [];
  // containerd 1.6 runs `delete` after every shim disconnect, also after a clean Delete: runc is
  // only run when it still has state for the container, and only on state that is this bundle's. Two containerds
  // share runc's root (/run/containerd/runc/<ns>): a Create refused with "container with given ID already exists"
  // because another containerd runs a container of that namespace and id ended here, and `runc delete --force`
  // killed and removed that other container (runc's shim does the same).
  const hasState = existsSync(join(options.root, flags.id));
  const other = hasState ? otherBundleOf(options.root, flags.id, bundle) : undefined;
  if (!hasState) {
    // nothing of runc's to delete
  } else if (other !== undefined) {
    log.warn(`container ${flags.id}: runc's state under ${options.root} is that of bundle ${other}, not of ${bundle} (another containerd's container of the same namespace and id): left alone`);
  } else if (await killedStuck(options.root, flags.id, log)) {
    // removed without runc (stuck-init.ts)
  } else {
    try {
      const { runcFor } = await import("./bundle-runc.ts");
      await runcFor(bundle, options).delete(flags.id, { force: true, cwd: bundle });
    } catch (err) {
      const e = CryoError.from(err);
      if (e.code !== Code.NOT_FOUND) log.warn(e.message);
    }
  }
  await unmountRootfs(bundle);
  await removeDeadSocket(bundle, log);
  // Last, in what is left of containerd's time for `delete`: the interrupted restore's cgroups that were still busy.
  if (busy.length > 0) await retryBusyCgroups(busy, started + DELETE_BUDGET_MS, log);
  let pid = 0;
  try {
    pid = Number(readFileSync(join(bundle, "init.pid"), "utf8").trim()) || 0;
  } catch {
    // never created
  }
  return encodeDeleteResponse(pid, DEAD_SHIM_EXIT_STATUS, wallClock());
}

/**
 * Kills the container's init before runc's delete when it has a PID namespace of its own (stuck-init.ts); true
 * when init was found stuck exiting, waiting for exec'd processes' zombies that the dead shim's heir does not reap,
 * and the container's cgroups and runc state were removed here (runc delete --force would wait 10 s and give up).
 * A container with poststop hooks is left to runc, which runs them.
 */
async function killedStuck(root: string, id: string, log: Logger): Promise<boolean> {
  let state;
  try {
    state = readRuncState(root, id);
  } catch {
    return false;
  }
  const hooks = (state.config as { hooks?: { poststop?: unknown[] } }).hooks;
  if ((hooks?.poststop?.length ?? 0) > 0) return false;
  const { killInit, ownPidNamespace, removeStuckContainer } = await import("./stuck-init.ts");
  if (!ownPidNamespace(state) || (await killInit(state)) !== "stuck") return false;
  await removeStuckContainer(root, state, log);
  return true;
}

/**
 * The bundle runc's state for id names (its `bundle=` label) when that is another bundle than this one and still there;
 * undefined when the state is this bundle's, names none, cannot be read, or names a bundle gone since (a stale state,
 * which the delete may clear). Paths are compared resolved: the delete runs in the bundle, a symlink's name may differ.
 */
export function otherBundleOf(root: string, id: string, bundle: string): string | undefined {
  let labelled: string;
  try {
    labelled = labelsToAnnotations(readRuncState(root, id).config.labels).bundle;
  } catch {
    return undefined;
  }
  if (labelled === "") return undefined;
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return undefined;
    }
  };
  const theirs = real(labelled);
  if (theirs === undefined) return undefined;
  return theirs === (real(bundle) ?? resolve(bundle)) ? undefined : labelled;
}

/** Removes containerd's extraction of the checkpoint a restore of the bundle read (recorded at the restore), if it is one. */
async function removeExtraction(bundle: string, log: Logger): Promise<void> {
  const extraction = readExtraction(bundle);
  if (extraction === undefined) return;
  const { containerdExtraction } = await import("./restore-source.ts");
  if (containerdExtraction(extraction) && existsSync(extraction)) {
    rmSync(extraction, { recursive: true, force: true });
    log.warn(`removed containerd's extraction of the checkpoint ${extraction}: the restore's shim died before it could`);
  }
}

/**
 * Removes the page store's images directory of a local-pages restore whose daemon died before it could (orphaned-criu.ts
 * RESTORE_IMAGES_RECORD): only a `.restore-*` directory directly in this environment's page store. Exported for tests.
 */
export async function removeRestoreImages(bundle: string, log: Logger): Promise<void> {
  const dir = readRestoreImages(bundle);
  if (dir === undefined) return;
  const { isRestoreImagesDir, pageStoreRoot } = await import("../checkpoint/local-pages.ts");
  if (isRestoreImagesDir(dir, pageStoreRoot(process.env)) && existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    log.warn(`removed ${dir}: the page store's images directory of a restore whose shim died before it could`);
  }
  forgetRestoreImages(bundle);
}

/** Detaches every mount at or below the given paths (deepest first); nothing to do, and no mount table read, when none exists. */
export async function detachRestoreLeftovers(paths: string[], log: Logger, mountinfo?: string): Promise<string[]> {
  const present = paths.filter((p) => existsSync(p));
  if (present.length === 0) return [];
  const { mountsUnderFrom } = await import("../containerd/cleanup.ts");
  const text = mountinfo ?? readFileSync("/proc/self/mountinfo", "utf8");
  const targets = present.flatMap((p) => mountsUnderFrom(text, p)).sort((a, b) => b.length - a.length);
  if (targets.length === 0) return [];
  const { MNT_DETACH, umount2 } = await import("../sys/index.ts");
  for (const t of targets) {
    try {
      umount2(t, MNT_DETACH);
      log.warn(`detached ${t}, left by a restore its shim did not finish`);
    } catch (err) {
      log.warn(`detach ${t}: ${CryoError.from(err).message}`);
    }
  }
  return targets;
}

/**
 * containerd.task.v2.DeleteResponse {pid = 1, exit_status = 2, exited_at = 3 (Timestamp: seconds = 1,
 * nanos = 2)}, written with protobuf-es's wire writer so that `delete` does not load the task API's
 * descriptors (unit-tested against toBinary(DeleteResponseSchema)).
 */
export function encodeDeleteResponse(pid: number, exitStatus: number, exitedAt: WallTime): Uint8Array {
  const { seconds, nanos } = exitedAt;
  const w = new BinaryWriter();
  if (pid !== 0) w.tag(1, 0).uint32(pid);
  if (exitStatus !== 0) w.tag(2, 0).uint32(exitStatus);
  w.tag(3, 2).fork();
  if (seconds !== 0n) w.tag(1, 0).int64(seconds);
  if (nanos !== 0) w.tag(2, 0).int32(nanos);
  w.join();
  return w.finish();
}

/**
 * Removes the socket file (and its pending markers) of the bundle's daemon when no daemon answers on it any
 * more, as containerd's runc shim removes its socket in `delete`: a daemon that was killed leaves no files in
 * the socket directory. Under the socket's lock, so a `start` launching a new daemon there is never undone; a
 * shared daemon that still serves other containers answers and is left alone.
 */
async function removeDeadSocket(bundle: string, log: Logger): Promise<void> {
  let path: string;
  try {
    path = addressPath(readFileSync(join(bundle, "address"), "utf8").trim());
  } catch {
    return; // `start` never wrote one
  }
  if (!path.startsWith("/") || !existsSync(path)) return;
  try {
    await removeIfDead(path);
  } catch (err) {
    log.warn(`remove socket ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
