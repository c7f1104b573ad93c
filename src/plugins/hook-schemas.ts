/**
 * The three hook contracts between cryo and its policy plugins: the single source of truth.
 *
 * Every hook is one exported WebAssembly function (named like the hook: `admit`, `checkpoint`,
 * `restore`) that reads one JSON document (the hook's input) and writes one JSON document (its
 * output). cryo validates the input before it sends it and the output when it comes back; the JSON
 * Schema published for authors in other languages (plugins/sdk/schema/*.json) is generated from
 * these zod schemas by plugins/gen-schema.ts.
 */
import { z } from "zod";
import { hookNameSchema, hookNames, type HookName } from "./hook-names.ts";
import { interfaceNameSchema } from "./interface-name.ts";

const stringMap = z.record(z.string(), z.string());

/** The image a container runs, as far as the shim can learn it from containerd. */
export const imageInfoSchema = z
  .object({
    name: z.string().describe("image reference, e.g. docker.io/library/busybox:latest"),
    digest: z.string().optional().describe("the image's target digest (sha256:...) as containerd stores it and `name@sha256:` pins it (an index digest for multi-platform images), when known"),
    labels: stringMap.default({}).describe("image config labels"),
    config: z.record(z.string(), z.unknown()).optional().describe("the OCI image config document, when known"),
  })
  .meta({ title: "ImageInfo" });
/** The image a container runs. */
export type ImageInfo = z.infer<typeof imageInfoSchema>;

const linuxNamespaceSchema = z.looseObject({ type: z.string(), path: z.string().optional() });

/**
 * The parts of an OCI runtime spec (config.json) that policies look at; every other field passes
 * through untouched (loose objects), so a plugin always sees the whole spec.
 */
export const ociSpecSchema = z
  .looseObject({
    ociVersion: z.string().optional(),
    process: z
      .looseObject({
        args: z.array(z.string()).optional(),
        env: z.array(z.string()).optional(),
        cwd: z.string().optional(),
        user: z.looseObject({ uid: z.number().optional(), gid: z.number().optional() }).optional(),
        capabilities: z
          .looseObject({
            bounding: z.array(z.string()).optional(),
            effective: z.array(z.string()).optional(),
            permitted: z.array(z.string()).optional(),
            inheritable: z.array(z.string()).optional(),
            ambient: z.array(z.string()).optional(),
          })
          .optional(),
        noNewPrivileges: z.boolean().optional(),
      })
      .optional(),
    root: z.looseObject({ path: z.string(), readonly: z.boolean().optional() }).optional(),
    hostname: z.string().optional(),
    mounts: z
      .array(
        z.looseObject({
          destination: z.string(),
          source: z.string().optional(),
          type: z.string().optional(),
          options: z.array(z.string()).optional(),
        }),
      )
      .optional(),
    annotations: stringMap.optional(),
    linux: z
      .looseObject({
        namespaces: z.array(linuxNamespaceSchema).optional(),
        maskedPaths: z.array(z.string()).optional(),
        readonlyPaths: z.array(z.string()).optional(),
        devices: z.array(z.looseObject({ path: z.string(), type: z.string() })).optional(),
        resources: z.looseObject({}).optional(),
        seccomp: z.looseObject({}).optional(),
        cgroupsPath: z.string().optional(),
      })
      .optional(),
  })
  .meta({ title: "OciSpec" });
/** An OCI runtime spec as policies see it (known fields typed, the rest passed through). */
export type OciSpec = z.infer<typeof ociSpecSchema>;

/** Resource limits a plugin may set, shaped like the spec's linux.resources. */
export const resourceChangesSchema = z
  .strictObject({
    memory: z
      .strictObject({
        limit: z.number().int().min(-1).optional().describe("bytes (-1: unlimited)"),
        reservation: z.number().int().min(-1).optional().describe("bytes (-1: unlimited)"),
        swap: z.number().int().min(-1).optional().describe("bytes, memory+swap (-1: unlimited)"),
      })
      .optional(),
    cpu: z
      .strictObject({
        shares: z.number().int().nonnegative().optional(),
        quota: z.number().int().min(-1).optional().describe("microseconds per period (-1: unlimited)"),
        period: z.number().int().nonnegative().optional().describe("microseconds"),
        cpus: z.string().optional().describe("cpuset, e.g. 0-1"),
        mems: z.string().optional(),
      })
      .optional(),
    pids: z.strictObject({ limit: z.number().int().min(-1).describe("-1 or 0: unlimited") }).optional(),
  })
  .meta({ title: "ResourceChanges" });
