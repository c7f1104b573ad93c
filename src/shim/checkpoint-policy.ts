/**
 * The policy plugins' `checkpoint` and `restore` hooks around cryo's CRIU calls (src/plugins).
 *
 * Checkpoint: after the options resolved (config < annotations < request), the container's facts
 * (annotations, image, processes, memory in use, established TCP connections) and the requested
 * options go through the plugin chain of the container's config; a deny fails the checkpoint with
 * PERMISSION_DENIED before anything is dumped, and the options the chain returns are the ones used.
 * The image is read through containerd only when the chain has plugins, and is then recorded in the
 * checkpoint's metadata. Restore: the checkpoint's metadata (with that image) and its options go
 * through the `restore` chain the same way, before CRIU runs. Plugins see their own option names (hook-schemas.ts); this file maps them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { CheckpointMetadata } from "../checkpoint/metadata.ts";
import { checkpointPlanSchema, type CheckpointPlan } from "../checkpoint/plan.ts";
import { invalidArgument } from "../errors.ts";
import type { CheckpointOptions as PluginCheckpointOptions, ImageInfo, PolicyEngine, RestoreOptions as PluginRestoreOptions } from "../plugins/index.ts";

/**
 * The policy engine for a runtime options' config path ("" = CRYO_CONFIG or the defaults); undefined when
 * no plugin of that config has a checkpoint or restore hook (then the plugin host need not be loaded).
 */
export type PolicyFor = (configPath: string) => Promise<PolicyEngine | undefined>;

/** Reads a container's image (containerd's API); null when it cannot be learnt. Called only when a plugin will see it. */
export type ImageReader = () => Promise<ImageInfo | null>;

/** A container's image reader by namespace and id (the daemon's containerd address bound in). */
export type ImageFor = (namespace: string, id: string) => Promise<ImageInfo | null>;

/** How many of the lines of /proc/<pid>/net/tcp{,6} text are ESTABLISHED (state 01). */
export function countEstablished(netTcp: string): number {
  let n = 0;
  for (const line of netTcp.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[3] === "01") n++;
  }
  return n;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

/** Facts about a running container the checkpoint hook gets. */
export function containerFacts(pid: number, cgroupPaths: Record<string, string>): { processCount: number; memoryBytes: number; tcpConnections: number } {
  const procsDir = cgroupPaths.pids ?? cgroupPaths.memory ?? cgroupPaths[""];
  const processCount = procsDir ? readOr(join(procsDir, "cgroup.procs"), "").split("\n").filter((l) => l.trim() !== "").length : 0;
  const memText = cgroupPaths.memory ? readOr(join(cgroupPaths.memory, "memory.usage_in_bytes"), "0") : cgroupPaths[""] ? readOr(join(cgroupPaths[""], "memory.current"), "0") : "0";
  const memoryBytes = Number(memText.trim()) || 0;
  const tcpConnections = countEstablished(readOr(`/proc/${pid}/net/tcp`, "")) + countEstablished(readOr(`/proc/${pid}/net/tcp6`, ""));
  return { processCount, memoryBytes, tcpConnections };
}

/** The plan's options as the checkpoint hook names them. */
export function pluginCheckpointOptions(p: CheckpointPlan): PluginCheckpointOptions {
  const o: PluginCheckpointOptions = {
    leaveRunning: p.leaveRunning,
    tcpEstablished: p.tcpEstablished,
    externalUnixSockets: p.externalUnixSockets,
    shellJob: p.shellJob,
    fileLocks: p.fileLocks,
    preDump: p.preDump,
    autoDedup: p.autoDedup,
    lazyPages: p.lazyPages,
    cgroupsMode: p.cgroupMode,
    emptyNamespaces: p.emptyNamespaces.map(() => "network"),
    external: [...p.external],
    localPages: p.localPages,
    compression: p.compression,
    compressionLevel: p.compressionLevel,
    networkLock: p.networkLock,
    ghostLimit: p.ghostLimit,
    timeoutSeconds: p.timeoutSeconds,
  };
  if (p.lsmProfile) o.lsmProfile = p.lsmProfile;
  if (p.lsmMountContext) o.lsmMountContext = p.lsmMountContext;
  return o;
}

/** The plan after the checkpoint chain's options. */
export function planWithCheckpointOptions(p: CheckpointPlan, o: PluginCheckpointOptions): CheckpointPlan {
  const next: Record<string, unknown> = { ...p };
  for (const k of [
    "leaveRunning",
    "tcpEstablished",
    "externalUnixSockets",
    "shellJob",
    "fileLocks",
    "preDump",
    "autoDedup",
    "lazyPages",
    "lsmProfile",
    "lsmMountContext",
    "localPages",
    "compression",
    "compressionLevel",
    "networkLock",
    "ghostLimit",
    "timeoutSeconds",
  ] as const) {
    if (o[k] !== undefined) next[k] = o[k];
  }
  if (o.cgroupsMode !== undefined) next.cgroupMode = o.cgroupsMode;
  if (o.external !== undefined) next.external = [...o.external];
  if (o.emptyNamespaces !== undefined) {
    next.emptyNamespaces = [
      ...new Set(
        o.emptyNamespaces.map((n) => {
          if (n === "network" || n === "net") return "net";
          throw invalidArgument(`plugin checkpoint options: empty namespace ${JSON.stringify(n)}`, { detail: "only network can be restored empty" });
        }),
      ),
    ];
  }
  return parsePlan(next, "plugin checkpoint options");
}

