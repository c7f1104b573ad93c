/**
 * Restore of a container from a checkpoint directory through libcriu, into a new bundle (same or new
 * container id), the way runc 1.1 prepares CRIU:
 *
 * 1. mount points of the spec's mounts are created in the rootfs (except below a tmpfs, which CRIU
 *    restores from its image);
 * 2. the rootfs is bind-mounted (private) on <runc root>/<id>/criu-root, CRIU's root (it needs a
 *    mount point whose parent is not overmounted);
 * 3. the container's cgroups are those of the checkpoint, moved to the container's cgroupsPath if that differs
 *    (containerd keeps the old cgroupsPath in a restored spec: a copy under a new id gets its own, restoredCgroupsPath);
 *    missing ones are created here (restore-cgroups.ts; and only
 *    those are removed on failure), the helper joins them so CRIU and the tree start in them;
 * 4. stdio: every pipe or external file CRIU recorded for fds 0..2 is inherited from the new task's
 *    descriptor n (`inherit_fd`), external namespaces from their files;
 * 5. the network namespace comes back from the images (it was dumped, not left empty);
 * 6. compressed page images are decompressed first; with lazy pages a lazy-pages daemon serves them.
 *
 * Afterwards runc's state.json is written for the new container (restore-state-file.ts). A failure
 * kills what CRIU left, undoes the mounts, and removes only the directories (state dir, cgroups) this
 * restore created; CRIU's log is kept as <bundle>/criu-restore.log and its lines are in the error. A
 * restore that succeeds keeps that log there too, as runc keeps its restore.log in its work directory.
 */
import { chmodSync, chownSync, closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
// The modules themselves, not src/checkpoint's index: through it `cryo inspect`'s command and CRIU's stats
// decoder (with its protobuf descriptors) would load with the restore's Create.
import { decompressImages } from "../checkpoint/compression.ts";
import { checkRecordedImages } from "../checkpoint/images-list.ts";
import { checkDecompressedPageImages, checkPageImages } from "../checkpoint/pages-check.ts";
import { checkTaskImages } from "../checkpoint/task-images-check.ts";
import { readRegularFile } from "../sys/regular-file.ts";
import { checkThreadCreds, liveTaskPids, readSeccompFilters, readThreadCores, type CredsSpec, type ThreadCore } from "../checkpoint/creds-check.ts";
import { recordedPersonalityLoss, showPersonality } from "../checkpoint/personality-check.ts";
import { enforceTaskLimits, ownLimits, taskLimitsBounds, type LimitsSpec, type TaskLimitsBounds } from "../checkpoint/limits-check.ts";
import { applyThreadStates, planThreadStates, restoredThreads, type ThreadState } from "../checkpoint/thread-state.ts";
import { checkCgroupImage } from "../checkpoint/cgroup-image-check.ts";
import { checkRestoreMemory, describeRoom, memoryCgroupOf, memoryRoom, oomKills, restoredMemoryFloor, showBytes, type MemoryCgroup, type MemoryFloor } from "../checkpoint/memory-check.ts";
import { checkCompatModeImages, checkMountImages, type MountSpec } from "../checkpoint/mount-image-check.ts";
import { checkFilesImage } from "../checkpoint/files-image-check.ts";
import { checkNamespaceImages, userNamespaceRoot } from "../checkpoint/ns-image-check.ts";
import { criuBinary, criuRestoresPersonality } from "../criu/binary.ts";
import { capabilityNumber, grantedCapabilities } from "../criu/capabilities.ts";
import { checkLocalPagesEntry, holdPageStoreEntry, pageStoreRoot, restoreImagesDir, type RestoreImages } from "../checkpoint/local-pages.ts";
import { createRestoreMountpoints, isMountpoint, prepareRestoreRoot, resolveDestInRoot } from "../checkpoint/restore-root.ts";
import { containerRestorePlan, externalNsKey, readHostCgroupFacts, runcContainerFrom, type RuncContainer } from "../checkpoint/runc-criu.ts";
// The cgroup modules themselves, not src/cgroups' index: that would also load the metrics encoder and its
// protobuf descriptors (engine.ts loads them for Stats only).
import { hostIntelRdt, planIntelRdt, removeIntelRdtGroup, type IntelRdtPlan } from "../cgroups/intel-rdt.ts";
import { hostCgroupMountsSync, ownCgroupsSync } from "../cgroups/open.ts";
import { parseLinuxResources, type LinuxResources } from "../cgroups/resources.ts";
import { runcDeviceRules } from "../cgroups/v1-devices.ts";
import type { Criu, LazyPagesServer, NotifyAction, RestoreStats } from "../criu/index.ts";
import { Code, CryoError, failedPrecondition, fsError } from "../errors.ts";
import { MNT_DETACH, umount2 } from "../sys/mount.ts";
import { mountsUnderFrom } from "../containerd/cleanup.ts";
import { killTree, processTree, readProcStat } from "../sys/proc.ts";
import { rfc3339Nano, wallClock } from "../sys/clock.ts";
import { restoreDecision, type PolicyFor } from "./checkpoint-policy.ts";
import { restoreBase, restoreSettings, type RestoreDefaults } from "../config/index.ts";
import { classifyCriuError } from "./criu-errors.ts";
import { restoreInheritFds } from "./checkpoint-stdio.ts";
import type { Logger } from "./logger.ts";
import { removeRestoreYard } from "../criu/restore-yard.ts";
import { forgetExtraction, forgetRestoreImages, isRestoring, recordRestoreCgroups, recordRestoreImages, recordRestoreCgroupsPath, restoreWorkDir } from "./orphaned-criu.ts";
import { confineToSpec, RUNC_NOTIFY_MOUNT } from "./restore-spec.ts";
import { runOciHooks } from "./oci-hooks.ts";
import { bindExternalsForUserns, detachStaged, stageEmptyTmpfs, stageMaskedDir } from "./restore-staging.ts";
import { readStartTicks, restoredRuncState, runcHooksFromSpec, runcSecurityFromSpec, specHooksOf, writeRuncStateFile, type RuncSecurity, type SpecHook } from "./restore-state-file.ts";

import type { RestoreSource } from "./restore-source.ts";
import {
  CGROUP_GONE_RETRIES,
  confineCgroupPaths,
  emptyCreatedCgroups,
  freezerIdentity,
  inFlight,
  missingChain,
  remakeRestoreCgroups,
  removeCgroupDirs,
  restoredCgroupPaths,
  restoredCgroupsPath,
  runcCgroupsPath,
  thawRestored,
  type RestoreCgroups,
} from "./restore-cgroups.ts";

import { startRestoreCgroups } from "./restore-cgroups.ts";

// What the checkpoint engine, which loads this module on first use (lazyModule), takes of the cgroups' part.
export { discardRestoreCgroups, startRestoreCgroups } from "./restore-cgroups.ts";

export { containerdExtraction, readRestoreSource, type RestoreSource } from "./restore-source.ts";

/** Where the lazy-pages daemon's log is kept, in the bundle, once it has served every page. */
export const LAZY_PAGES_LOG = "criu-lazy-pages.log";
/** Where CRIU's restore log is kept, in the bundle (removed with it), whether the restore failed or not. */
export const RESTORE_LOG = "criu-restore.log";

/** What a restore needs. */
export interface RestoreInput {
  id: string;
  bundle: string;
  runcRoot: string;
  source: RestoreSource;
  /** The new task's stdin, stdout, stderr as the shim prepared them (fd numbers, or undefined for none). */
  stdio: [number | undefined, number | undefined, number | undefined];
  criu: Criu;
  log: Logger;
  namespace?: string;
  /** The policy plugins' restore hook, for the container's config path (none: no plugins). */
  policyFor?: PolicyFor;
  /** The runtime options' config path (selects the plugin config). */
  configPath?: string;
  /** The config file's `[restore]` settings (over the checkpoint's options, under restore plugins'). */
  restore?: RestoreDefaults;
  /** The new task has a terminal: CRIU's new pty master must come back (Restored.ptsMaster), else the restore fails. */
  terminal?: boolean;
  /** prepareRestore's result, when it ran ahead (for this id, bundle and source). */
  prepared?: PreparedRestore;
  /** Aborts the restore (the task was killed or deleted meanwhile): the CRIU call is killed and everything undone. */
  signal?: AbortSignal;
  /** Remove source.dir once every page is in (containerd's own extraction of the image, which it leaves: containerdExtraction). */
  removeSource?: boolean;
}

/** The restored container. */
export interface Restored {
  pid: number;
  /** runc's state.json written for it. */
  statePath: string;
  /** Wall time of the CRIU call. */
  criuMs: number;
  /** The lazy-pages daemon still streaming pages in (lazy restore). */
  lazyPagesPid?: number;
  /** Settles once that daemon has exited: every page is in (or it failed). */
  lazyPagesExited?: Promise<void>;
  /** CRIU's restore statistics (forking and restore time, pages). */
  stats?: RestoreStats;
  /** The pty master of the restored tree's terminal, when it had one (the caller owns it); always there with `terminal`. */
  ptsMaster?: number;
}

/** What a restore reads and validates before it changes anything: the restored container's runc view, cgroups and limits. */
export interface PreparedRestore {
  container: RuncContainer;
  /** runc's cgroup_paths for the restored container (restoredCgroupPaths). */
  cgroupPaths: Record<string, string>;
  /** The bundle spec's linux.resources, validated (set on the cgroups before CRIU runs). */
  resources: LinuxResources | undefined;
  /** The bundle spec's hooks (checked by runcHooksFromSpec): runc's state.json takes them, not the checkpoint's. */
  specHooks?: unknown;
  /** The spec's ociVersion and annotations: the OCI state its prestart and createRuntime hooks read at the restore. */
  hookState?: { ociVersion: string; annotations?: Record<string, string> };
  /** What `runc exec` confines its processes with, from the spec (state.json's config). */
  security: RuncSecurity;
  /** The restored container's cgroupsPath, normalised (runc's config.cgroups.path): the spec's, or restoredCgroupsPath's. */
  cgroupsPath?: string;
  /** The spec's cgroupsPath when restoredCgroupsPath replaced it (the source's, kept by containerd's restore). */
  specCgroupsPath?: string;
  /** The cgroups, when the engine started making them ahead of Start (startRestoreCgroups). */
  cgroups?: RestoreCgroups;
  /** Resource limits and OOM score bounds some task exceeds (limits-check.ts): enforced at CRIU's post-restore. */
  limitsBounds?: TaskLimitsBounds;
  /**
   * The threads' CPU affinity, timer slack and I/O priority the checkpoint recorded (thread-state.ts): set at CRIU's
   * post-restore; realtimeIo when the spec grants what a real-time I/O class takes (CAP_SYS_NICE or CAP_SYS_ADMIN).
   */
  threadStates?: { states: ThreadState[]; realtimeIo: boolean };
  /** A warning for the log: recorded personalities this host's CRIU does not set again (checkRecordedPersonalities). */
  personalityLost?: string;
  /** The checkpoint's live tasks (zombies left out), by their recorded pids: the CRIU call fails when one dies under it. */
  liveTasks?: number[];
  /** The container's memory cgroup, whose OOM kills a failed restore reports (memory-check.ts). */
  memoryCgroup?: MemoryCgroup;
  /** The least memory the restored tree holds once restored, lazy pages included for a lazy restore (memory-check.ts). */
  memoryFloor: MemoryFloor;
  /** External key -> the mount's recorded flags (mount-image-check.ts externalMountFlags): a tmpfs made for CRIU gets them. */
  externalFlags?: ReadonlyMap<string, number>;
  /** The host ids of the root of the user namespace the spec gives the container (userNamespaceRoot). */
  usernsRoot?: { uid: number; gid: number };
  /** The resctrl group the spec's linux.intelRdt gives the container's tasks (cgroups/intel-rdt.ts). */
  intelRdt?: IntelRdtPlan;
  /** Why the spec's linux.intelRdt is ignored on this host (a closID alone, no resctrl), for the log. */
  intelRdtIgnored?: string;
}

/** Whether v is an object of strings (the spec's annotations). */
function isStringRecord(v: unknown): v is Record<string, string> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string");
}