/** Resource limits a plugin may set. */
export type ResourceChanges = z.infer<typeof resourceChangesSchema>;

/** Changes an admission plugin asks for; cryo applies them to the spec before runc sees it. */
export const specChangesSchema = z
  .strictObject({
    env: z
      .record(z.string().regex(/^[^=\0]+$/, "an environment variable's name: not empty, without = or NUL"), z.string())
      .optional()
      .describe("environment variables to add or override (NAME -> value)"),
    annotations: z.record(z.string().min(1, "an annotation key: not empty"), z.string()).optional().describe("annotations to add or override"),
    resources: resourceChangesSchema.optional(),
    removeMounts: z.array(z.string()).optional().describe("mount destinations to remove from the spec"),
  })
  .meta({ title: "SpecChanges" });
/** Changes an admission plugin asks for. */
export type SpecChanges = z.infer<typeof specChangesSchema>;

/** Input of the `admit` hook (container admission, at Create). */
export const admitInputSchema = z
  .strictObject({
    id: z.string().describe("container id"),
    namespace: z.string().describe("containerd namespace"),
    bundle: z.string().describe("bundle directory"),
    annotations: stringMap.describe("the spec's annotations"),
    spec: ociSpecSchema,
    image: imageInfoSchema.nullable().describe("null when the shim could not learn the image"),
    restore: z
      .boolean()
      .default(false)
      .describe("true at the Create of a restore: its processes and mounts come back from the checkpoint, so env and removeMounts changes are not applied (resources and annotations are)"),
  })
  .meta({ title: "AdmitInput" });
/** Input of the `admit` hook. */
export type AdmitInput = z.infer<typeof admitInputSchema>;

/** Output of the `admit` hook. */
export const admitOutputSchema = z
  .strictObject({
    allow: z.boolean(),
    reason: z.string().optional().describe("why; shown to the user when denied"),
    changes: specChangesSchema.optional(),
  })
  .meta({ title: "AdmitOutput" });
/** Output of the `admit` hook. */
export type AdmitOutput = z.infer<typeof admitOutputSchema>;

/** cgroup handling on checkpoint/restore (CRIU's manage-cgroups mode). */
export const cgroupsModeSchema = z.enum(["soft", "full", "strict", "ignore"]);

/** The CRIU dump options a checkpoint-options plugin may read and change. */
export const checkpointOptionsSchema = z
  .strictObject({
    leaveRunning: z.boolean().optional(),
    tcpEstablished: z.boolean().optional(),
    externalUnixSockets: z.boolean().optional(),
    shellJob: z.boolean().optional(),
    fileLocks: z.boolean().optional(),
    preDump: z.boolean().optional(),
    autoDedup: z.boolean().optional(),
    lazyPages: z.boolean().optional(),
    cgroupsMode: cgroupsModeSchema.optional(),
    emptyNamespaces: z.array(z.string()).optional().describe("namespace types not dumped, e.g. network"),
    external: z.array(z.string()).optional().describe("CRIU --external entries"),
    lsmProfile: z.string().optional(),
    lsmMountContext: z.string().optional(),
    localPages: z.boolean().optional().describe("keep the page images in this host's page store instead of the checkpoint (same-host restores only)"),
    compression: z.enum(["none", "zstd"]).optional().describe("page images stored zstd-compressed (memory that does not compress is stored plain)"),
    compressionLevel: z.number().int().min(0).max(22).optional().describe("zstd level 1..22; 0: cryo's default (1)"),
    networkLock: z.enum(["nftables", "iptables", "skip"]).optional().describe("how CRIU cuts the container's network off while it is frozen"),
    ghostLimit: z
      .number()
      .int()
      .min(0)
      .max(0xffffffff)
      .optional()
      .describe("largest deleted-but-open file whose contents the dump carries, in bytes; 0: CRIU's default (1 MiB)"),
    timeoutSeconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 3600)
      .optional()
      .describe("seconds the dump may take before cryo aborts it (the container runs on); 0: no limit but the request's deadline"),
  })
  .meta({ title: "CheckpointOptions" });
/** CRIU dump options visible to policies. */
export type CheckpointOptions = z.infer<typeof checkpointOptionsSchema>;

