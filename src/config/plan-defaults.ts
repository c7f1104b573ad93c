/**
 * The config file's `checkpoint` and `restore` sections in the shape src/checkpoint's plan uses.
 *
 * Checkpoint: `checkpointOverrides(config.checkpoint)` is the lowest layer of resolveCheckpointPlan
 * (config < annotations < request). Restore: `restoreOptions(recorded, config.restore)` overlays this
 * host's restore settings on the options the checkpoint recorded; restore plugins come after.
 */
import { checkpointPlanSchema, parseDurationSeconds, type CheckpointOverrides, type CheckpointPlan } from "../checkpoint/plan.ts";
import { parseSize } from "../checkpoint/plan-enums.ts";
import { invalidArgument } from "../errors.ts";
import type { CheckpointDefaults, RestoreDefaults } from "./schema.ts";

/** A veth pair for CRIU's restore. */
export interface VethPair {
  inside: string;
  outside: string;
}

/** The `[checkpoint]` section as plan overrides (only the keys the file sets). */
export function checkpointOverrides(d: CheckpointDefaults): CheckpointOverrides {
  const o: CheckpointOverrides = {};
  if (d.leave_running !== undefined) o.leaveRunning = d.leave_running;
  if (d.tcp_established !== undefined) o.tcpEstablished = d.tcp_established;
  if (d.tcp_close !== undefined) o.tcpClose = d.tcp_close;
  if (d.tcp_skip_in_flight !== undefined) o.tcpSkipInFlight = d.tcp_skip_in_flight;
  if (d.ext_unix_sk !== undefined) o.externalUnixSockets = d.ext_unix_sk;
  if (d.shell_job !== undefined) o.shellJob = d.shell_job;
  if (d.file_locks !== undefined) o.fileLocks = d.file_locks;
  if (d.pre_dump !== undefined) o.preDump = d.pre_dump;
  if (d.track_mem !== undefined) o.trackMem = d.track_mem;
  if (d.auto_dedup !== undefined) o.autoDedup = d.auto_dedup;
  if (d.manage_cgroups_mode !== undefined) o.cgroupMode = d.manage_cgroups_mode;
  if (d.empty_ns !== undefined) o.emptyNamespaces = d.empty_ns.length > 0 ? ["net"] : [];
  if (d.lazy_pages !== undefined) o.lazyPages = d.lazy_pages;
  if (d.page_server !== undefined) o.pageServer = { ...d.page_server };
  if (d.lsm_profile !== undefined) o.lsmProfile = d.lsm_profile;
  if (d.lsm_mount_context !== undefined) o.lsmMountContext = d.lsm_mount_context;
  if (d.external !== undefined) o.external = [...d.external];
  if (d.compression !== undefined) o.compression = d.compression;
  if (d.compression_level !== undefined) o.compressionLevel = d.compression_level;
  if (d.local_pages !== undefined) o.localPages = d.local_pages;
  if (d.network_lock !== undefined) o.networkLock = d.network_lock;
  if (d.log_level !== undefined) o.logLevel = d.log_level;
  if (d.ghost_limit !== undefined) {
    const bytes = typeof d.ghost_limit === "number" ? d.ghost_limit : parseSize(d.ghost_limit);
    if (bytes === undefined) throw invalidArgument(`[checkpoint] ghost_limit = ${JSON.stringify(d.ghost_limit)}`, { detail: "want bytes, or a number with K, M or G (binary units)" });
    o.ghostLimit = bytes;
  }
  if (d.timeout !== undefined) {
    const seconds = typeof d.timeout === "number" ? d.timeout : parseDurationSeconds(d.timeout);
    if (seconds === undefined) throw invalidArgument(`[checkpoint] timeout = ${JSON.stringify(d.timeout)}`, { detail: "want seconds, or a number with s, m or h (at most a week)" });
    o.timeoutSeconds = seconds;
  }
  return o;
}

/** What a restore runs with before restore plugins: the plan CRIU gets and the veth pairs to re-create. */
export interface RestoreSettings {
  plan: CheckpointPlan;
  vethPairs: VethPair[];
}

/** The recorded options a restore starts from: without what reaches the host (see restoreSettings). No parse: the recorded plan was validated with the metadata. */
export function restoreBase(recorded: CheckpointPlan): CheckpointPlan {
  const { lsmProfile: _lsm, lsmMountContext: _ctx, ...kept } = recorded;
  // A checkpoint dumped in CRIU's ignore mode records no cgroup directory to restore below: it restores in that mode
  // (the tree stays in the container's cgroups, which the CRIU helper joins), which writes nothing of the image.
  return { ...kept, external: [], cgroupMode: recorded.cgroupMode === "ignore" ? "ignore" : "soft", mntnsCompatMode: false };
}

/**
 * The checkpoint's recorded options with this host's `[restore]` settings over them.
 *
 * Except what reaches the host, which a checkpoint (from anywhere) must not choose for the root shim: its
 * `external` entries (a CRIU `mnt[KEY]:PATH` would bind a host path into the container; the dump's entries are
 * not even in the restore's form), its LSM profile and mount context (e.g. "unconfined"), its cgroup mode
 * ("full" would have CRIU write the checkpoint's cgroup properties, device rules included, over the ones the
 * restore set), and CRIU's mount engine (the older one mounts in a copy of the host's mount namespace and
 * follows a symbolic link on a mount point out of the rootfs: a bind mount over a host directory, which reaches
 * the host where its mounts are shared). Those start from the restore's own defaults (none, none, "soft" as
 * `runc restore` or "ignore" for a checkpoint dumped so, the current engine), and only `[restore]` (and then restore
 * plugins, but for the engine) set them.
 */
export function restoreSettings(recorded: CheckpointPlan, r: RestoreDefaults): RestoreSettings {
  const next = restoreBase(recorded);
  if (r.tcp_close !== undefined) next.tcpClose = r.tcp_close;
  if (r.lsm_profile !== undefined) next.lsmProfile = r.lsm_profile;
  if (r.lsm_mount_context !== undefined) next.lsmMountContext = r.lsm_mount_context;
  if (r.manage_cgroups_mode !== undefined) next.cgroupMode = r.manage_cgroups_mode;
  if (r.log_level !== undefined) next.logLevel = r.log_level;
  if (r.mntns_compat_mode !== undefined) next.mntnsCompatMode = r.mntns_compat_mode;
  const plan = checkpointPlanSchema.safeParse(next);
  if (!plan.success) throw invalidArgument("restore options", { detail: plan.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
  return { plan: plan.data, vethPairs: (r.veth_pairs ?? []).map((v) => ({ ...v })) };
}
