import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { CheckpointOptionsSchema as CryoOpts, Compression } from "../../../src/gen/cryo/v1/options_pb.ts";
import {
  BUILTIN_CHECKPOINT_PLAN,
  checkpointOptionsFromAny,
  compressImages,
  decompressImages,
  hasCompressedImages,
  readCheckpointMetadata,
  resolveCheckpointPlan,
  writeCheckpointMetadata,
  type CheckpointMetadata,
} from "../../../src/checkpoint/index.ts";
import { hostMemoryBytes, sampleSaving } from "../../../src/checkpoint/compression.ts";
import { Code, CryoError } from "../../../src/errors.ts";

const root = mkdtempSync("/tmp/cryo-compress-");
afterAll(() => rmSync(root, { recursive: true, force: true }));

const meta: CheckpointMetadata = {
  version: 1,
  containerId: "c1",
  imagesDir: ".",
  pid: 4242,
  runcState: { id: "c1" },
  spec: { ociVersion: "1.0.2" },
  stdio: { descriptors: ["/dev/null", "pipe:[1]", "pipe:[2]"], terminal: false },
  cgroups: { version: 1, paths: {} },
  host: { hostname: "h", kernel: "6.18.0", arch: "x64", criuVersion: 40201, cryoVersion: "0.1.0" },
  startedAt: "2026-01-01T00:00:00.000Z",
  finishedAt: "2026-01-01T00:00:01.000Z",
  options: { ...BUILTIN_CHECKPOINT_PLAN, compression: "zstd" },
  stats: {},
  compressed: false,
  paused: false,
};

function imagesDir(): { dir: string; pages1: Buffer; pages2: Buffer } {
  const dir = mkdtempSync(join(root, "img-"));
  const pages1 = Buffer.concat([randomBytes(256 * 1024), Buffer.alloc(768 * 1024, "cryo ")]);
  const pages2 = randomBytes(64 * 1024);
  writeFileSync(join(dir, "pages-1.img"), pages1);
  writeFileSync(join(dir, "pages-2.img"), pages2);
  writeFileSync(join(dir, "pagemap-42.img"), "not a page image");
  return { dir, pages1, pages2 };
}

