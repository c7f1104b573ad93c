/**
 * The one cryo configuration file: its sections and their zod schemas (the single source of truth;
 * docs/config.md and the exported JSON Schema follow from them). Keys are snake_case in TOML and JSON.
 *
 * - `plugins`: the policy plugins (src/plugins' schema, reused as is);
 * - `checkpoint`: defaults for every checkpoint option a host may set, named like the container
 *   annotations (`cryo.checkpoint/tcp-established` <-> `checkpoint.tcp_established`); the lowest layer
 *   of plan resolution (config < annotations < request);
 * - `restore`: this host's settings for every restore (tcp close, veth pairs, LSM profile, cgroup mode),
 *   over what the checkpoint recorded and under what restore plugins return;
 * - `shim`: the shim daemon's own settings (how many `runc exec` it launches at once).
 */
import { z } from "zod";
import { compressionSchema, networkLockSchema, parseDurationSeconds, parseSize, planCgroupModeSchema, TIMEOUT_SECONDS_MAX } from "../checkpoint/plan-enums.ts";
import { pageServerHostSchema } from "../checkpoint/page-server-host.ts";
import { lsmProfileSchema } from "../checkpoint/lsm-profile.ts";
import { policyConfigSchema } from "../plugins/config.ts";
import { interfaceNameSchema } from "../plugins/interface-name.ts";

/** A namespace to restore empty: only the network namespace can be ("net" is CRIU's name for it). */
const emptyNamespaceSchema = z.enum(["network", "net"]);

/** CRIU log level 0..4. */
const criuLogLevelSchema = z.number().int().min(0).max(4);

/** `[checkpoint]`: defaults of checkpoint options (each optional; unset keeps cryo's built-in default). */
export const checkpointDefaultsSchema = z
  .strictObject({
    leave_running: z.boolean().optional().describe("keep the container running after the dump (built-in: true)"),
    tcp_established: z.boolean().optional().describe("dump and restore established TCP connections"),
    tcp_close: z.boolean().optional().describe("restore TCP connections closed"),
    tcp_skip_in_flight: z.boolean().optional().describe("skip connections still in the handshake"),
    ext_unix_sk: z.boolean().optional().describe("allow unix sockets connected outside the container"),
    shell_job: z.boolean().optional().describe("the container's tree is attached to an outside session/terminal"),
    file_locks: z.boolean().optional().describe("dump file locks"),
    pre_dump: z.boolean().optional().describe("only pre-dump memory (needs soft-dirty tracking)"),
    track_mem: z.boolean().optional().describe("track memory changes for a later incremental dump"),
    auto_dedup: z.boolean().optional().describe("punch pages out of parent images as they are copied"),
    manage_cgroups_mode: planCgroupModeSchema.optional().describe("CRIU cgroup manage mode: soft, full, strict or ignore"),
    empty_ns: z.array(emptyNamespaceSchema).optional().describe("namespaces restored empty (only network)"),
    lazy_pages: z.boolean().optional().describe("restore with pages served on demand"),
    page_server: z
      .strictObject({ address: pageServerHostSchema, port: z.number().int().min(0).max(65535) })
      .optional()
      .describe("page server for lazy pages"),
    lsm_profile: lsmProfileSchema.optional().describe("apparmor:NAME, selinux:LABEL or none: for the restored tree"),
    lsm_mount_context: z.string().min(1).optional().describe("SELinux mount context for restored mounts"),
    external: z.array(z.string().min(1)).optional().describe("CRIU --external entries"),
    compression: compressionSchema.optional().describe("page images: none or zstd"),
    network_lock: networkLockSchema.optional().describe("how CRIU locks the network while the container is frozen: nftables (built-in), iptables or skip"),
    local_pages: z.boolean().optional().describe("keep page images in this host's page store, not in the checkpoint (same-host restores only)"),
    compression_level: z.number().int().min(0).max(22).optional().describe("zstd level 1..22 (0: cryo's default, 1)"),
    log_level: criuLogLevelSchema.optional().describe("CRIU log level 0..4 (built-in: 4)"),
    // A size with K, M or G as the annotation takes it ("64M"), which the dump's ghost-file error suggests; only a
    // number was taken before, and the suggested "64M" was refused ("expected number, received string").
    ghost_limit: z
      .union(
        [
          z.number().int().min(0).max(0xffffffff),
          z.string().refine((v) => {
            const bytes = parseSize(v);
            return bytes !== undefined && bytes <= 0xffffffff;
          }, "want bytes, or a number with K, M or G (binary units), at most 4294967295 bytes"),
        ],
        { error: "want whole bytes, or a string with K, M or G (\"64M\")" },
      )
      .optional()
      .describe("largest deleted-but-open file the dump carries: bytes, or a string with K, M or G (\"64M\"); 0: CRIU's default, 1 MiB"),
    timeout: z
      // A string past a week is refused here too, so that the error names the file and the key as every other
      // field's does (checkpointOverrides refused it later, naming neither the file nor its field path).
      .union(
        [
          z.number().int().min(0).max(TIMEOUT_SECONDS_MAX),
          z.string().refine((v) => parseDurationSeconds(v) !== undefined, "want seconds, or a number with s, m or h (at most a week)"),
        ],
        // Neither a whole number nor a string (1.5, true): zod's own message was "Invalid input".
        { error: "want whole seconds, or a string with s, m or h (\"10m\")" },
      )
      .optional()
      .describe("abort a dump CRIU is still in after this long: seconds, or a string with s, m or h (\"10m\"); 0: no limit"),
  })
  .describe("defaults of checkpoint options; container annotations and request options override them");
