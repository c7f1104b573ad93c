/**
 * Compressed checkpoints: CRIU's page images (pages-<id>.img, nearly all of a checkpoint's bytes)
 * turned into zstd files after a dump, and back before CRIU reads them at restore.
 *
 * The work is done by the `zstd` program (Debian's zstd 1.5), one process per image file: it streams
 * (no image is ever held in cryo's memory), compresses with several threads (`-T`), and keeps all
 * CPU work out of the calling process's event loop. Measured against Bun's own zstd (Bun.zstdCompress:
 * whole-file buffers, decompression 5-10x slower than the CLI) and node:zlib's zstd (in Bun 1.4.5 its
 * output is truncated: unusable) in bench/checkpoint-compress.ts; see docs/checkpoint.md.
 *
 * CRIU reads page images with pread at offsets it finds in pagemap-*.img, so it cannot read a
 * compressed stream: decompressImages() restores the plain files first, in place, several at a time.
 * Each file is written under a temporary name and renamed, then the source is removed, so an
 * interrupted (de)compression never leaves a half-written image under a name CRIU or cryo trusts.
 *
 * Memory that does not compress (encrypted or already compressed data, random numbers) is left plain: before
 * each image is compressed, a sample of it (16 pieces of 64 KiB spread over the file, or the whole file when it
 * is smaller) is compressed in memory, and an image whose sample saves less than `minSaving` (10% by default)
 * stays pages-N.img. zstd would have cost the dump the whole file's compression and the restore its
 * decompression, for a tar about as large. A restore decompresses only the .zst images, so a checkpoint may
 * hold both kinds.
 */