/**
 * Reads the bundle's spec and validates it and the checkpoint's runc state, without side effects: the
 * engine runs it between Create's reply and Start (restoreContainer does it itself when not given).
 */
export function prepareRestore(id: string, bundle: string, source: RestoreSource, runcRoot: string, namespace?: string): PreparedRestore {
  try {
    return prepareChecked(id, bundle, source, runcRoot, namespace);
  } catch (err) {
    // A CRIU image the checks could not decode (src/criu/image-file.ts: "criu image core-1.img: corrupt: ...") says
    // which image, but not which restore or checkpoint: it reached the client as a bare DATA_LOSS.
    const e = CryoError.from(err);
    if (e.code === Code.DATA_LOSS && e.message.startsWith("criu image ")) throw e.wrap(`restore container ${id} from ${source.dir}`);
    throw err;
  }
}

function prepareChecked(id: string, bundle: string, source: RestoreSource, runcRoot: string, namespace?: string): PreparedRestore {
  const meta = source.metadata;
  const spec = JSON.parse(readRegularFile(join(bundle, "config.json"), `bundle ${bundle}: config.json`).toString("utf8")) as { ociVersion?: unknown; annotations?: unknown; hooks?: unknown; linux?: { cgroupsPath?: string; resources?: unknown; intelRdt?: unknown } };
  runcHooksFromSpec(spec.hooks); // checked now: a malformed hook fails the restore before anything is made
  const dumped = runcContainerFrom({ ...meta.runcState, id, config: { ...(meta.runcState.config as object), rootfs: join(bundle, "rootfs") } }, `checkpoint ${source.dir}: runc state`);
  const where = `restore container ${id} from ${source.dir}`;
  // Every image the dump wrote, at its size, before anything reads them (CRIU takes many as optional).
  if (meta.images) checkRecordedImages(source.dir, meta.images, where);
  // A container created with cryo.notify/socket has runc's notify directory mounted: the new container's, empty.
  const container = confineToSpec(dumped, spec, where, { notifyDir: join(runcRoot, id, "notify") });
  // The tasks' capabilities, no_new_privs and seccomp mode, which CRIU restores as the images say: within what the
  // spec gives a new container. Their resource limits and OOM score are held to what the spec (or this shim, for
  // what the spec leaves to runc's init) gives one, after CRIU restored them and before they run (limitsBounds).
  const threads = readThreadCores(source.dir);
  checkThreadCreds(threads, spec as CredsSpec, where, () => readSeccompFilters(source.dir));
  const limitsBounds = taskLimitsBounds(threads, spec as LimitsSpec, ownLimits());
  const liveTasks = liveTaskPids(threads);
  // Personalities cryo's CRIU recorded (thread core field persona), which a CRIU without its patch 0011 would not set.
  const personalityLost = checkRecordedPersonalities(threads, where);
  const granted = grantedCapabilities((spec as CredsSpec).process?.capabilities);
  const threadStates = meta.threads && meta.threads.length > 0 ? { states: meta.threads, realtimeIo: granted.has(capabilityNumber("CAP_SYS_NICE")) || granted.has(capabilityNumber("CAP_SYS_ADMIN")) } : undefined;
  // The cgroups CRIU moves the tasks into and the directories it makes: below the container's own. A checkpoint
  // dumped in CRIU's ignore mode records none and restores in that mode, where CRIU acts on none of it; checked at
  // Start when its restore's settings choose another mode.
  if (meta.options.cgroupMode !== "ignore") checkCgroupImage(source.dir, where);
  // What CRIU mounts: the spec's mounts with the spec's protections (read-only paths, masks, ro mounts).
  const externalFlags = checkMountImages(source.dir, spec as MountSpec, where, join(bundle, "rootfs"));
  // The names CRIU opens and makes regular files by (a deleted file's in its own mount namespace, the host's), and
  // descriptors CRIU makes as root that the tasks could not have made with the spec's capabilities.
  checkFilesImage(source.dir, where, granted);
  const mounts = hostCgroupMountsSync();
  // containerd always sets cgroupsPath; without one, runc's default: the id, a relative path. The source's, kept by
  // containerd's restore under a new id or namespace, becomes the new container's own (restoredCgroupsPath).
  const specCgroupsPath = spec.linux?.cgroupsPath || id;
  const cgroupsPath = restoredCgroupsPath(specCgroupsPath, id, namespace, meta);
  // A relative path is below the cgroups of runc's parent, this daemon (cgroupDirFor).
  const cgroupPaths = restoredCgroupPaths(meta, cgroupsPath, mounts, cgroupsPath.startsWith("/") ? undefined : ownCgroupsSync());
  confineCgroupPaths(cgroupPaths, mounts, `checkpoint ${source.dir}: cgroups`);
  const resources = spec.linux?.resources ? parseLinuxResources(spec.linux.resources) : undefined;
  // The pages CRIU writes back are charged to the container's memory cgroup before the tree runs: a checkpoint whose
  // memory cannot fit there is refused now, before anything is made (CRIU's tasks would be killed by the OOM killer).
  // A lazy restore's pages come back after the tree runs, and all of them soon: counted too (an OOM kill after Start
  // answered is worse than a refusal).
  const memoryCgroup = memoryCgroupOf(cgroupPaths, mounts);
  const memoryFloor = restoredMemoryFloor(source.dir, { lazy: meta.options.lazyPages === true });
  if (memoryCgroup) checkRestoreMemory(memoryFloor, memoryRoom(memoryCgroup, resources), where);
  // Every page image the pagemaps place in the checkpoint is there and long enough (CRIU names neither case clearly);
  // local pages are in this host's page store, not in the checkpoint.
  if (!meta.localPages) checkPageImages(source.dir, where);
  // Local pages: the store entry the metadata names is this checkpoint's, right inside this host's store (a crafted
  // checkpoint names any directory), before anything is made; restoreImagesDir checks it again as it links the pages.
  else checkLocalPagesEntry(meta.localPages, pageStoreRoot(process.env));
  // Every live task's memory map, pagemap and descriptor table: CRIU restores a task without its descriptor table with
  // no descriptor at all, and reports success.
  checkTaskImages(source.dir, liveTasks, where);
  // What `runc exec` confines its processes with: the spec's, converted as runc converts it (checked now: a profile
  // runc would refuse fails the restore before anything is made).
  const security = runcSecurityFromSpec(spec as Parameters<typeof runcSecurityFromSpec>[0], `restore container ${id}`);
  // The namespaces CRIU makes (the images decide) are the spec's, and a user namespace's maps too.
  checkNamespaceImages(source.dir, spec, where);
  const usernsRoot = userNamespaceRoot(spec, where);
  // The resctrl group of linux.intelRdt, which runc's create would give the container (runc's own restore does not).
  const rdtSpec = spec.linux?.intelRdt;
  const rdt = rdtSpec === undefined ? {} : planIntelRdt(rdtSpec, id, hostIntelRdt(), where);
  return {
    container,
    cgroupPaths,
    cgroupsPath: runcCgroupsPath(cgroupsPath),
    ...(cgroupsPath !== specCgroupsPath ? { specCgroupsPath } : {}),
    resources,
    specHooks: spec.hooks,
    hookState: {
      ociVersion: typeof spec.ociVersion === "string" ? spec.ociVersion : "",
      ...(isStringRecord(spec.annotations) && Object.keys(spec.annotations).length > 0 ? { annotations: spec.annotations } : {}),
    },
    security,
    limitsBounds,
    ...(threadStates ? { threadStates } : {}),
    liveTasks,
    externalFlags,
    ...(memoryCgroup ? { memoryCgroup } : {}),
    memoryFloor,
    ...(usernsRoot ? { usernsRoot } : {}),
    ...(rdt.plan ? { intelRdt: rdt.plan } : {}),
    ...(rdt.ignored ? { intelRdtIgnored: rdt.ignored } : {}),
    ...(personalityLost ? { personalityLost } : {}),
  };
}