/** `[checkpoint]` as written in the file. */
export type CheckpointDefaults = z.infer<typeof checkpointDefaultsSchema>;

/** A veth pair to re-create on restore (CRIU --veth-pair inside=outside). */
export const vethPairConfigSchema = z.strictObject({
  inside: interfaceNameSchema.describe("interface name inside the container"),
  outside: interfaceNameSchema.describe("host-side interface name"),
});

/** `[restore]`: this host's settings for restores (each optional; unset keeps what the checkpoint recorded). */
export const restoreDefaultsSchema = z
  .strictObject({
    tcp_close: z.boolean().optional().describe("restore TCP connections closed"),
    veth_pairs: z.array(vethPairConfigSchema).optional().describe("veth pairs to re-create (ignored when the network namespace is restored empty)"),
    lsm_profile: lsmProfileSchema.optional().describe("apparmor:NAME, selinux:LABEL or none: for the restored tree"),
    lsm_mount_context: z.string().min(1).optional().describe("SELinux mount context for restored mounts"),
    manage_cgroups_mode: planCgroupModeSchema.optional().describe("CRIU cgroup manage mode: soft, full, strict or ignore"),
    log_level: criuLogLevelSchema.optional().describe("CRIU log level 0..4"),
    mntns_compat_mode: z
      .boolean()
      .optional()
      .describe("CRIU's older mount engine (--mntns-compat-mode): it mounts in a copy of the host's mount namespace; only for checkpoints this host trusts"),
  })
  .describe("restore settings of this host; over the checkpoint's recorded options, under restore plugins' options");
/** `[restore]` as written in the file. */
export type RestoreDefaults = z.infer<typeof restoreDefaultsSchema>;

/** The most `[shim] max_parallel_execs` may be. */
export const MAX_PARALLEL_EXECS_LIMIT = 1024;

/** `[shim]`: the shim daemon's own settings (each optional; unset keeps the built-in default). */
export const shimSettingsSchema = z
  .strictObject({
    max_parallel_execs: z
      .number()
      .int()
      .min(1)
      .max(MAX_PARALLEL_EXECS_LIMIT)
      .optional()
      .describe("`runc exec` launches one shim daemon runs at once, shared fairly by its containers; more wait their turn (built-in: the CPUs the daemon may use, at least 2)"),
  })
  .describe("the shim daemon's settings, read from the daemon's config (CRYO_CONFIG or /etc/cryo)");
/** `[shim]` as written in the file. */
export type ShimSettings = z.infer<typeof shimSettingsSchema>;

/** The whole file: src/plugins' schema (plugins, with its duplicate-name check) extended with the other sections. */
export const cryoConfigSchema = policyConfigSchema.safeExtend({
  checkpoint: checkpointDefaultsSchema.default({}),
  restore: restoreDefaultsSchema.default({}),
  shim: shimSettingsSchema.default({}),
});
/** The configuration, validated, defaults filled in (plugin paths absolute after loading). */
export type CryoConfig = z.infer<typeof cryoConfigSchema>;

export { emptyCryoConfig } from "./find.ts";