import { existsSync, readFileSync } from "node:fs";
import { open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { Code, CryoError, failedPrecondition, invalidArgument, notFound, resourceExhausted } from "../errors.ts";
import { METADATA_FILE, parseCheckpointMetadata } from "./metadata.ts";

/** zstd's suffix on a compressed page image. */
export const COMPRESSED_SUFFIX = ".zst";
/** The level used when the plan says 0 ("default"): zstd's fastest regular level. */
export const DEFAULT_ZSTD_LEVEL = 1;
/** An image whose sample saves less than this share of its bytes is left plain (compressOptions.minSaving). */
export const DEFAULT_MIN_SAVING = 0.1;
/** The sample of an image: this many pieces of SAMPLE_PIECE bytes, spread evenly over the file. */
const SAMPLE_PIECES = 16;
const SAMPLE_PIECE = 64 * 1024;
/** The sample is compressed at the image's level, but at most this one: it only tells whether zstd finds anything. */
const SAMPLE_MAX_LEVEL = 3;

const PAGES_IMAGE = /^pages-\d+\.img$/;
const COMPRESSED_PAGES_IMAGE = /^pages-\d+\.img\.zst$/;

/** Options of compressImages. */
export const compressOptionsSchema = z
  .object({
    /** zstd level 1..22 (0 or absent: DEFAULT_ZSTD_LEVEL; above 19 zstd's --ultra). */
    level: z.number().int().min(0).max(22).optional(),
    /** zstd worker threads per file (0: one per core, zstd's -T0). */
    threads: z.number().int().min(0).max(256).optional(),
    /** Files (de)compressed at the same time (default: the number of cores). */
    concurrency: z.number().int().min(1).max(64).optional(),
    /** The zstd program (default: CRYO_ZSTD or "zstd" on PATH). */
    zstd: z.string().min(1).optional(),
    /** Decompression: the most bytes the page images may grow to, all together (default: this host's memory and swap). */
    maxImageBytes: z.number().int().positive().optional(),
    /**
     * Compression: an image whose sample saves less than this share (0..1) is left plain (default
     * DEFAULT_MIN_SAVING; 0 compresses every image without sampling).
     */
    minSaving: z.number().min(0).max(1).optional(),
  })
  .strict();
/** Options of compressImages / decompressImages. */
export type CompressOptions = z.infer<typeof compressOptionsSchema> & { signal?: AbortSignal };

/** One image file's sizes before and after. */
export interface CompressedFile {
  /** The plain image's name (pages-1.img). */
  name: string;
  bytes: number;
  /** The .zst file's size; `bytes` for an image left plain. */
  compressedBytes: number;
  /** Compression only: true when the image was left plain (its sample saved less than minSaving). */
  leftPlain?: boolean;
  /** Compression only: the share of the sample zstd saved (absent when minSaving was 0 and nothing was sampled). */
  sampleSaving?: number;
}

/** What a compression or decompression did. */
export interface CompressionReport {
  algorithm: "zstd";
  level: number;
  files: CompressedFile[];
  /** Sum over files. */
  bytes: number;
  compressedBytes: number;
  durationMs: number;
}

function zstdBinary(o: CompressOptions): string {
  return o.zstd ?? process.env.CRYO_ZSTD ?? "zstd";
}

function parseOptions(o: CompressOptions, what: string): CompressOptions {
  const { signal, ...rest } = o;
  const r = compressOptionsSchema.safeParse(rest);
  if (!r.success) throw invalidArgument(what, { detail: r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
  return { ...r.data, signal };
}

async function listImages(dir: string, pattern: RegExp, what: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((f) => pattern.test(f)).sort();
  } catch (err) {
    throw notFound(`${what} ${dir}`, { cause: err });
  }
}

/**
 * The most a decompressed page image may weigh by default: this host's memory and swap. A checkpoint is
 * untrusted, and a few MiB of zstd can decompress to anything; no process restored here can have more memory
 * than that anyway.
 */
export function hostMemoryBytes(meminfo = readFileSync("/proc/meminfo", "utf8")): number {
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(meminfo)?.[1] ?? 0);
  return (kib("MemTotal") + kib("SwapTotal")) * 1024;
}

/** Runs zstd; rejects with UNAVAILABLE when it cannot start, UNKNOWN with its stderr when it fails. */
async function runZstd(binary: string, args: string[], what: string, signal?: AbortSignal, maxFileBytes?: number): Promise<void> {
  signal?.throwIfAborted();
  let proc: ReturnType<typeof Bun.spawn<"ignore", "ignore", "pipe">>;
  // The file size limit (RLIMIT_FSIZE, through util-linux's prlimit): zstd is stopped by SIGXFSZ at the limit.
  const argv = maxFileBytes === undefined ? [binary, ...args] : ["prlimit", `--fsize=${maxFileBytes}:${maxFileBytes}`, binary, ...args];
  try {
    proc = Bun.spawn(argv, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    throw new CryoError(Code.UNAVAILABLE, `${what}: ${argv[0]}: unavailable: ${(err as Error).message}`, { cause: err });
  }
  const onAbort = () => proc.kill("SIGKILL");
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    if (signal?.aborted) throw new CryoError(Code.CANCELLED, `${what}: context canceled`, { cause: signal.reason });
    if (maxFileBytes !== undefined && (proc.signalCode === "SIGXFSZ" || code === 128 + 25)) {
      throw invalidArgument(what, { detail: `the decompressed images would be larger than the limit (this host's memory and swap): ${maxFileBytes} bytes were left for this one` });
    }
    // prlimit could not exec the program (util-linux's EX_EXEC_ENOENT).
    if (maxFileBytes !== undefined && code === 127) throw new CryoError(Code.UNAVAILABLE, `${what}: ${binary}: unavailable: ${stderr.trim()}`);
    if (code !== 0) {
      const said = `${binary} exited with ${code}: ${stderr.trim().split("\n").slice(-3).join("; ")}`;
      // Its output on a full or read-only file system (zstd: "Write error : cannot write block : No space left on
      // device"): containerd's temp directory, where a restore decompresses the checkpoint it extracted.
      if (/No space left on device|Disk quota exceeded/.test(stderr)) throw resourceExhausted(what, { detail: said });
      if (/Read-only file system/.test(stderr)) throw failedPrecondition(what, { detail: said });
      throw new CryoError(Code.UNKNOWN, `${what}: unknown: ${said}`);
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * The share of bytes zstd saves on a sample of the file at `path` (0: nothing, or a file of 0 bytes; close to 1: it
 * nearly vanishes). The sample is the whole file up to SAMPLE_PIECES * SAMPLE_PIECE bytes, else that many pieces
 * spread evenly from its start to its end, page-aligned; they are compressed together, in memory, off the event loop
 * (Bun.zstdCompress runs on Bun's thread pool).
 */
export async function sampleSaving(path: string, level: number): Promise<number> {
  const fh = await open(path, "r");
  let sample: Buffer;
  try {
    const size = (await fh.stat()).size;
    if (size === 0) return 0;
    const total = SAMPLE_PIECES * SAMPLE_PIECE;
    if (size <= total) {
      sample = Buffer.alloc(size);
      const { bytesRead } = await fh.read(sample, 0, size, 0);
      sample = sample.subarray(0, bytesRead);
    } else {
      sample = Buffer.alloc(total);
      const step = (size - SAMPLE_PIECE) / (SAMPLE_PIECES - 1);
      let filled = 0;
      for (let i = 0; i < SAMPLE_PIECES; i++) {
        const at = Math.floor((i * step) / 4096) * 4096;
        const { bytesRead } = await fh.read(sample, filled, SAMPLE_PIECE, at);
        filled += bytesRead;
      }
      sample = sample.subarray(0, filled);
    }
  } finally {
    await fh.close();
  }
  if (sample.length === 0) return 0;
  const packed = await Bun.zstdCompress(sample, { level: Math.min(Math.max(level, 1), SAMPLE_MAX_LEVEL) });
  return Math.max(0, 1 - packed.length / sample.length);
}

/** A rejection handler that removes a partial output file, then rethrows. */
function removing(path: string): (err: unknown) => Promise<never> {
  return async (err) => {
    await rm(path, { force: true });
    throw err;
  };
}

/** Runs fn over items, at most `limit` at a time; the first failure rejects after the running ones settle. */
async function eachLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
  return out;
}

/**
 * Compresses every pages-*.img in `dir` whose sample saves at least `minSaving` into pages-*.img.zst (the plain
 * file is removed); the others stay as they are (`leftPlain` in the report). When `dir` holds a checkpoint
 * metadata file, records `compressed: { algorithm: "zstd", level }` in it if `dir` now holds a compressed image,
 * `false` if it holds none. Images already compressed are left as they are. NOT_FOUND when `dir` is missing.
 */
export async function compressImages(dir: string, options: CompressOptions = {}): Promise<CompressionReport> {
  const o = parseOptions(options, `compress checkpoint images in ${dir}: options`);
  const level = o.level === undefined || o.level === 0 ? DEFAULT_ZSTD_LEVEL : o.level;
  const threads = o.threads ?? 0;
  const minSaving = o.minSaving ?? DEFAULT_MIN_SAVING;
  const zstd = zstdBinary(o);
  const started = performance.now();
  const names = await listImages(dir, PAGES_IMAGE, "checkpoint images");
  // zstd's own threads already use every core on one file; several files at once help little, but
  // cost nothing when CRIU wrote many small ones (one per process).
  const files = await eachLimited(names, o.concurrency ?? Math.max(1, Math.min(2, availableParallelism())), async (name) => {
    const src = join(dir, name);
    const dst = `${src}${COMPRESSED_SUFFIX}`;
    const tmp = `${dst}.tmp`;
    const bytes = (await stat(src)).size;
    let saving: number | undefined;
    if (minSaving > 0) {
      saving = await sampleSaving(src, level);
      if (saving < minSaving) return { name, bytes, compressedBytes: bytes, leftPlain: true, sampleSaving: saving };
    }
    const args = ["-q", "-f", ...(level > 19 ? ["--ultra"] : []), `-${level}`, `-T${threads}`, src, "-o", tmp];
    await runZstd(zstd, args, `compress ${src}`, o.signal).catch(removing(tmp));
    await rename(tmp, dst);
    await rm(src);
    return { name, bytes, compressedBytes: (await stat(dst)).size, ...(saving === undefined ? {} : { sampleSaving: saving }) };
  });
  const report = summarize(level, files, started);
  await recordInMetadata(dir, (await hasCompressedImages(dir)) ? { algorithm: "zstd", level } : false);
  return report;
}

/**
 * Decompresses every pages-*.img.zst in `dir` back into pages-*.img (the .zst is removed), several
 * files at a time, and records `compressed: false` in the metadata when `dir` holds one. Call it
 * before CRIU restores from `dir`. Nothing to do (no .zst) is not an error.
 */
export async function decompressImages(dir: string, options: CompressOptions = {}): Promise<CompressionReport> {
  const o = parseOptions(options, `decompress checkpoint images in ${dir}: options`);
  const zstd = zstdBinary(o);
  const maxImageBytes = o.maxImageBytes ?? hostMemoryBytes();
  let budget = maxImageBytes;
  const started = performance.now();
  const names = await listImages(dir, COMPRESSED_PAGES_IMAGE, "checkpoint images");
  const files = await eachLimited(names, o.concurrency ?? Math.max(1, availableParallelism()), async (zname) => {
    const src = join(dir, zname);
    const name = zname.slice(0, -COMPRESSED_SUFFIX.length);
    const dst = join(dir, name);
    const tmp = `${dst}.tmp`;
    const compressedBytes = (await stat(src)).size;
    // zstd -f replaces only a regular file: whatever else sits at tmp (a link planted in the checkpoint) goes first.
    await rm(tmp, { force: true });
    // One budget for the whole checkpoint: each image may take what the ones done so far left (images running at
    // the same time can each take it, so at most `concurrency` times the budget is ever written).
    if (budget <= 0) throw invalidArgument(`decompress ${src}`, { detail: `the decompressed images would be larger than ${maxImageBytes} bytes (this host's memory and swap)` });
    await runZstd(zstd, ["-q", "-d", "-f", src, "-o", tmp], `decompress ${src}`, o.signal, budget).catch(removing(tmp));
    await rename(tmp, dst);
    await rm(src);
    const bytes = (await stat(dst)).size;
    budget -= bytes;
    return { name, bytes, compressedBytes };
  });
  const report = summarize(0, files, started);
  if (names.length > 0) await recordInMetadata(dir, false);
  return report;
}

/** True when `dir` holds compressed page images (a restore must decompress them first). */
export async function hasCompressedImages(dir: string): Promise<boolean> {
  return (await listImages(dir, COMPRESSED_PAGES_IMAGE, "checkpoint images")).length > 0;
}

function summarize(level: number, files: CompressedFile[], started: number): CompressionReport {
  return {
    algorithm: "zstd",
    level,
    files,
    bytes: files.reduce((s, f) => s + f.bytes, 0),
    compressedBytes: files.reduce((s, f) => s + f.compressedBytes, 0),
    durationMs: performance.now() - started,
  };
}

/** Rewrites the metadata's `compressed` field (atomically), when dir has a cryo-checkpoint.json. */
async function recordInMetadata(dir: string, compressed: false | { algorithm: "zstd"; level: number }): Promise<void> {
  const path = join(dir, METADATA_FILE);
  if (!existsSync(path)) return;
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw invalidArgument(`checkpoint metadata ${path}`, { cause: err, detail: "not JSON" });
  }
  const meta = parseCheckpointMetadata(json, `checkpoint metadata ${path}`);
  meta.compressed = compressed;
  // A new file (O_EXCL): never through a link someone left at the temp name.
  await rm(`${path}.tmp`, { force: true });
  await writeFile(`${path}.tmp`, `${JSON.stringify(meta, null, 2)}\n`, { flag: "wx" });
  await rename(`${path}.tmp`, path);
}