/** Input of the `checkpoint` hook (checkpoint options, before CRIU runs). */
export const checkpointInputSchema = z
  .strictObject({
    id: z.string(),
    namespace: z.string(),
    annotations: stringMap,
    image: imageInfoSchema.nullable(),
    processCount: z.number().int().nonnegative(),
    memoryBytes: z.number().int().nonnegative().describe("memory in use by the container's cgroup"),
    tcpConnections: z.number().int().nonnegative().describe("open established TCP connections"),
    requested: checkpointOptionsSchema.describe("what the caller asked for (after earlier plugins)"),
  })
  .meta({ title: "CheckpointInput" });
/** Input of the `checkpoint` hook. */
export type CheckpointInput = z.infer<typeof checkpointInputSchema>;

/** Output of the `checkpoint` hook: options are merged over the requested ones. */
export const checkpointOutputSchema = z
  .strictObject({
    allow: z.boolean(),
    reason: z.string().optional(),
    options: checkpointOptionsSchema.optional().describe("options to set; unnamed options keep their value"),
  })
  .meta({ title: "CheckpointOutput" });
/** Output of the `checkpoint` hook. */
export type CheckpointOutput = z.infer<typeof checkpointOutputSchema>;

/** A veth pair to re-create on restore (CRIU --veth-pair inside=outside). */
export const vethPairSchema = z.strictObject({ inside: interfaceNameSchema, outside: interfaceNameSchema });

/** The CRIU restore options a restore-admission plugin may read and change. */
export const restoreOptionsSchema = z
  .strictObject({
    tcpEstablished: z.boolean().optional(),
    tcpClose: z.boolean().optional(),
    vethPairs: z.array(vethPairSchema).optional(),
    lsmProfile: z.string().optional(),
    lsmMountContext: z.string().optional(),
    cgroupsMode: cgroupsModeSchema.optional(),
    fileLocks: z.boolean().optional(),
    externalUnixSockets: z.boolean().optional(),
    shellJob: z.boolean().optional(),
  })
  .meta({ title: "RestoreOptions" });
/** CRIU restore options visible to policies. */
export type RestoreOptions = z.infer<typeof restoreOptionsSchema>;

/** What a checkpoint records about where and how it was made. */
export const checkpointMetadataSchema = z
  .strictObject({
    containerId: z.string().describe("id of the checkpointed container; differs from the input's id when the checkpoint is restored under a new name"),
    originHost: z.string(),
    kernel: z.string().describe("uname release of the origin host"),
    criuVersion: z.string(),
    image: imageInfoSchema.nullable(),
    createdAt: z.string().describe("RFC 3339 time of the checkpoint"),
    annotations: stringMap,
  })
  .meta({ title: "CheckpointMetadata" });
/** What a checkpoint records about its origin. */
export type CheckpointMetadata = z.infer<typeof checkpointMetadataSchema>;

/** Input of the `restore` hook (restore admission). */
export const restoreInputSchema = z
  .strictObject({
    id: z.string().describe("id of the container being restored"),
    namespace: z.string(),
    checkpoint: checkpointMetadataSchema,
    requested: restoreOptionsSchema.describe("what the caller asked for (after earlier plugins)"),
  })
  .meta({ title: "RestoreInput" });
/** Input of the `restore` hook. */
export type RestoreInput = z.infer<typeof restoreInputSchema>;

/** Output of the `restore` hook: options are merged over the requested ones. */
export const restoreOutputSchema = z
  .strictObject({
    allow: z.boolean(),
    reason: z.string().optional(),
    options: restoreOptionsSchema.optional(),
  })
  .meta({ title: "RestoreOutput" });
/** Output of the `restore` hook. */
export type RestoreOutput = z.infer<typeof restoreOutputSchema>;

export { hookNameSchema, hookNames, type HookName };

/** Each hook's input and output schema. */
export const hookSchemas = {
  admit: { input: admitInputSchema, output: admitOutputSchema },
  checkpoint: { input: checkpointInputSchema, output: checkpointOutputSchema },
  restore: { input: restoreInputSchema, output: restoreOutputSchema },
} as const;

/** Input type of each hook. */
export interface HookInputs {
  admit: AdmitInput;
  checkpoint: CheckpointInput;
  restore: RestoreInput;
}
/** Output type of each hook. */
export interface HookOutputs {
  admit: AdmitOutput;
  checkpoint: CheckpointOutput;
  restore: RestoreOutput;
}