describe("compressed page images", () => {
  test("compress turns pages-*.img into .zst and records it; decompress brings the same bytes back", async () => {
    const { dir, pages1, pages2 } = imagesDir();
    await writeCheckpointMetadata(dir, meta);
    const c = await compressImages(dir, { level: 3, minSaving: 0 });
    expect(c.files.map((f) => f.name)).toEqual(["pages-1.img", "pages-2.img"]);
    expect(c.bytes).toBe(pages1.length + pages2.length);
    expect(c.files[0]!.compressedBytes).toBeLessThan(pages1.length / 2); // 3/4 of it repeats
    expect(c.files.map((f) => [f.leftPlain, f.sampleSaving])).toEqual([[undefined, undefined], [undefined, undefined]]); // minSaving 0: no sample
    expect(readdirSync(dir).sort()).toEqual(["cryo-checkpoint.json", "pagemap-42.img", "pages-1.img.zst", "pages-2.img.zst"]);
    expect((await readCheckpointMetadata(dir)).compressed).toEqual({ algorithm: "zstd", level: 3 });
    expect(await hasCompressedImages(dir)).toBe(true);

    const d = await decompressImages(dir);
    expect(d.compressedBytes).toBe(c.compressedBytes);
    expect(readFileSync(join(dir, "pages-1.img")).equals(pages1)).toBe(true);
    expect(readFileSync(join(dir, "pages-2.img")).equals(pages2)).toBe(true);
    expect(readFileSync(join(dir, "pagemap-42.img"), "utf8")).toBe("not a page image");
    expect(readdirSync(dir).filter((f) => f.endsWith(".zst") || f.endsWith(".tmp"))).toEqual([]);
    expect((await readCheckpointMetadata(dir)).compressed).toBe(false);
    expect(await hasCompressedImages(dir)).toBe(false);
  });

  test("level 0 means cryo's default (1); nothing to decompress is not an error; no metadata is fine", async () => {
    const { dir } = imagesDir();
    expect((await compressImages(dir, { level: 0, threads: 1, concurrency: 1, minSaving: 0 })).level).toBe(1);
    expect((await compressImages(dir)).files).toEqual([]); // already compressed
    await decompressImages(dir);
    expect((await decompressImages(dir)).files).toEqual([]);
  });

  test("an image whose sample does not compress stays plain, beside the compressed ones; a restore's decompression takes only the .zst", async () => {
    const { dir, pages1, pages2 } = imagesDir();
    await writeCheckpointMetadata(dir, meta);
    const c = await compressImages(dir);
    const [one, two] = c.files;
    expect(one!.leftPlain).toBeUndefined();
    expect(one!.sampleSaving!).toBeGreaterThan(0.6); // 3/4 of pages-1 repeats: its whole 1 MiB is the sample
    expect(two!.leftPlain).toBe(true); // random bytes
    expect(two!.sampleSaving!).toBeLessThan(0.01);
    expect(two!.compressedBytes).toBe(pages2.length);
    expect(c.compressedBytes).toBe(one!.compressedBytes + pages2.length);
    expect(readdirSync(dir).sort()).toEqual(["cryo-checkpoint.json", "pagemap-42.img", "pages-1.img.zst", "pages-2.img"]);
    expect((await readCheckpointMetadata(dir)).compressed).toEqual({ algorithm: "zstd", level: 1 });
    const d = await decompressImages(dir);
    expect(d.files.map((f) => f.name)).toEqual(["pages-1.img"]);
    expect(readFileSync(join(dir, "pages-1.img")).equals(pages1)).toBe(true);
    expect(readFileSync(join(dir, "pages-2.img")).equals(pages2)).toBe(true);

    // Nothing compresses: nothing is compressed, and the metadata says so.
    const none = mkdtempSync(join(root, "random-"));
    writeFileSync(join(none, "pages-1.img"), pages2);
    await writeCheckpointMetadata(none, { ...meta, compressed: { algorithm: "zstd", level: 1 } });
    const n = await compressImages(none);
    expect(n.files.map((f) => f.leftPlain)).toEqual([true]);
    expect(readdirSync(none).sort()).toEqual(["cryo-checkpoint.json", "pages-1.img"]);
    expect((await readCheckpointMetadata(none)).compressed).toBe(false);
    // A higher bar leaves the compressible one plain too; 1 leaves everything.
    const { dir: bar } = imagesDir();
    expect((await compressImages(bar, { minSaving: 1 })).files.map((f) => f.leftPlain)).toEqual([true, true]);
    expect((await compressImages(bar, { minSaving: 1.5 }).catch((e) => e) as CryoError).code).toBe(Code.INVALID_ARGUMENT);
  });

  test("the sample of a large image is spread over the whole file", async () => {
    const dir = mkdtempSync(join(root, "sample-"));
    const mib = 1 << 20;
    // 32 MiB: the first half random, the second half one repeated word. A sample from the start alone would say 0.
    const half = Buffer.concat([randomBytes(16 * mib), Buffer.alloc(16 * mib, "cryo")]);
    writeFileSync(join(dir, "half.img"), half);
    const s = await sampleSaving(join(dir, "half.img"), 1);
    expect(s).toBeGreaterThan(0.4);
    expect(s).toBeLessThan(0.6);
    // 32 MiB random but for 1 MiB of zeros in the middle: not worth compressing.
    const mostly = randomBytes(32 * mib);
    mostly.fill(0, 16 * mib, 17 * mib);
    writeFileSync(join(dir, "mostly.img"), mostly);
    expect(await sampleSaving(join(dir, "mostly.img"), 1)).toBeLessThan(0.1);
    writeFileSync(join(dir, "empty.img"), "");
    expect(await sampleSaving(join(dir, "empty.img"), 19)).toBe(0);
    expect(((await sampleSaving(join(dir, "nope.img"), 1).catch((e) => e)) as NodeJS.ErrnoException).code).toBe("ENOENT");
  });

  test("errors: missing dir NOT_FOUND, bad options INVALID_ARGUMENT, no zstd UNAVAILABLE, corrupt file UNKNOWN and left alone", async () => {
    expect(((await compressImages(join(root, "nope")).catch((e) => e)) as CryoError).code).toBe(Code.NOT_FOUND);
    const { dir } = imagesDir();
    const bad = (await compressImages(dir, { level: 23 }).catch((e) => e)) as CryoError;
    expect(bad.code).toBe(Code.INVALID_ARGUMENT);
    expect(bad.message).toContain("level");
    const missing = (await compressImages(dir, { zstd: "/nonexistent/zstd" }).catch((e) => e)) as CryoError;
    expect(missing.code).toBe(Code.UNAVAILABLE);
    expect(existsSync(join(dir, "pages-1.img"))).toBe(true);

    writeFileSync(join(dir, "pages-3.img.zst"), "this is not zstd");
    const corrupt = (await decompressImages(dir).catch((e) => e)) as CryoError;
    expect(corrupt).toBeInstanceOf(CryoError);
    expect(corrupt.code).toBe(Code.UNKNOWN);
    expect(corrupt.message).toContain("pages-3.img.zst");
    expect(existsSync(join(dir, "pages-3.img.zst"))).toBe(true);
    expect(existsSync(join(dir, "pages-3.img"))).toBe(false);
  });

  test("zstd writing into a full or read-only file system (containerd's temp directory): RESOURCE_EXHAUSTED or FAILED_PRECONDITION with zstd's words, and nothing is left of the output", async () => {
    const dir = mkdtempSync(join(root, "full-"));
    writeFileSync(join(dir, "pages-1.img.zst"), "z");
    // zstd's own lines for a write that failed (a real one on a full tmpfs: "zstd: error 93 : Write error : cannot write block : No space left on device").
    const fake = (line: string) => {
      const path = join(root, `zstd-${line.length}`);
      writeFileSync(path, `#!/bin/sh\nfor a; do o=$a; done\n: > "$o"\necho "zstd: error 70 : Write error : cannot write block : ${line}" >&2\nexit 70\n`, { mode: 0o755 });
      return path;
    };
    const full = (await decompressImages(dir, { zstd: fake("No space left on device") }).catch((x) => x)) as CryoError;
    expect(full.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(full.message).toStartWith(`decompress ${join(dir, "pages-1.img.zst")}: resource exhausted: `);
    expect(full.message).toEndWith("No space left on device");
    expect(readdirSync(dir)).toEqual(["pages-1.img.zst"]);
    const readOnly = (await decompressImages(dir, { zstd: fake("Read-only file system") }).catch((x) => x)) as CryoError;
    expect(readOnly.code).toBe(Code.FAILED_PRECONDITION);
    expect(readOnly.message).toEndWith("Read-only file system");
    expect(readdirSync(dir)).toEqual(["pages-1.img.zst"]);
  });

  test("a page image that decompresses past the limit (host memory and swap by default) is refused, and nothing is left of it", async () => {
    const dir = mkdtempSync(join(root, "bomb-"));
    // 8 MiB of zeros: a few hundred bytes of zstd.
    const z = Bun.spawnSync(["sh", "-c", `head -c 8388608 /dev/zero | zstd -q -c > ${join(dir, "pages-1.img.zst")}`]);
    expect(z.exitCode).toBe(0);
    const e = (await decompressImages(dir, { maxImageBytes: 1 << 20 }).catch((x) => x)) as CryoError;
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain(`the decompressed images would be larger than the limit (this host's memory and swap): ${1 << 20} bytes were left for this one`);
    expect(readdirSync(dir)).toEqual(["pages-1.img.zst"]);
    const noZstd = (await decompressImages(dir, { zstd: "/nonexistent/zstd" }).catch((x) => x)) as CryoError;
    expect(noZstd.code).toBe(Code.UNAVAILABLE);
    expect(noZstd.message).toContain("/nonexistent/zstd: unavailable");
    const ok = await decompressImages(dir, { maxImageBytes: 16 << 20 });
    expect(ok.bytes).toBe(8 << 20);
    // The limit is for all the images together: three of 8 MiB do not fit in 20 MiB, one at a time.
    const many = mkdtempSync(join(root, "bombs-"));
    for (const n of [1, 2, 3]) expect(Bun.spawnSync(["sh", "-c", `head -c 8388608 /dev/zero | zstd -q -c > ${join(many, `pages-${n}.img.zst`)}`]).exitCode).toBe(0);
    const all = (await decompressImages(many, { maxImageBytes: 20 << 20, concurrency: 1 }).catch((x) => x)) as CryoError;
    expect(all.code).toBe(Code.INVALID_ARGUMENT);
    expect(all.message).toContain("would be larger than");
    expect(hostMemoryBytes("MemTotal:       24684420 kB\nSwapTotal:       1048576 kB\n")).toBe((24684420 + 1048576) * 1024);
  });

  test("the plan carries compression from annotations and from cryo.v1.CheckpointOptions (request wins)", () => {
    const annotated = resolveCheckpointPlan({ annotations: { "cryo.checkpoint/compression": "zstd", "cryo.checkpoint/compression-level": "5" } });
    expect([annotated.compression, annotated.compressionLevel]).toEqual(["zstd", 5]);
    const request = checkpointOptionsFromAny(anyPack(CryoOpts, create(CryoOpts, { compression: Compression.ZSTD, compressionLevel: 7 })));
    const fromRequest = resolveCheckpointPlan({ annotations: { "cryo.checkpoint/compression": "none" }, request });
    expect([fromRequest.compression, fromRequest.compressionLevel]).toEqual(["zstd", 7]);
    const off = resolveCheckpointPlan({ defaults: { compression: "zstd" }, request: checkpointOptionsFromAny(anyPack(CryoOpts, create(CryoOpts, { compression: Compression.NONE }))) });
    expect(off.compression).toBe("none");
  });
});
