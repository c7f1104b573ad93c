/**
 * CheckpointPlan: every checkpoint option, resolved from (in rising priority) the config file's
 * defaults, the container's `cryo.checkpoint/*` annotations, and the request's options
 * (containerd.runc.v1.CheckpointOptions or cryo.v1.CheckpointOptions).
 *
 * Request options are proto3: an unset value (false, "", 0, UNSPECIFIED, empty list) means "no
 * opinion", so a request can switch an option on or pick a value, and otherwise the lower layers
 * decide. Pure: no I/O.
 */
import { z } from "zod";
import { invalidArgument } from "../errors.ts";
import { CgroupMode as CryoCgroupMode, Compression as CryoCompression, NetworkLock as CryoNetworkLock, type CheckpointOptions as CryoCheckpointOptions } from "../gen/cryo/v1/options_pb.ts";
import type { CheckpointOptions as RuncCheckpointOptions } from "../gen/containerd/runc/options/oci_pb.ts";
import { isAbsolute } from "node:path";
import { ANNOTATION_PREFIX, CHECKPOINT_ANNOTATIONS, NUL_IN_PATH, parseCheckpointAnnotations, RELATIVE_PATH, RESTORE_ONLY_COMPAT_MODE } from "./annotations.ts";
import { compressionSchema, networkLockSchema, parseDurationSeconds, planCgroupModeSchema, TIMEOUT_SECONDS_MAX } from "./plan-enums.ts";
import { isPageServerHost, PAGE_SERVER_HOST_RULE, pageServerHostSchema } from "./page-server-host.ts";
import { isLsmProfile, LSM_PROFILE_RULE, lsmProfileSchema } from "./lsm-profile.ts";

/** The largest ghost-file limit CRIU takes (its option is a 32-bit count of bytes). */
export const GHOST_LIMIT_MAX = 0xffffffff;
export { compressionSchema, networkLockSchema, parseDurationSeconds, planCgroupModeSchema, TIMEOUT_SECONDS_MAX };

/** A path of the plan, from any source (request, annotation, config file, plugin): no file name has a NUL byte. */
const planPath = () => z.string().min(1).refine((p) => !p.includes("\0"), NUL_IN_PATH);

/** The resolved plan: every option has a value (or is explicitly absent for paths). */
export const checkpointPlanSchema = z
  .object({
    /** Directory for CRIU's images; absent: the path containerd gives. */
    imagePath: planPath().optional(),
    /** CRIU work directory; absent: the image directory. */
    workPath: planPath().optional(),
    /** Parent images for an incremental dump (relative to imagePath or absolute). */
    parentPath: planPath().optional(),
    /** Keep the container running after the dump (containerd's default; `exit` turns it off). */
    leaveRunning: z.boolean(),
    tcpEstablished: z.boolean(),
    tcpClose: z.boolean(),
    tcpSkipInFlight: z.boolean(),
    externalUnixSockets: z.boolean(),
    shellJob: z.boolean(),
    fileLocks: z.boolean(),
    /** Only pre-dump memory; the container keeps running. */
    preDump: z.boolean(),
    trackMem: z.boolean(),
    autoDedup: z.boolean(),
    cgroupMode: planCgroupModeSchema,
    /** Namespaces (CRIU names) to restore empty; only "net" exists. */
    emptyNamespaces: z.array(z.literal("net")),
    lazyPages: z.boolean(),
    // Port 0 (post-copy only): any free port, chosen at the dump and recorded in the checkpoint.
    pageServer: z.object({ address: pageServerHostSchema, port: z.number().int().min(0).max(65535) }).optional(),
    statusPath: planPath().optional(),
    lsmProfile: lsmProfileSchema.optional(),
    lsmMountContext: z.string().min(1).optional(),
    /** CRIU --external entries. */
    external: z.array(z.string().min(1)),
    /**
     * CRIU's older mount engine, restore only (CRIU refuses it on a dump): set by this host's `[restore]`,
     * never by a checkpoint (restoreBase). That engine mounts in a copy of the host's mount namespace and
     * follows a symbolic link on a mount point out of the rootfs; where the host's mounts are shared, the
     * mount reaches the host.
     */
    mntnsCompatMode: z.boolean(),
    compression: compressionSchema,
    /**
     * Page images kept in this host's page store (local-pages.ts) instead of the images directory
     * containerd tars: the checkpoint carries a reference, and only this host can restore it.
     */
    localPages: z.boolean(),
    /**
     * How CRIU locks the network while the tree is frozen; a restore unlocks with the method the dump
     * locked with (recorded in the metadata). nftables: one netlink transaction each way; iptables: an
     * iptables-restore run per IP version each way (here 70-90 ms to unlock, measured).
     */
    networkLock: networkLockSchema,
    /** zstd level 1..22; 0: cryo's default (DEFAULT_ZSTD_LEVEL, zstd's fastest regular level 1). */
    compressionLevel: z.number().int().min(0).max(22),
    /** CRIU log level 0..4. */
    logLevel: z.number().int().min(0).max(4),
    /**
     * Largest deleted-but-open file (a ghost file) whose contents the dump carries, in bytes; 0: CRIU's default,
     * 1 MiB. A larger one fails the dump ("Can't dump ghost file ... increase limit").
     */
    ghostLimit: z.number().int().min(0).max(GHOST_LIMIT_MAX),
    /**
     * Seconds CRIU's dump may take before cryo aborts it (CRIU killed, the container let go: src/shim/dump-abort.ts);
     * 0: no limit but the request's own deadline.
     */
    timeoutSeconds: z.number().int().min(0).max(TIMEOUT_SECONDS_MAX),
  })
  .strict();