/** The checkpoint's options as the restore hook names them. */
export function pluginRestoreOptions(p: CheckpointPlan): PluginRestoreOptions {
  const o: PluginRestoreOptions = {
    tcpEstablished: p.tcpEstablished,
    tcpClose: p.tcpClose,
    cgroupsMode: p.cgroupMode,
    fileLocks: p.fileLocks,
    externalUnixSockets: p.externalUnixSockets,
    shellJob: p.shellJob,
  };
  if (p.lsmProfile) o.lsmProfile = p.lsmProfile;
  if (p.lsmMountContext) o.lsmMountContext = p.lsmMountContext;
  return o;
}

/** The options a restore uses after the restore chain's options (veth pairs: restoreDecision). */
export function planWithRestoreOptions(p: CheckpointPlan, o: PluginRestoreOptions): CheckpointPlan {
  const next: Record<string, unknown> = { ...p };
  for (const k of ["tcpEstablished", "tcpClose", "fileLocks", "externalUnixSockets", "shellJob", "lsmProfile", "lsmMountContext"] as const) {
    if (o[k] !== undefined) next[k] = o[k];
  }
  if (o.cgroupsMode !== undefined) next.cgroupMode = o.cgroupsMode;
  return parsePlan(next, "plugin restore options");
}

function parsePlan(v: unknown, where: string): CheckpointPlan {
  const r = checkpointPlanSchema.safeParse(v);
  if (!r.success) throw invalidArgument(where, { detail: r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
  return r.data;
}

/** Runs the checkpoint chain; returns the plan to dump with (throws PERMISSION_DENIED on a deny). */
export async function checkpointPolicy(
  engine: PolicyEngine | undefined,
  input: { id: string; namespace: string; annotations: Record<string, string>; pid: number; cgroupPaths: Record<string, string>; plan: CheckpointPlan; image?: ImageReader },
): Promise<CheckpointPlan> {
  if (!engine || engine.plugins.length === 0) return input.plan;
  const { options } = await engine.checkpointOptions({
    id: input.id,
    namespace: input.namespace,
    annotations: input.annotations,
    image: input.image ? await input.image() : null,
    ...containerFacts(input.pid, input.cgroupPaths),
    requested: pluginCheckpointOptions(input.plan),
  });
  return planWithCheckpointOptions(input.plan, options);
}

/** Runs the restore chain; returns the options to restore with (throws PERMISSION_DENIED on a deny). */
export async function restorePolicy(engine: PolicyEngine | undefined, input: { id: string; namespace: string; meta: CheckpointMetadata }): Promise<CheckpointPlan> {
  return (await restoreDecision(engine, { ...input, base: { plan: input.meta.options, vethPairs: [] } })).plan;
}

/** What a restore runs with: CRIU's options and the veth pairs to re-create. */
export interface RestoreChoice {
  plan: CheckpointPlan;
  vethPairs: { inside: string; outside: string }[];
}

/**
 * Runs the restore chain from `base` (the checkpoint's options with the config's `[restore]` over them);
 * the plugins' tcp close, LSM profile, cgroup mode and veth pairs win. Throws PERMISSION_DENIED on a deny.
 */
export async function restoreDecision(engine: PolicyEngine | undefined, input: { id: string; namespace: string; meta: CheckpointMetadata; base: RestoreChoice }): Promise<RestoreChoice> {
  const { meta, base } = input;
  if (!engine || engine.plugins.length === 0) return base;
  const requested = pluginRestoreOptions(base.plan);
  if (base.vethPairs.length > 0) requested.vethPairs = base.vethPairs.map((v) => ({ ...v }));
  const { options } = await engine.restoreAdmission({
    id: input.id,
    namespace: input.namespace,
    checkpoint: {
      containerId: meta.containerId,
      originHost: meta.host.hostname,
      kernel: meta.host.kernel,
      criuVersion: String(meta.host.criuVersion),
      image: meta.image ?? null,
      createdAt: meta.finishedAt,
      annotations: (meta.spec.annotations ?? {}) as Record<string, string>,
    },
    requested,
  });
  return { plan: planWithRestoreOptions(base.plan, options), vethPairs: options.vethPairs ? options.vethPairs.map((v) => ({ ...v })) : base.vethPairs };
}