/**
 * Sets the recorded affinity, timer slack and I/O priority on the restored threads of tree (host pids), at CRIU's
 * post-restore. What cannot be set as recorded (CPUs not here, a real-time class the spec does not allow, a failed
 * call) is logged as a warning; the restore goes on (thread-state.ts).
 */
function setThreadStates(tree: number[], threadStates: { states: ThreadState[]; realtimeIo: boolean }, log: Logger, label: string): void {
  try {
    const { changes, notes } = planThreadStates(threadStates.states, restoredThreads(tree), { realtimeIo: threadStates.realtimeIo });
    const applied = applyThreadStates(changes);
    log.info(`${label}: restored threads given the affinity, timer slack and I/O priority of the checkpoint`, { changed: applied.changed });
    const all = [...notes, ...applied.notes];
    if (all.length > 0 || applied.failed.length > 0) log.warn(`${label}: threads not given all of the checkpoint's affinity, timer slack or I/O priority`, { notes: all, failed: applied.failed });
  } catch (err) {
    log.warn(`${label}: threads' affinity, timer slack and I/O priority not set: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * The threads whose personality the checkpoint's CRIU recorded for its restore (cryo's build, thread core field persona), when
 * this host's CRIU will not set it (no patch 0011, criuRestoresPersonality): one whose running task depends on it
 * (personality-check.ts) fails the restore with FAILED_PRECONDITION before anything is made; the others are returned
 * as a warning for the log.
 */
function checkRecordedPersonalities(threads: readonly ThreadCore[], where: string): string | undefined {
  const recorded = threads.filter((t) => (t.core?.threadCore?.persona ?? 0) !== 0).map((t) => ({ pid: t.pid, tid: t.tid, value: t.core!.threadCore!.persona! }));
  if (recorded.length === 0 || criuRestoresPersonality(criuBinary())) return undefined;
  const losses = recordedPersonalityLoss(recorded);
  const why = "this host's CRIU does not restore a task's personality (it is not cryo's build with patch 0011), and nothing outside the task can set it";
  const running = losses.find((l) => l.whileRunning.length > 0);
  if (running) {
    const which = running.tid === running.pid ? `process ${running.pid}` : `thread ${running.tid} of process ${running.pid}`;
    throw failedPrecondition(where, { detail: `${which} of the checkpoint ran with personality ${showPersonality(running.value)} (${running.whileRunning.join(", ")}), which it depends on while it runs: ${why}` });
  }
  return `threads whose personality the restore loses, so that what they execute after it runs without it (${why}): ${losses.map((l) => `${l.tid} ${showPersonality(l.value)} (${l.atExec.join(", ")})`).join(", ")}`;
}

/** Restores the container; on failure nothing it made is left (see the module comment). */
export async function restoreContainer(input: RestoreInput): Promise<Restored> {
  const { id, bundle, source } = input;
  const meta = source.metadata;
  const label = `restore container ${id} from ${source.dir}`;
  const prepStart = performance.now();
  const rootfs = join(bundle, "rootfs");
  const prepared = input.prepared ?? prepareRestore(id, bundle, source, input.runcRoot, input.namespace);
  const { container, cgroupPaths, resources, specHooks, cgroupsPath, security, limitsBounds, threadStates, liveTasks, externalFlags, usernsRoot, intelRdt } = prepared;
  if (prepared.intelRdtIgnored) input.log.warn(`${label}: ${prepared.intelRdtIgnored}`);
  if (prepared.personalityLost) input.log.warn(`${label}: ${prepared.personalityLost}`);
  if (prepared.specCgroupsPath !== undefined) {
    input.log.info(`${label}: cgroupsPath ${cgroupsPath}, not the spec's ${prepared.specCgroupsPath} (the checkpointed container's, which containerd's restore keeps): a cgroup of its own`);
  }

  const undo: (() => Promise<void> | void)[] = [];
  const opened: number[] = [];
  let pid = 0;
  let ptsMaster: number | undefined;
  let lazy: LazyPagesServer | undefined;
  let cgroupsReady: Promise<void> | undefined;
  let localImages: RestoreImages | undefined;
  let revokeImages: (() => void) | undefined;
  let releaseEntry: (() => void) | undefined;
  let landed: (() => void) | undefined;
  const stateDir = join(input.runcRoot, id);
  const workDir = restoreWorkDir(bundle);
  const criu = input.criu;
  // Cgroups: made (so criu and the tree can join them first, as runc does) ahead of Start by the engine, or
  // here, while the mounts, restore root, stdio, options and CRIU's plan are worked out below; awaited before
  // the CRIU call (and before undo). A failure removes exactly what was made, after killing a helper that
  // joined them and was not used.
  const cgroups = input.prepared?.cgroups;
  try {
    input.signal?.throwIfAborted();
    // A runc container of this id exists: refused before this restore makes or joins any cgroup (they may be that
    // container's); cgroups made ahead by the engine are undone.
    const taken = existsSync(join(stateDir, "state.json"));
    const refuseTaken = () => failedPrecondition(`container ${id}`, { detail: `runc already has ${stateDir}/state.json` });
    if (taken && !cgroups) throw refuseTaken();
    if (!cgroups && cgroupsPath !== undefined && isRestoring(input.bundle)) recordRestoreCgroupsPath(input.bundle, cgroupsPath);
    const made = cgroups ?? startRestoreCgroups({ cgroupPaths, resources, intelRdt }, (dirs) => criu.prejoin?.(dirs));
    const { created: cgCreated, joinDirs, ready } = made;
    // For `delete` after a dead daemon (orphaned-criu.ts): what was in the cgroups before this restore, and where.
    if (isRestoring(input.bundle)) recordRestoreCgroups(input.bundle, made.before, cgroupsPath);
    cgroupsReady = ready;
    undo.push(() => {
      if (made.intelRdt?.created) removeIntelRdtGroup(made.intelRdt.dir);
    });
    undo.push(async () => {
      const { kept } = await removeCgroupDirs(cgCreated, process.pid);
      if (kept.length > 0) input.log.info(`${label}: cgroups kept: another container's processes run in them now (a restore of the same checkpoint)`, { kept: kept.join(",") });
    });
    undo.push(() => emptyCreatedCgroups(made.dirs, cgCreated, made.before, process.pid, { runcRoot: input.runcRoot, id }));
    undo.push(() => criu.releaseJoin?.(joinDirs));
    if (taken) throw refuseTaken();
    createRestoreMountpoints(container);

    const stateChain = missingChain(stateDir);
    mkdirSync(stateDir, { recursive: true, mode: 0o711 });
    const notifyDir = join(stateDir, "notify");
    if (container.config.mounts.some((m) => m.source === notifyDir)) {
      // runc's notify mount: the new container's directory. The daemon serves its socket again where the new spec has
      // cryo.notify/socket (engine.ts); without it, what the process sends goes nowhere.
      mkdirSync(notifyDir, { recursive: true, mode: 0o755 });
      input.log.info(`${label}: the process's sd_notify directory (${RUNC_NOTIFY_MOUNT}) is ${notifyDir}`);
    }
    undo.push(() => {
      // Never through CRIU's root while it is still a bind of the rootfs: the removal would empty the rootfs.
      if (isMountpoint(join(stateDir, "criu-root"))) throw new Error(`${stateDir}/criu-root is still mounted: ${stateDir} is left`);
      for (const d of stateChain) rmSync(d, { recursive: true, force: true });
    });
    // A bind whose source is gone from this host: CRIU would fail on it deep in the restore ("mnt-v2: Failed to
    // open_tree <source>: No such file or directory", code unknown); runc's restore stats each source first and fails
    // naming it. Said before CRIU runs (after the notify directory above, a source this restore makes itself).
    const tmpfsDests = container.config.mounts.filter((m) => m.device === "tmpfs").map((m) => m.destination);
    for (const m of container.config.mounts) {
      if (m.device !== "bind" || tmpfsDests.some((t) => m.destination.startsWith(`${t}/`))) continue;
      if (!existsSync(m.source)) {
        throw failedPrecondition(`${label}: bind mount at ${m.destination}`, { detail: `its source ${m.source} does not exist on this host` });
      }
    }
    const root = prepareRestoreRoot(rootfs, join(stateDir, "criu-root"));
    const unmountRoot = () => root[Symbol.dispose]();
    undo.push(unmountRoot);

    const stdioFds: number[] = [];
    for (const fd of input.stdio) {
      if (fd !== undefined) stdioFds.push(fd);
      else {
        const n = openSync("/dev/null", "r+");
        opened.push(n);
        stdioFds.push(n);
      }
    }
    removeWorkDir(workDir);
    mkdirSync(workDir, { recursive: true });
    // CRIU reads plain page images: every .zst is decompressed in place first, whatever the metadata says (a
    // checkpoint recording `compressed: false` with .zst images had CRIU read them as missing), and each is held to
    // the bytes its pagemap places there.
    const decompressed = await decompressImages(source.dir, { signal: input.signal });
    checkDecompressedPageImages(source.dir, decompressed.files, label);
    input.signal?.throwIfAborted();
    // Page images kept in this host's page store: CRIU restores from a directory inside the store (the
    // other images copied there, the pages hard-linked), removed once every page is in.
    let imagesDir = source.dir;
    if (meta.localPages) {
      const images = restoreImagesDir(source.dir, meta.localPages, pageStoreRoot(process.env));
      localImages = images;
      recordRestoreImages(bundle, images.dir);
      undo.push(() => {
        images[Symbol.dispose]();
        forgetRestoreImages(bundle);
      });
      if (images.copied) input.log.warn(`${label}: the page store's ${images.dir} allows no hard links to ${meta.localPages.dir}: its page images were copied`);
      imagesDir = images.dir;
    }
    // A container with a user namespace of its own: its root task opens the images as the namespace's root.
    if (usernsRoot) {
      // Local pages: the page images are the store entry's files (hard links), shared with any other restore of it.
      if (meta.localPages && localImages && !localImages.copied) {
        const entry = await holdPageStoreEntry(meta.localPages.dir, { signal: input.signal, onWait: () => input.log.info(`${label}: waiting for another restore into a user namespace from ${meta.localPages?.dir}`) });
        undo.push(entry.release);
        releaseEntry = entry.release;
      }
      const granted = grantImages(imagesDir, usernsRoot.gid);
      undo.push(granted.revoke);
      revokeImages = granted.revoke;
    }
    // Options: the checkpoint's, then this host's config `[restore]`, then the restore plugins' (tcp close, veth pairs, LSM profile, ...).
    // What reaches the host (external entries, LSM, cgroup mode) is never the checkpoint's (restoreBase). The
    // recorded options were validated with the metadata: without `[restore]` settings no parse is needed.
    const base = hasRestoreSettings(input.restore) ? restoreSettings(meta.options, input.restore) : { plan: restoreBase(meta.options), vethPairs: [] };
    const { plan: options, vethPairs } = input.policyFor ? await restoreDecision(await input.policyFor(input.configPath ?? ""), { id, namespace: input.namespace ?? "", meta, base }) : base;
    if (meta.options.cgroupMode === "ignore" && options.cgroupMode !== "ignore") checkCgroupImage(source.dir, label);
    // CRIU's strict mode refuses every cgroup that exists, and the container's are made before CRIU runs (as runc's
    // restore makes them): CRIU would fail it, "Abort restore of existing cgroups", after the work of getting there.
    if (options.cgroupMode === "strict") {
      throw failedPrecondition(label, {
        detail: "manage_cgroups_mode \"strict\" (this host's [restore] config or a restore plugin): CRIU's strict mode refuses to restore into cgroups that exist, and the container's cgroups are made before CRIU runs, as runc's restore makes them; \"full\" writes the checkpoint's cgroup properties over the spec's",
      });
    }
    // The older mount engine, which this host chose: no mount below a tmpfs whose contents come from the checkpoint.
    if (options.mntnsCompatMode) checkCompatModeImages(source.dir, label);
    // Mounts staged in the work dir for CRIU to bind into the container (restore-staging.ts): a read-only tmpfs for
    // the masked directories and a new tmpfs for each empty one, detached here once CRIU is done (the container's
    // mount keeps it).
    const staged: string[] = [];
    const unstage = () => detachStaged(staged, (d, e) => input.log.warn(`${label}: detach ${d}: ${e instanceof Error ? e.message : String(e)}`));
    undo.push(unstage);
    const maskedDirSource = stageMaskedDir(workDir, container.config.mask_paths, staged, label);
    const emptyTmpfs = stageEmptyTmpfs(workDir, meta.emptyTmpfs, externalFlags, staged, label);
    const plan = containerRestorePlan({
      // The LSM label CRIU gives every task: the spec's (as runc would start it), unless the configuration or a
      // restore plugin names one; never the one each task's image records (a crafted "unconfined").
      plan: options.lsmProfile ? options : { ...options, ...specLsmProfile(security) },
      vethPairs,
      container,
      imagesDir,
      workDir,
      criuRoot: root.path,
      host: readHostCgroupFacts(),
      cgroupPaths,
      ...(intelRdt ? { intelRdtDir: intelRdt.dir } : {}),
      descriptors: source.descriptors,
      emptyTmpfs,
      ...(maskedDirSource ? { maskedDirSource } : {}),
      resolveDest: (dest) => resolveDestInRoot(container.config.rootfs, dest),
    });
    // A user namespace of the container's own: each external mount's source is bound where the namespace's root can
    // reach it (restore-staging.ts).
    if (usernsRoot && plan.opts.extMounts) {
      plan.opts.extMounts = bindExternalsForUserns(plan.opts.extMounts, new Set(emptyTmpfs.map((t) => t.key)), workDir, externalFlags, staged, label);
    }
    // Lazy pages reach a task through a userfaultfd the task opens itself, which in a user namespace of its own takes
    // vm.unprivileged_userfaultfd=1 (CRIU otherwise: "Unable to open an userfaultfd descriptor: Operation not
    // permitted"). Without it the pages in the images are restored at once; a post-copy checkpoint has none there.
    if (usernsRoot && plan.opts.lazyPages && !unprivilegedUserfaultfd()) {
      if (plan.opts.pageServer) {
        throw failedPrecondition(label, { detail: "a post-copy restore into a user namespace needs vm.unprivileged_userfaultfd=1 on this host (its pages come only through a userfaultfd the task opens)" });
      }
      delete plan.opts.lazyPages;
      input.log.warn(`${label}: the container has a user namespace of its own and vm.unprivileged_userfaultfd is 0: every page is restored now, not lazily`);
    }
    // Pipes and external files (cryo's stdio FIFOs) of fds 0..2 come from the new task's descriptors.
    const inheritFds = restoreInheritFds(source.descriptors, meta.stdio.criuKeys, stdioFds);
    for (const ns of plan.namespaceFds) {
      let n: number;
      try {
        n = openSync(ns.path, "r");
      } catch (err) {
        const kind = ns.key === externalNsKey("net") ? "network" : "pid";
        const why = (err as { code?: string }).code === "ENOENT" ? "does not exist (the process or pod that held it is gone?)" : err instanceof Error ? err.message : String(err);
        throw failedPrecondition(label, { cause: err, detail: `the spec's ${kind} namespace ${ns.path} ${why}` });
      }
      opened.push(n);
      inheritFds.push({ fd: n, key: ns.key });
    }
    await cgroupsReady;
    input.signal?.throwIfAborted();
    // The memory cgroup's OOM kills so far (a cgroup that existed may have some): more after a failed CRIU call mean
    // the OOM killer took tasks of the tree being restored.
    const memoryCg = prepared.memoryCgroup;
    const oomBefore = memoryCg ? oomKills(memoryCg) : undefined;
    // Lazy pages (src/criu restoreLazy): a `criu lazy-pages` daemon serves the pages from the images on
    // demand (its socket is in the work dir, which the restore shares); the restore returns once the tree
    // runs, the daemon exits by itself when every page is back (lazyPages.done). A failed call kills it.
    const started = performance.now();
    input.log.info(`${label}: restoring the tree of ${meta.containerId} (pid ${meta.pid} at dump)`, { inherit: inheritFds.map((f) => f.key), lazy: plan.opts.lazyPages === true });
    let result;
    let freezerBefore: string | undefined;
    try {
      // No notify events (the root pid comes with the result): CRIU skips its notify round trips to the
      // helper. A terminal's pty master comes through one, so it keeps them; so does a tree that some task's
      // resource limits or OOM score put beyond the spec's: at post-restore every task is restored and none has
      // run again, and CRIU waits while they are brought within it (a failure there aborts the restore).
      if (limitsBounds) input.log.info(`${label}: tasks beyond the spec's resource limits or OOM score, held to it at post-restore`, { findings: limitsBounds.findings });
      // The spec's prestart and createRuntime hooks run at setup-namespaces, as runc's restore runs them
      // (libcontainer criuNotifications): CRIU waits for them; one that fails fails the restore.
      const hooks: [string, SpecHook[]][] = [
        ["prestart", specHooksOf(specHooks, "prestart")],
        ["createRuntime", specHooksOf(specHooks, "createRuntime")],
      ];
      const withHooks = hooks.some(([, list]) => list.length > 0);
      // Threads whose affinity, timer slack or I/O priority the checkpoint recorded (CRIU restores none of them) get
      // them at post-restore too, before they run again.
      const atPostRestore = limitsBounds !== undefined || threadStates !== undefined;
      const waitFor: NotifyAction[] = [...(atPostRestore ? (["post-restore"] as const) : []), ...(withHooks ? (["setup-namespaces"] as const) : [])];
      const callOptions =
        plan.opts.orphanPtsMaster || atPostRestore || withHooks
          ? {
              inheritFds,
              joinCgroups: plan.joinCgroups,
              liveTasks,
              signal: input.signal,
              waitFor: waitFor.length > 0 ? waitFor : undefined,
              onNotify: async (e: { action: string; pid: number }) => {
                if (e.action === "setup-namespaces" && withHooks) {
                  // runc's state of a container being restored is "stopped"; its pid the restored init's.
                  const state = { ociVersion: prepared.hookState?.ociVersion ?? "", id, status: "stopped", pid: e.pid, bundle, ...(prepared.hookState?.annotations ? { annotations: prepared.hookState.annotations } : {}) };
                  for (const [kind, list] of hooks) await runOciHooks(kind, list, state, bundle);
                  return;
                }
                if (e.action !== "post-restore" || e.pid <= 0) return;
                pid = e.pid;
                const tree = processTree(e.pid);
                if (limitsBounds) {
                  const changed = enforceTaskLimits(tree, limitsBounds);
                  input.log.info(`${label}: restored tasks held to the spec's resource limits and OOM score`, { changed });
                }
                if (threadStates) setThreadStates(tree, threadStates, input.log, label);
              },
            }
          : { inheritFds, joinCgroups: plan.joinCgroups, liveTasks, notify: false, signal: input.signal };
      const call = async () => {
        if (!plan.opts.lazyPages) return await input.criu.restore(plan.opts, callOptions);
        const r = await input.criu.restoreLazy(plan.opts, { ...callOptions, lazyLogLevel: meta.options.logLevel });
        const server = r.lazyPages;
        lazy = server;
        undo.push(async () => await server[Symbol.asyncDispose]());
        return r;
      };
      freezerBefore = freezerIdentity(cgroupPaths);
      landed = inFlight();
      let mountRetries = 1;
      let cgroupRetries = CGROUP_GONE_RETRIES;
      for (;;) {
        try {
          result = await call();
          break;
        } catch (err) {
          if (input.signal?.aborted) throw err;
          const message = CryoError.from(err).message;
          // CRIU reads the host's mount table to resolve external mounts (/dev/null, binds); a mount appearing or going
          // away meanwhile (other containers on a busy host) leaves it without a tree: try once more.
          if (/No root found for tree/.test(message) && mountRetries-- > 0) {
            input.log.warn(`${label}: CRIU saw the host's mount table change while reading it; retrying once`);
            continue;
          }
          // A cgroup directory went away under the restore: another restore of the checkpoint (containerd gives both the
          // same cgroups path), in another shim daemon, failed and removed what it made, before this restore's helper
          // joined (the helper: "join cgroup DIR: ... ENOENT") or CRIU moved the tree in (CRIU: "cg: Can't move ... No
          // such file or directory"). That removal may still be under way: made again, up to CGROUP_GONE_RETRIES times.
          const gone = /cg: Can't move .*No such file or directory|join cgroup .*ENOENT/.test(message);
          const remade = gone && cgroupRetries-- > 0 ? await remakeRestoreCgroups(made.created, cgroupPaths, resources) : [];
          if (remade.length === 0) throw err;
          input.log.warn(`${label}: cgroup directories went away before the restored tree was in them (another restore of the same checkpoint removed them); made again, retrying`, { dirs: remade.join(","), left: cgroupRetries });
        }
      }
    } catch (err) {
      throw criuRestoreError(err, { label, workDir, bundle, log: input.log, signal: input.signal, memoryCg, oomBefore, memoryFloor: prepared.memoryFloor });
    }
    unstage();
    pid = result.pid;
    // CRIU's full and strict modes restore the freezer state the checkpoint recorded: FROZEN when containerd paused
    // the task for its checkpoint. The restored task runs, as in the other modes (and as runc restores it).
    // So does its soft mode in a freezer cgroup it made itself: one that went away under this restore (another restore
    // of the same checkpoint removed it; seen in checkpoint-ctr's two restores at once, the good one left FROZEN).
    const fullMode = plan.opts.manageCgroupsMode === "full" || plan.opts.manageCgroupsMode === "strict";
    if (fullMode || freezerIdentity(cgroupPaths) !== freezerBefore) thawRestored(cgroupPaths, input.log, label);
    // Kept whenever CRIU sent one (the tree had a terminal), the caller owns it: with a terminal task it is the task's
    // terminal; without one it must stay open, or the restored tree would get a hangup.
    ptsMaster = result.ptsMaster;
    if (input.terminal && ptsMaster === undefined) throw failedPrecondition(`${label}`, { detail: "the task has a terminal but CRIU sent no pty master (the checkpoint has no terminal)" });
    const criuMs = performance.now() - started;
    input.log.debug(`${label}: timings`, {
      prepareMs: Math.round(started - prepStart),
      criuCallMs: Math.round(result.callMs),
      helperMs: Math.round(result.durationMs),
      warmHelper: result.warm,
      criuRestoreUs: result.stats.restore?.restoreTimeUs,
    });
    // CRIU's restore statistics, as the client read them from the work dir (the images dir may be read-only).
    const stats = result.stats.restore;

    const descriptors = stdioFds.map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return "/dev/null";
      }
    });
    const state = restoredRuncState(meta.runcState, {
      id,
      pid,
      startTicks: startTicksOrZero(pid),
      created: rfc3339Nano(wallClock()), // as runc writes it: nanoseconds, Go's format
      bundle,
      rootfs,
      cgroupPaths,
      descriptors,
      specHooks,
      security,
      namespaces: container.config.namespaces,
      cgroupsPath,
      deviceRules: runcDeviceRules(resources?.devices),
      ...(intelRdt ? { intelRdt: { path: intelRdt.dir, config: intelRdt.runcConfig } } : {}),
    });
    const statePath = writeRuncStateFile(input.runcRoot, id, state);
    landed?.();
    // Success: the state dir and cgroups stay; CRIU's root mount goes. From here on the container runs: what
    // fails to be tidied is logged, not thrown (a throw would kill the restored tree and leave its state).
    undo.length = 0;
    criu.releaseJoin?.(joinDirs); // used by the restore: nothing left to release
    const extraction = input.removeSource ? source.dir : undefined;
    settleRestored({ label, log: input.log, workDir, bundle, pid, started, lazy, localImages, extraction }, [
      ["detach CRIU's root", unmountRoot],
      ["give the images back their owners and modes", () => revokeImages?.()],
      ["let go of the page store entry", () => releaseEntry?.()],
      [`keep CRIU's log as ${RESTORE_LOG}`, () => renameSync(join(workDir, "restore.log"), join(bundle, RESTORE_LOG))],
    ]);
    const lazyPagesExited = lazy?.exited.then(
      () => {},
      () => {},
    );
    return { pid, statePath, criuMs, lazyPagesPid: lazy?.pid, stats, ...(lazyPagesExited ? { lazyPagesExited } : {}), ...(ptsMaster !== undefined ? { ptsMaster } : {}) };
  } catch (err) {
    landed?.(); // before the undo, which waits for the other restores' (emptyCreatedCgroups)
    // Cgroups still being made would outlive their removal below.
    await cgroupsReady?.catch(() => {});
    if (ptsMaster !== undefined) closeSync(ptsMaster);
    // The restored tree, not only its init: without a PID namespace of its own, the others would outlive it.
    if (pid > 0) killTree(pid);
    for (const u of undo.reverse()) {
      try {
        await u();
      } catch (e) {
        input.log.warn(`${label}: cleanup: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    try {
      removeWorkDir(workDir);
    } catch (e) {
      input.log.warn(`${label}: cleanup: ${e instanceof Error ? e.message : String(e)}`); // the restore's own error is the one to report
    }
    // A file the restore writes in the bundle (its marker, CRIU's root and work directory) on a full or read-only file
    // system (containerd's /run): RESOURCE_EXHAUSTED or FAILED_PRECONDITION naming the restore, not node's bare
    // "ENOSPC: no space left on device, write" as UNKNOWN.
    throw fsError(label, err, bundle);
  } finally {
    for (const n of opened) closeSync(n);
  }
}

/** A restore that succeeded, for settleRestored. */
interface SettledRestore {
  label: string;
  log: Logger;
  workDir: string;
  bundle: string;
  /** The restored tree's root, and when its CRIU call started. */
  pid: number;
  started: number;
  /** The lazy-pages daemon of a lazy restore, still serving pages. */
  lazy: LazyPagesServer | undefined;
  localImages: RestoreImages | undefined;
  /** containerd's extraction of the checkpoint, when the restore removes it. */
  extraction: string | undefined;
}

/**
 * Tidies after a restore that succeeded. From here on the container runs: what fails to be tidied is logged, not
 * thrown (a throw would kill the restored tree and leave its state). `now` runs at once; the work dir, a local-pages
 * restore's images directory and containerd's extraction go once every page is in: at once, or when a lazy restore's
 * lazy-pages daemon exits (its log is kept as <bundle>/criu-lazy-pages.log). A lazy-pages daemon that fails before
 * every page is back has the restored tree killed: its memory is incomplete.
 */
function settleRestored(r: SettledRestore, now: readonly [string, () => void][]): void {
  const { label, log, workDir, bundle, pid, lazy } = r;
  const tidy = (what: string, f: () => void) => {
    try {
      f();
    } catch (e) {
      log.warn(`${label}: ${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  for (const [what, f] of now) tidy(what, f);
  const removeWork = () => {
    tidy(`remove ${workDir}`, () => removeWorkDir(workDir));
    if (r.localImages) {
      const images = r.localImages;
      tidy("release the local page images", () => {
        images[Symbol.dispose]();
        forgetRestoreImages(bundle);
      });
    }
    const extraction = r.extraction;
    if (extraction !== undefined) {
      // A whole copy of the checkpoint (1 GiB of pages for a 1 GiB container), removed off the event loop rather
      // than before Start answers: removed in line, it held a 1 GiB restore 50 ms on a quiet machine and up to
      // 530 ms under load (bench/checkpoint-compare.ts --trace), with the event loop blocked. And at a low CPU
      // priority: the kernel frees the file's page cache in the remover's own time (~0.1 s per GiB), which on the
      // thread pool took a core from the rest of Start and containerd's (removeInBackground).
      const what = `remove containerd's extraction of the checkpoint, ${extraction}`;
      void removeInBackground(extraction).then(
        () => tidy(what, () => forgetExtraction(bundle)),
        (e: unknown) => log.warn(`${label}: ${what}: ${e instanceof Error ? e.message : String(e)}`),
      );
    }
  };
  if (lazy === undefined) return removeWork();
  const rootStart = readProcStat(pid)?.startTime;
  void lazy.done.then(
    (d) => log.info(`${label}: lazy-pages daemon done: every page back`, { ms: Math.round(performance.now() - r.started), daemonMs: Math.round(d.durationMs), pages: d.transferredPages }),
    (err) => {
      const why = err instanceof Error ? err.message : String(err);
      // The pages it had not served yet are gone for good: with its userfaultfd closed they read as zeros, and the
      // tree would run on memory that is not its own (a helper session: memhog found corrupt words, exit 2). It is
      // ended (SIGKILL: exit 137) unless it ended already (its root's start time tells a reused pid).
      if (rootStart !== undefined && readProcStat(pid)?.startTime === rootStart) {
        log.error(`${label}: lazy-pages daemon failed before every page was back: ${why}; the restored tree is killed (its memory is incomplete)`);
        killTree(pid);
      } else log.warn(`${label}: lazy-pages daemon failed: ${why}`);
    },
  );
  void lazy.exited.then(() => {
    try {
      // Whole or not at all: readers take the log once it exists.
      const kept = join(bundle, LAZY_PAGES_LOG);
      copyFileSync(lazy.logFile, `${kept}.tmp`);
      renameSync(`${kept}.tmp`, kept);
    } catch {
      // no log
    }
    removeWork();
  });
}

/** What criuRestoreError reads of the failed restore. */
interface FailedCriuCall {
  label: string;
  workDir: string;
  bundle: string;
  log: Logger;
  signal: AbortSignal | undefined;
  /** The container's memory cgroup, and its OOM kills before the call. */
  memoryCg: MemoryCgroup | undefined;
  oomBefore: number | undefined;
  memoryFloor: MemoryFloor;
}

/**
 * The error a failed CRIU restore call reports: the cancellation when the task was killed or deleted meanwhile;
 * RESOURCE_EXHAUSTED when the memory cgroup's OOM killer took tasks of the tree during the call (CRIU says only
 * "killed by signal 9"); otherwise CRIU's own, classified (criu-errors.ts). CRIU's log is kept as
 * <bundle>/criu-restore.log and named in the message; the mount yard a killed CRIU left is removed.
 */
function criuRestoreError(err: unknown, c: FailedCriuCall): CryoError {
  const { label, workDir, bundle, memoryCg, oomBefore } = c;
  // A CRIU killed in the middle (the task killed or deleted meanwhile, its helper lost) leaves its mount yard's
  // directory in /tmp; one that failed on its own has removed it.
  const yard = removeRestoreYard(join(workDir, "restore.log"));
  if (yard !== undefined) c.log.info(`${label}: removed ${yard}, the mount yard its killed CRIU left`);
  // Cancelled (the task killed or deleted meanwhile): that is the error, not what the killed call reported.
  if (c.signal?.aborted) return CryoError.from(c.signal.reason);
  const kept = join(bundle, RESTORE_LOG);
  try {
    copyFileSync(join(workDir, "restore.log"), kept);
  } catch {
    // CRIU wrote no log
  }
  // The CRIU client names the log in the work directory, which goes with the restore: the copy is named instead.
  const classified = classifyCriuError(err);
  const named = classified.message.replaceAll(` (log: ${join(workDir, "restore.log")})`, "");
  // CRIU says only that a task was "killed by signal 9" (or, its tree waited for, nothing): the memory cgroup says
  // whether its OOM killer did it. Read before the undo removes the cgroup.
  const oomAfter = memoryCg && oomBefore !== undefined ? oomKills(memoryCg) : undefined;
  if (memoryCg && oomBefore !== undefined && oomAfter !== undefined && oomAfter > oomBefore) {
    const n = oomAfter - oomBefore;
    const f = c.memoryFloor;
    const floor = `, and the checkpoint's ${f.processes === 1 ? "process holds" : `${f.processes} processes hold`} at least ${showBytes(f.bytes)} of memory once restored (its pages alone: the kernel charges page tables and the like beside them)`;
    const detail = `the OOM killer killed ${n === 1 ? "a process" : `${n} processes`} in the container's memory cgroup ${memoryCg.dir} while CRIU restored the tree (oom_kill ${oomBefore} -> ${oomAfter}): the cgroup can hold ${describeRoom(memoryRoom(memoryCg))}${floor}; restore it with a higher memory limit. CRIU: ${named}`;
    return new CryoError(Code.RESOURCE_EXHAUSTED, `${label} (log: ${kept}): resource exhausted: ${detail}`, { cause: classified });
  }
  return new CryoError(classified.code, `${label} (log: ${kept}): ${named}`, { cause: classified });
}

/** Whether a task without privilege over the host may open a userfaultfd (vm.unprivileged_userfaultfd; absent on kernels that always allow it). */
export function unprivilegedUserfaultfd(sysctl = "/proc/sys/vm/unprivileged_userfaultfd"): boolean {
  try {
    return readFileSync(sysctl, "utf8").trim() !== "0";
  } catch {
    return true;
  }
}

/**
 * Lets the root of a user namespace of the container's own read the images in dir. CRIU's restored root task opens
 * them itself, in that namespace: first with the host's root uid, before CRIU has written its maps (timens-0.img),
 * then as the namespace's root, whose host gid is gid (tty-info.img, the cores, the pages...). Neither has a
 * capability over a file of the host's root then. So dir and its regular files become root's with group gid,
 * dir group-searchable and the files group-readable; the directories above stay as they are (containerd's
 * extraction directory's parent is root's alone). revoke() puts owners and modes back once CRIU is done: a
 * local-pages restore's page images are hard links into the page store.
 */
export function grantImages(dir: string, gid: number): { revoke: () => void } {
  const was: { path: string; uid: number; gid: number; mode: number }[] = [];
  const grant = (path: string, bits: number) => {
    const st = lstatSync(path);
    was.push({ path, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 });
    chownSync(path, 0, gid);
    chmodSync(path, (st.mode & 0o7777 & ~0o7000) | bits);
  };
  let revoked = false;
  const revoke = () => {
    if (revoked) return;
    revoked = true;
    for (const w of was.reverse()) {
      chownSync(w.path, w.uid, w.gid);
      chmodSync(w.path, w.mode);
    }
  };
  try {
    grant(dir, 0o010);
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isFile()) grant(join(dir, e.name), 0o040);
  } catch (err) {
    revoke();
    throw CryoError.from(err).wrap(`the images in ${dir}, for the container's user namespace`);
  }
  return { revoke };
}

/**
 * Removes CRIU's work directory, first detaching whatever is still mounted in it: a CRIU that was killed (a
 * cancelled restore) leaves its cgroup yard there, the host's cgroup hierarchies mounted, and a recursive
 * removal would walk into them (rmdir of every empty cgroup of the host) and fail on their control files.
 */
export function removeWorkDir(workDir: string): void {
  for (const point of mountsUnderFrom(readFileSync("/proc/self/mountinfo", "utf8"), workDir)) {
    try {
      umount2(point, MNT_DETACH);
    } catch {
      // gone meanwhile, or under one detached before it
    }
  }
  rmSync(workDir, { recursive: true, force: true });
}

/** The CPU priority (nice) of removeInBackground's `rm`. */
export const BACKGROUND_REMOVE_NICE = 10;

/**
 * Removes dir (recursively, as `rm -rf --one-file-system`) in a child process at nice BACKGROUND_REMOVE_NICE, or on
 * the thread pool when that cannot run. Unlinking a large file frees its page cache in the context of the process
 * that drops the last reference: on the thread pool a 1 GiB extraction's removal took CPU time from the daemon's event
 * loop and from containerd right when a restore's Start was finishing (its last steps took 27-150 ms instead of 3-10
 * in 4 of 12 restores of 1 GiB at load 4-7, none at 16 MiB). Resolves once dir is gone; the child is not waited for
 * by the daemon's exit (it finishes on its own).
 */
export async function removeInBackground(dir: string): Promise<void> {
  let code: number | null = null;
  try {
    const proc = Bun.spawn(["nice", "-n", String(BACKGROUND_REMOVE_NICE), "rm", "-rf", "--one-file-system", "--", dir], { stdio: ["ignore", "ignore", "ignore"] });
    proc.unref();
    code = await proc.exited;
  } catch {
    // no nice or rm to run: the thread pool below
  }
  if (code === 0 && !existsSync(dir)) return;
  await rm(dir, { recursive: true, force: true });
}

/** Whether the config's `[restore]` sets anything over a checkpoint's recorded options. */
function hasRestoreSettings(r: RestoreDefaults | undefined): r is RestoreDefaults {
  return r !== undefined && Object.values(r).some((v) => v !== undefined);
}

/** The restored init may already have exited (a closed TCP connection, for one): runc then sees a stopped container. */
function startTicksOrZero(pid: number): number {
  try {
    return readStartTicks(pid);
  } catch {
    return 0;
  }
}

/** CRIU's lsm-profile option for the spec's label (`apparmor:P` or `selinux:L`), or nothing when the spec names none. */
export function specLsmProfile(security: RuncSecurity): { lsmProfile?: string } {
  if (security.app_armor_profile) return { lsmProfile: `apparmor:${security.app_armor_profile}` };
  if (security.process_label) return { lsmProfile: `selinux:${security.process_label}` };
  return {};
}