/** Every checkpoint option, resolved. */
export type CheckpointPlan = z.infer<typeof checkpointPlanSchema>;

/** A partial plan: config-file defaults, or what annotations or a request set. */
export const checkpointOverridesSchema = checkpointPlanSchema.partial();
/** A partial plan. */
export type CheckpointOverrides = z.infer<typeof checkpointOverridesSchema>;

/** Built-in defaults, the bottom of the chain. */
export const BUILTIN_CHECKPOINT_PLAN: CheckpointPlan = {
  leaveRunning: true,
  tcpEstablished: false,
  tcpClose: false,
  tcpSkipInFlight: false,
  externalUnixSockets: false,
  shellJob: false,
  fileLocks: false,
  preDump: false,
  trackMem: false,
  autoDedup: false,
  cgroupMode: "soft",
  emptyNamespaces: [],
  lazyPages: false,
  external: [],
  mntnsCompatMode: false,
  compression: "none",
  localPages: false,
  networkLock: "nftables",
  compressionLevel: 0,
  logLevel: 4,
  ghostLimit: 0,
  timeoutSeconds: 0,
};

/** The request's options, tagged by the message they came in. */
export type CheckpointRequestOptions =
  | { kind: "runc"; options: RuncCheckpointOptions }
  | { kind: "cryo"; options: CryoCheckpointOptions }
  | undefined;

/** Inputs of plan resolution. */
export interface ResolveInput {
  /** The config file's checkpoint defaults. */
  defaults?: CheckpointOverrides;
  /** How errors name where the defaults came from (e.g. "config /etc/cryo/config.toml [checkpoint]"); default "the config file's [checkpoint]". */
  defaultsLabel?: string;
  /** The container's OCI annotations (only `cryo.checkpoint/*` keys are read). */
  annotations?: Record<string, string>;
  request?: CheckpointRequestOptions;
}

/**
 * Resolves the plan; INVALID_ARGUMENT names the bad annotation, option or default, and for options that cannot go
 * together, where each one was set (annotation, config file or request).
 */
