// A real dump of test/fixtures/memhog (64 MiB filled with its compressible pattern) compressed with
// compressImages, decompressed with decompressImages, restored through libcriu: the restored program
// verifies its whole memory on SIGUSR1 and counts on. And memhog's default pattern, which does not
// compress, left plain. Root only (criu, gcc, zstd).
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { compressImages, decompressImages, hasCompressedImages } from "../../src/checkpoint/index.ts";
import { createCriu, inspectCheckpoint } from "../../src/criu/index.ts";
import { fixtureProgram, killPids, readTrimmed, waitFor } from "../harness/index.ts";

setDefaultTimeout(120_000);
const criu = createCriu();
let dir: string;
let memhog: string;
const pids: number[] = [];

beforeAll(async () => {
  dir = mkdtempSync("/tmp/cryo-criu-zstd-");
  memhog = await fixtureProgram("memhog");
});

afterAll(() => {
  killPids(pids);
  rmSync(dir, { recursive: true, force: true });
});

test("compressed dump of a 64 MiB program restores with its memory intact after decompressImages", async () => {
  const counter = join(dir, "count");
  const p = Bun.spawn(["setsid", memhog, "64", counter, "compressible"], { stdio: ["ignore", "ignore", "ignore"] }); // nothing of the test runner's: CRIU must be able to dump every fd
  pids.push(p.pid);
  await waitFor(() => (Number(readTrimmed(counter) ?? 0) >= 2 ? true : undefined), { what: "memhog to count", timeoutMs: 20_000, intervalMs: 10 });

  const images = join(dir, "img");
  mkdirSync(images);
  await criu.dump({ imagesDir: images, pid: p.pid });
  await p.exited;
  const atDump = Number(readTrimmed(counter));
  const plain = readdirSync(images).filter((f) => /^pages-\d+\.img$/.test(f));
  expect(plain.length).toBeGreaterThan(0);
  const plainBytes = plain.reduce((s, f) => s + statSync(join(images, f)).size, 0);
  expect(plainBytes).toBeGreaterThanOrEqual(64 * 2 ** 20);

  const c = await compressImages(images, { level: 1 });
  expect(c.bytes).toBe(plainBytes);
  expect(readdirSync(images).filter((f) => /^pages-\d+\.img$/.test(f))).toEqual([]);
  expect(await hasCompressedImages(images)).toBe(true);
  // A quarter of the words are a hash of their index, the rest compress to almost nothing.
  expect(c.compressedBytes).toBeLessThan(plainBytes * 0.4);
  expect(c.files.every((f) => f.leftPlain === undefined && f.sampleSaving! > 0.6)).toBe(true);

  const packed = (await inspectCheckpoint(images)).memory;
  expect([packed.pagesImageBytes, packed.compressedPagesImageBytes]).toEqual([0, c.compressedBytes]);
  expect(packed.bytes).toBe(plainBytes); // the pagemaps still describe every page

  const d = await decompressImages(images);
  expect(d.bytes).toBe(plainBytes);
  expect((await inspectCheckpoint(images)).memory.pagesImageBytes).toBe(plainBytes);

  const restored = await criu.restore({ imagesDir: images });
  pids.push(restored.pid);
  await waitFor(() => (Number(readTrimmed(counter) ?? 0) > atDump ? true : undefined), { what: "restored memhog to count on", timeoutMs: 20_000, intervalMs: 10 });
  process.kill(restored.pid, "SIGUSR1");
  const verdict = await waitFor(() => readTrimmed(`${counter}.verify`), { what: "memhog's verification", timeoutMs: 20_000, intervalMs: 10 });
  expect(verdict).toMatch(/^ok \d+$/);
  expect(existsSync(`/proc/${restored.pid}`)).toBe(true);
});

test("a dump of memory that does not compress is left plain", async () => {
  const counter = join(dir, "count-random");
  const p = Bun.spawn(["setsid", memhog, "64", counter], { stdio: ["ignore", "ignore", "ignore"] });
  pids.push(p.pid);
  await waitFor(() => (Number(readTrimmed(counter) ?? 0) >= 2 ? true : undefined), { what: "memhog to count", timeoutMs: 20_000, intervalMs: 10 });
  const images = join(dir, "img-random");
  mkdirSync(images);
  await criu.dump({ imagesDir: images, pid: p.pid });
  await p.exited;
  const before = readdirSync(images).filter((f) => /^pages-\d+\.img$/.test(f)).sort();
  const c = await compressImages(images, { level: 1 });
  // memhog's default pattern is a multiplicative hash of the word index: zstd finds almost nothing to squeeze.
  expect(c.files.filter((f) => f.bytes >= 64 * 2 ** 20).map((f) => [f.leftPlain, f.sampleSaving! < 0.1])).toEqual([[true, true]]);
  console.log(`64 MiB of memhog's pattern: sampled and left plain in ${c.durationMs.toFixed(1)} ms; ${c.files.length} image(s), saving per image ${c.files.map((f) => f.sampleSaving!.toFixed(3)).join(", ")}`);
  // Small images (none here, as CRIU writes one pages file for the one process) would be judged on their own.
  expect(readdirSync(images).filter((f) => /^pages-\d+\.img$/.test(f)).sort()).toEqual(before);
  expect(await hasCompressedImages(images)).toBe(c.files.some((f) => f.leftPlain !== true));
});
