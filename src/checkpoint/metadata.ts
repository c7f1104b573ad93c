/**
 * The metadata file cryo writes beside CRIU's images: everything a restore on another machine needs
 * to know about where the checkpoint came from and how it was taken.
 *
 * Layout of a cryo checkpoint directory:
 *   cryo-checkpoint.json   this file
 *   <imagesDir>/           CRIU's images (pages-*.img possibly zstd-compressed); the shim writes "." (the images
 *                          beside this file), the only layout a restore reads
 */
import { statSync } from "node:fs";
import { readRegularFile } from "../sys/regular-file.ts";
import { writeFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { CryoError, invalidArgument, notFound } from "../errors.ts";
import { CRIU_IMAGE_NAME } from "./images-list.ts";
import { checkpointPlanSchema, GHOST_LIMIT_MAX, networkLockSchema, TIMEOUT_SECONDS_MAX } from "./plan.ts";
import { parsePreciseJson, stringifyPreciseJson } from "../sys/precise-json.ts";
import { threadStatesSchema } from "./thread-state.ts";

/** File name of the metadata inside a checkpoint directory. */
export const METADATA_FILE = "cryo-checkpoint.json";
/** Current metadata format version. */
export const METADATA_VERSION = 1;

const dumpStatsSchema = z.object({
  freezingTimeUs: z.number(),
  frozenTimeUs: z.number(),
  memdumpTimeUs: z.number(),
  memwriteTimeUs: z.number(),
  pagesScanned: z.number(),
  pagesSkippedParent: z.number(),
  pagesWritten: z.number(),
  pagesLazy: z.number(),
  irmapResolveUs: z.number().optional(),
  pagePipes: z.number().optional(),
  pagePipeBufs: z.number().optional(),
  shpagesScanned: z.number().optional(),
  shpagesSkippedParent: z.number().optional(),
  shpagesWritten: z.number().optional(),
});

/** Cgroup layout of the container at dump time. */
export const cgroupLayoutSchema = z.object({
  /** 1 (v1/hybrid) or 2 (unified). */
  version: z.union([z.literal(1), z.literal(2)]),
  /** controller -> absolute cgroupfs path (v1), or "" -> path (v2), as in runc's state.json cgroup_paths. */
  paths: z.record(z.string(), z.string()),
  /** The OCI spec's linux.cgroupsPath. */
  cgroupsPath: z.string().optional(),
});

/** The image a checkpointed container ran: its reference, target digest, config labels and config document. */
export const checkpointImageSchema = z.object({
  name: z.string(),
  digest: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  config: z.record(z.string(), z.unknown()).optional(),
});

/** Where a checkpoint's page images were put in the page store of the host that made it. */
export const localPagesSchema = z.object({
  /** The store entry: an absolute directory holding the files. */
  dir: z.string().startsWith("/"),
  /** The host that keeps them (named when a restore does not find them). */
  hostname: z.string(),
  /** 128 random bits, also in the entry's entry.json: a restore uses the entry only when they match. */
  token: z.string().regex(/^[0-9a-f]{32}$/),
  /**
   * Each page image moved there (pages-N.img), its size and its modification time in ns since the epoch (a decimal
   * string; absent in checkpoints from before it was recorded): a restore refuses a file changed since.
   */
  files: z.array(z.object({ name: z.string().regex(/^pages-\d+\.img$/), bytes: z.number().int().nonnegative(), mtimeNs: z.string().regex(/^\d+$/).optional() })),
});

/** The metadata document. */
/** At most this many entries are recorded for one tmpfs (runc-criu.ts tmpfsEntries); a fuller one is left to CRIU. */
export const TMPFS_ENTRIES_MAX = 256;
/** False when tmpfs data options lift a limit (size, nr_inodes or nr_blocks of 0 means unlimited). */
export function tmpfsOptionsLimited(options: string): boolean {
  // The kernel reads these with memparse (base 0: 0x.. hex, 0.. octal) and a unit letter, or size as a % of RAM.
  return !options.split(",").some((kv) => /^(size|nr_inodes|nr_blocks)=(0[xX]0*|0+)[kKmMgGtTpPeE%]?$/.test(kv));
}
/** The most empty tmpfs mounts a checkpoint may list (a container has a handful: /dev, /dev/shm, /run...). */
export const EMPTY_TMPFS_MAX = 64;

/** Access and modification times (milliseconds since the epoch, fractions kept), as lstat gave them. */
const tmpfsTimes = {
  atimeMs: z.number().finite().optional(),
  mtimeMs: z.number().finite().optional(),
};

/** The tmpfs's root directory as the container left it (chmod, chown and times after the mount). */
const tmpfsRootSchema = z.object({
  mode: z.number().int().min(0).max(0o7777),
  uid: z.number().int().min(0).max(0xffffffff),
  gid: z.number().int().min(0).max(0xffffffff),
  ...tmpfsTimes,
});

/** A tmpfs entry the restore makes (runc-criu.ts TmpfsEntry): its path stays inside the new tmpfs. */
const tmpfsEntrySchema = z
  .object({
    path: z
      .string()
      .max(4096)
      .refine((p) => p.split("/").every((n) => n !== "" && n !== "." && n !== ".." && !n.includes("\0")), "a relative path of names, none empty, . or .."),
    type: z.enum(["dir", "file", "symlink", "char", "block"]),
    mode: z.number().int().min(0).max(0o7777),
    uid: z.number().int().min(0).max(0xffffffff),
    gid: z.number().int().min(0).max(0xffffffff),
    major: z.number().int().min(0).max(0xffffffff).optional(),
    minor: z.number().int().min(0).max(0xffffffff).optional(),
    target: z.string().min(1).max(4096).refine((t) => !t.includes("\0"), "no NUL").optional(),
    ...tmpfsTimes,
  })
  .refine((e) => (e.type === "char" || e.type === "block") === (e.major !== undefined && e.minor !== undefined), "device numbers on char and block entries only")
  .refine((e) => (e.type === "symlink") === (e.target !== undefined), "a target on symlinks only");

export const checkpointMetadataSchema = z.object({
  version: z.literal(METADATA_VERSION),
  containerId: z.string().min(1),
  /** containerd namespace, when taken through containerd. */
  namespace: z.string().optional(),
  /** Directory of CRIU's images, relative to the checkpoint directory. */
  // Inside the checkpoint directory: the restore decompresses into it and CRIU may punch holes in its images (auto-dedup).
  imagesDir: z
    .string()
    .min(1)
    .refine((d) => !d.startsWith("/") && !d.split("/").includes(".."), "a path inside the checkpoint directory (relative, no ..)"),
  /** Parent checkpoint (incremental dump), as given to CRIU. */
  parent: z.string().optional(),
  /** Root pid of the dumped tree, in the host pid namespace at dump time. */
  pid: z.number().int().positive(),
  /** runc's state.json of the container (id, init pid, config, cgroup and namespace paths, ...). */
  runcState: z.record(z.string(), z.unknown()),
  /** The bundle's OCI spec (config.json). */
  spec: z.record(z.string(), z.unknown()),
  /** The init process's stdio as runc recorded it (state.json external_descriptors: "/dev/null", "pipe:[123]", ...). */
  stdio: z.object({
    descriptors: z.array(z.string()),
    terminal: z.boolean(),
    /** CRIU's key for each of fds 0..2 where it differs from the descriptor: "file[MNT:INO]" for a file outside the container (a host FIFO), dumped as external. */
    criuKeys: z.array(z.string().nullable()).optional(),
  }),
  cgroups: cgroupLayoutSchema,
  host: z.object({
    hostname: z.string(),
    kernel: z.string(),
    arch: z.string(),
    /** CRIU version as libcriu reports it, e.g. 40201. */
    criuVersion: z.number().int(),
    cryoVersion: z.string(),
  }),
  /** ISO 8601 times. */
  startedAt: z.string(),
  finishedAt: z.string(),
  /** Options the checkpoint was taken with (localPages and networkLock came later: absent in older metadata, false and CRIU's default, iptables). */
  // Options added since the first checkpoints: what a checkpoint taken before them was taken with.
  options: checkpointPlanSchema.extend({
    localPages: z.boolean().default(false),
    networkLock: networkLockSchema.default("iptables"),
    ghostLimit: z.number().int().min(0).max(GHOST_LIMIT_MAX).default(0),
    timeoutSeconds: z.number().int().min(0).max(TIMEOUT_SECONDS_MAX).default(0),
    // Any form: checked only since the thirty-third session, and a restore drops the recorded profile (restoreSettings).
    lsmProfile: z.string().min(1).optional(),
  }),
  stats: z.object({ dump: dumpStatsSchema.optional() }),
  /** Page images compressed (pages-*.img.zst in place of pages-*.img). */
  compressed: z.union([z.literal(false), z.object({ algorithm: z.literal("zstd"), level: z.number().int() })]),
  /** True when the container was paused (frozen) before the dump and is recorded frozen. */
  paused: z.boolean(),
  /**
   * The CRIU images the dump left in the images directory (images-list.ts), each with its size: the restore refuses a
   * checkpoint that lacks one or holds one of another size. Absent in checkpoints of cryo before the twenty-ninth
   * session (not checked then).
   */
  images: z
    .array(z.object({ name: z.string().regex(CRIU_IMAGE_NAME), bytes: z.number().int().nonnegative() }))
    .max(1_000_000)
    .optional(),
  /** Page images kept in the page store of the host that made the checkpoint (local-pages.ts), not in the images directory. */
  localPages: localPagesSchema.optional(),
  /** The container's image as containerd knew it at dump time (read when a checkpoint plugin applied), for restore-side policies. */
  image: checkpointImageSchema.optional(),
  /** Empty writable tmpfs mounts dumped as external mounts (runc-criu.ts emptyTmpfsMounts): the restore mounts a new tmpfs for each. */
  emptyTmpfs: z
    .array(
      z.object({
        key: z.string().regex(/^cryo-empty-tmpfs\/[^\0]*$/),
        mountpoint: z.string().startsWith("/"),
        // Passed to mount(2) as tmpfs data: no size or inode count of 0, which would lift the tmpfs's limit.
        options: z
          .string()
          .regex(/^[A-Za-z0-9_=.,:+-]*$/)
          .refine(tmpfsOptionsLimited, "no size, nr_inodes or nr_blocks of 0 (unlimited)"),
        source: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
        /** Its root's mode, owner and times (absent in checkpoints of cryo before the twenty-fourth session: the mount's). */
        root: tmpfsRootSchema.optional(),
        /** What it held (no file data: runc-criu.ts tmpfsEntries), made again in the new tmpfs; absent: empty. */
        entries: z
          .array(tmpfsEntrySchema)
          .max(TMPFS_ENTRIES_MAX)
          .refine((entries) => {
            // Parents first, and only directories as parents (a symlink parent would lead out of the tmpfs); no path twice.
            const dirs = new Set([""]);
            const seen = new Set<string>();
            return entries.every((e) => {
              const parent = e.path.includes("/") ? e.path.slice(0, e.path.lastIndexOf("/")) : "";
              if (!dirs.has(parent) || seen.has(e.path)) return false;
              seen.add(e.path);
              if (e.type === "dir") dirs.add(e.path);
              return true;
            });
          }, "each entry after its parent directory, once")
          .optional(),
      }),
    )
    .max(EMPTY_TMPFS_MAX)
    .optional(),
  /**
   * Threads whose CPU affinity, timer slack or I/O priority differed from a thread's default at the dump, which CRIU
   * does not restore (thread-state.ts): the restore sets them before the tree runs. Absent where none did, and in
   * checkpoints of cryo before the thirty-sixth session (their restored threads keep CRIU's).
   */
  threads: threadStatesSchema.optional(),
});

/** What a cryo checkpoint holds besides CRIU's images. */
export type CheckpointMetadata = z.infer<typeof checkpointMetadataSchema>;

/**
 * Validates metadata (e.g. from a plugin or a file); INVALID_ARGUMENT lists the problems.
 *
 * Without zod's JIT (`jitless`): a daemon parses a checkpoint's metadata once or twice, and zod's first
 * parse of an object schema compiles a parser for it (`new Function`), which for this schema cost more
 * than it saves — at a restore's Create 10-19 ms against 1.3-6 ms interpreted (compiled shim, load ~0.7).
 */
export function parseCheckpointMetadata(value: unknown, where = "checkpoint metadata"): CheckpointMetadata {
  const r = checkpointMetadataSchema.safeParse(value, { jitless: true });
  if (!r.success) throw invalidArgument(where, { detail: r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ") });
  return r.data;
}

/** Writes dir/cryo-checkpoint.json atomically (temp file + rename). */
export async function writeCheckpointMetadata(dir: string, meta: CheckpointMetadata): Promise<void> {
  const valid = parseCheckpointMetadata(meta);
  const path = join(dir, METADATA_FILE);
  await writeFile(`${path}.tmp`, `${stringifyPreciseJson(valid, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

/** The most a cryo-checkpoint.json may weigh (a real one is a few KiB to a few hundred with tmpfs entries). */
export const MAX_METADATA_BYTES = 16 * 1024 * 1024;

/** Reads and validates dir/cryo-checkpoint.json; NOT_FOUND when missing, INVALID_ARGUMENT when over MAX_METADATA_BYTES. */
export async function readCheckpointMetadata(dir: string): Promise<CheckpointMetadata> {
  const path = join(dir, METADATA_FILE);
  let text: string;
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw notFound(`checkpoint metadata ${path}`, { cause: err });
  }
  if (size > MAX_METADATA_BYTES) throw invalidArgument(`checkpoint metadata ${path}`, { detail: `${size} bytes, more than ${MAX_METADATA_BYTES}` });
  try {
    // Synchronous: a few KiB, read once per restore; the async read's thread-pool round trip cost more (0.5-5 ms at a restore's Create).
    text = readRegularFile(path, `checkpoint metadata ${path}`).toString("utf8");
  } catch (err) {
    if (err instanceof CryoError) throw err; // not a regular file (a FIFO put there): FAILED_PRECONDITION
    throw notFound(`checkpoint metadata ${path}`, { cause: err });
  }
  let json: unknown;
  try {
    json = parsePreciseJson(text);
  } catch (err) {
    throw invalidArgument(`checkpoint metadata ${path}`, { cause: err, detail: "not JSON" });
  }
  return parseCheckpointMetadata(json, `checkpoint metadata ${path}`);
}