export function resolveCheckpointPlan(input: ResolveInput): CheckpointPlan {
  const defaults = input.defaults === undefined ? {} : parseDefaults(input.defaults);
  const annotations = parseCheckpointAnnotations(input.annotations ?? {});
  const request = requestOverrides(input.request);
  const origin = (field: string): string | undefined => {
    if (Object.hasOwn(request, field)) return "the request's options";
    if (Object.hasOwn(annotations, field)) {
      const key = Object.keys(input.annotations ?? {}).find((k) => k.startsWith(ANNOTATION_PREFIX) && (CHECKPOINT_ANNOTATIONS as Record<string, { field: string }>)[k.slice(ANNOTATION_PREFIX.length)]?.field === field);
      if (key !== undefined) return `annotation ${key}=${JSON.stringify(input.annotations![key])}`;
    }
    if (Object.hasOwn(defaults, field)) return input.defaultsLabel ?? "the config file's [checkpoint]";
    return undefined;
  };
  const merged = { ...BUILTIN_CHECKPOINT_PLAN, ...defaults, ...annotations, ...request };
  const plan = checkpointPlanSchema.safeParse(merged);
  if (!plan.success) {
    const detail = plan.error.issues
      .map((i) => {
        const where = typeof i.path[0] === "string" ? origin(i.path[0]) : undefined;
        return `${i.path.join(".")}${where ? ` (${where})` : ""}: ${i.message}`;
      })
      .join("; ");
    throw invalidArgument("checkpoint options", { detail });
  }
  const from = (fields: string[]): string => {
    const set = fields.map((f) => [f, origin(f)] as const).filter((x): x is readonly [string, string] => x[1] !== undefined);
    return set.length === 0 ? "" : ` (${set.map(([f, w]) => `${f} from ${w}`).join("; ")})`;
  };
  checkCombinations(plan.data, from);
  return postCopyPlan(plan.data);
}

/**
 * Options that cannot go together: at the plan's resolution, and again after the checkpoint plugins, which may set any
 * of them. `from` says where the fields came from, for the error.
 */
export function checkCombinations(plan: CheckpointPlan, from: (fields: string[]) => string = () => ""): void {
  if (plan.preDump && plan.lazyPages) throw invalidArgument("checkpoint options", { detail: `pre-dump cannot be combined with lazy pages${from(["preDump", "lazyPages"])}` });
  // The status path gets its byte when a post-copy dump's page server serves (post-copy.ts): nothing else signals it.
  if (plan.statusPath !== undefined && !isPostCopy(plan)) {
    throw invalidArgument("checkpoint options", { detail: `status-path is for post-copy (lazy-pages with a page-server): it gets one byte once the page server serves${from(["statusPath", "lazyPages", "pageServer"])}` });
  }
  checkPageServerPort(plan, from);
  checkLocalPages(plan, from);
}

/** Whether the request, the annotations or the config's defaults name a network lock method (else cryo may choose one). */
export function networkLockAsked(input: ResolveInput): boolean {
  const request = input.request ? requestOverrides(input.request).networkLock : undefined;
  return (request ?? parseCheckpointAnnotations(input.annotations ?? {}).networkLock ?? input.defaults?.networkLock) !== undefined;
}

/** Port 0 means "a free port, chosen at the dump": only a post-copy dump listens; a page server to send to needs its port. */
export function checkPageServerPort(plan: CheckpointPlan, from: (fields: string[]) => string = () => ""): void {
  if (plan.pageServer?.port === 0 && !plan.lazyPages) {
    throw invalidArgument("checkpoint options", { detail: `page-server port 0 (a free port) is for post-copy (with lazy-pages) only; a page server to send the pages to needs its port${from(["pageServer"])}` });
  }
}

/**
 * A post-copy checkpoint: lazy pages with a page server. The dump then writes no lazy pages at all; it
 * serves them from the frozen source on the page server's address until the restoring host has them all.
 */
export function isPostCopy(plan: Pick<CheckpointPlan, "lazyPages" | "pageServer">): boolean {
  return plan.lazyPages && plan.pageServer !== undefined;
}

/**
 * The source of a post-copy checkpoint ends once its pages are sent (CRIU kills it): its memory has
 * moved to the restored copy. So leaveRunning is false for it, whatever the request said (containerd's
 * `ctr containers checkpoint --task` always asks to leave the container running).
 */
export function postCopyPlan(plan: CheckpointPlan): CheckpointPlan {
  return isPostCopy(plan) && plan.leaveRunning ? { ...plan, leaveRunning: false } : plan;
}

/**
 * Local pages move the page images out of the checkpoint after the dump: options that need them in
 * the images directory (compressed there, written to a page server instead, left for a later
 * incremental dump, or punched out of a parent's images) are refused with them.
 */
export function checkLocalPages(plan: CheckpointPlan, from: (fields: string[]) => string = () => ""): void {
  if (!plan.localPages) return;
  const clash = [
    plan.compression !== "none" && (["compression", `compression=${plan.compression}`] as const),
    plan.preDump && (["preDump", "pre-dump"] as const),
    plan.parentPath !== undefined && (["parentPath", "parent-path"] as const),
    plan.pageServer !== undefined && (["pageServer", "page-server"] as const),
    plan.autoDedup && (["autoDedup", "auto-dedup"] as const),
  ].filter((x) => x !== false);
  if (clash.length > 0) throw invalidArgument("checkpoint options", { detail: `local-pages cannot be combined with ${clash.map((c) => c[1]).join(", ")}${from(["localPages", ...clash.map((c) => c[0])])}` });
}

function parseDefaults(d: CheckpointOverrides): CheckpointOverrides {
  const r = checkpointOverridesSchema.safeParse(d);
  // One line per issue, naming the field (zod's own message is its issues as indented JSON).
  if (!r.success) throw invalidArgument("checkpoint defaults in the config file", { detail: r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
  return r.data;
}

/** Maps OCI/runc namespace names to CRIU's; only the network namespace can be restored empty. */
export function emptyNamespace(name: string, where: string): "net" {
  if (name === "network" || name === "net") return "net";
  throw invalidArgument(`${where}: empty namespace ${JSON.stringify(name)}`, { detail: "only network can be restored empty" });
}

/** A request's image, work or status path: absolute (RELATIVE_PATH) and without a NUL byte, or INVALID_ARGUMENT naming the field. */
function absolutePath(where: string, field: string, path: string): string {
  if (!isAbsolute(path)) throw invalidArgument(`${where}: ${field} ${JSON.stringify(path)}`, { detail: RELATIVE_PATH });
  if (path.includes("\0")) throw invalidArgument(`${where}: ${field} ${JSON.stringify(path)}`, { detail: NUL_IN_PATH });
  return path;
}

/** The overrides a request's options carry (unset proto3 values carry nothing). */
export function requestOverrides(req: CheckpointRequestOptions): CheckpointOverrides {
  if (!req) return {};
  const o: CheckpointOverrides = {};
  if (req.kind === "runc") {
    const r = req.options;
    if (r.exit) o.leaveRunning = false;
    if (r.openTcp) o.tcpEstablished = true;
    if (r.externalUnixSockets) o.externalUnixSockets = true;
    if (r.terminal) o.shellJob = true;
    if (r.fileLocks) o.fileLocks = true;
    if (r.emptyNamespaces.length > 0) o.emptyNamespaces = dedupe(r.emptyNamespaces.map((n) => emptyNamespace(n, "runc checkpoint options")));
    if (r.cgroupsMode !== "") {
      const mode = planCgroupModeSchema.safeParse(r.cgroupsMode);
      if (!mode.success) throw invalidArgument(`runc checkpoint options: cgroups mode ${JSON.stringify(r.cgroupsMode)}`, { detail: "want soft, full, strict or ignore" });
      o.cgroupMode = mode.data;
    }
    if (r.imagePath !== "") o.imagePath = absolutePath("runc checkpoint options", "image_path", r.imagePath);
    if (r.workPath !== "") o.workPath = absolutePath("runc checkpoint options", "work_path", r.workPath);
    if (r.parentPath !== "") o.parentPath = r.parentPath;
    return o;
  }
  const c = req.options;
  if (c.imagePath !== "") o.imagePath = absolutePath("cryo checkpoint options", "image_path", c.imagePath);
  if (c.workPath !== "") o.workPath = absolutePath("cryo checkpoint options", "work_path", c.workPath);
  if (c.parentPath !== "") o.parentPath = c.parentPath;
  if (c.exit) o.leaveRunning = false;
  if (c.tcpEstablished) o.tcpEstablished = true;
  if (c.tcpClose) o.tcpClose = true;
  if (c.skipInFlight) o.tcpSkipInFlight = true;
  if (c.externalUnixSockets) o.externalUnixSockets = true;
  if (c.shellJob) o.shellJob = true;
  if (c.fileLocks) o.fileLocks = true;
  if (c.preDump) o.preDump = true;
  if (c.trackMem) o.trackMem = true;
  if (c.autoDedup) o.autoDedup = true;
  const mode = cryoCgroupMode(c.cgroupMode);
  if (mode) o.cgroupMode = mode;
  if (c.emptyNamespaces.length > 0) o.emptyNamespaces = dedupe(c.emptyNamespaces.map((n) => emptyNamespace(n, "cryo checkpoint options")));
  if (c.lazyPages) o.lazyPages = true;
  if (c.pageServerAddress !== "" || c.pageServerPort !== 0) {
    if (c.pageServerAddress === "" || c.pageServerPort === 0) throw invalidArgument("cryo checkpoint options: page server", { detail: "address and port go together" });
    if (!isPageServerHost(c.pageServerAddress)) throw invalidArgument("cryo checkpoint options: page_server_address", { detail: `${JSON.stringify(c.pageServerAddress)}: ${PAGE_SERVER_HOST_RULE}` });
    if (c.pageServerPort > 65535) throw invalidArgument("cryo checkpoint options: page_server_port", { detail: `${c.pageServerPort}: a port is at most 65535` });
    o.pageServer = { address: c.pageServerAddress, port: c.pageServerPort };
  }
  if (c.statusPath !== "") o.statusPath = absolutePath("cryo checkpoint options", "status_path", c.statusPath);
  if (c.lsmProfile !== "") {
    if (!isLsmProfile(c.lsmProfile)) throw invalidArgument("cryo checkpoint options: lsm_profile", { detail: `${JSON.stringify(c.lsmProfile)}: ${LSM_PROFILE_RULE}` });
    o.lsmProfile = c.lsmProfile;
  }
  if (c.lsmMountContext !== "") o.lsmMountContext = c.lsmMountContext;
  if (c.external.length > 0) o.external = [...c.external];
  if (c.mntnsCompatMode) throw invalidArgument("cryo checkpoint options: mntns_compat_mode", { detail: RESTORE_ONLY_COMPAT_MODE });
  if (c.compression === CryoCompression.ZSTD) o.compression = "zstd";
  else if (c.compression === CryoCompression.NONE) o.compression = "none";
  if (c.compressionLevel !== 0) o.compressionLevel = c.compressionLevel;
  if (c.localPages) o.localPages = true;
  if (c.networkLock === CryoNetworkLock.NFTABLES) o.networkLock = "nftables";
  else if (c.networkLock === CryoNetworkLock.IPTABLES) o.networkLock = "iptables";
  else if (c.networkLock === CryoNetworkLock.SKIP) o.networkLock = "skip";
  else if (c.networkLock !== CryoNetworkLock.UNSPECIFIED) throw invalidArgument("cryo checkpoint options: network_lock", { detail: `unknown value ${c.networkLock}` });
  if (c.logLevel !== 0) o.logLevel = c.logLevel;
  if (c.ghostLimit !== 0) o.ghostLimit = c.ghostLimit;
  return o;
}

function cryoCgroupMode(m: CryoCgroupMode): CheckpointPlan["cgroupMode"] | undefined {
  switch (m) {
    case CryoCgroupMode.SOFT:
      return "soft";
    case CryoCgroupMode.FULL:
      return "full";
    case CryoCgroupMode.STRICT:
      return "strict";
    case CryoCgroupMode.IGNORE:
      return "ignore";
    default:
      return undefined;
  }
}

function dedupe<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}
