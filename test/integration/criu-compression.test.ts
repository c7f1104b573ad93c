// A real dump of test/fixtures/memhog (64 MiB filled with its pattern) compressed with
// compressImages, decompressed with decompressImages, restored through libcriu: the restored program
// verifies its whole memory on SIGUSR1 and counts on. Root only (criu, gcc, zstd).
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { compressImages, decompressImages, hasCompressedImages } from "../../src/checkpoint/index.ts";
import { createCriu, inspectCheckpoint } from "../../src/criu/index.ts";

setDefaultTimeout(120_000);
const criu = createCriu();
let dir: string;
let memhog: string;
const pids: number[] = [];

beforeAll(() => {
  dir = mkdtempSync("/tmp/cryo-criu-zstd-");
  memhog = join(dir, "memhog");
  const cc = Bun.spawnSync(["gcc", "-static", "-O2", "-o", memhog, join(import.meta.dir, "../fixtures/memhog.c")]);
  if (cc.exitCode !== 0) throw new Error(`gcc: ${cc.stderr.toString()}`);
});

afterAll(() => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

async function until<T>(what: string, fn: () => T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

function read(path: string): string | undefined {
  try {
    const t = readFileSync(path, "utf8").trim();
    return t === "" ? undefined : t;
  } catch {
    return undefined;
  }
}

test("compressed dump of a 64 MiB program restores with its memory intact after decompressImages", async () => {
  const counter = join(dir, "count");
  const p = Bun.spawn(["setsid", memhog, "64", counter], { stdio: ["ignore", "ignore", "inherit"] });
  pids.push(p.pid);
  await until("memhog to count", () => (Number(read(counter) ?? 0) >= 2 ? true : undefined));

  const images = join(dir, "img");
  mkdirSync(images);
  await criu.dump({ imagesDir: images, pid: p.pid });
  await p.exited;
  const atDump = Number(read(counter));
  const plain = readdirSync(images).filter((f) => /^pages-\d+\.img$/.test(f));
  expect(plain.length).toBeGreaterThan(0);
  const plainBytes = plain.reduce((s, f) => s + statSync(join(images, f)).size, 0);
  expect(plainBytes).toBeGreaterThanOrEqual(64 * 2 ** 20);

  const c = await compressImages(images, { level: 1 });
  expect(c.bytes).toBe(plainBytes);
  expect(readdirSync(images).filter((f) => /^pages-\d+\.img$/.test(f))).toEqual([]);
  expect(await hasCompressedImages(images)).toBe(true);
  // memhog's pattern is a multiplicative hash of the word index: zstd finds almost nothing to squeeze.
  expect(c.compressedBytes).toBeGreaterThan(plainBytes * 0.9);

  const packed = (await inspectCheckpoint(images)).memory;
  expect([packed.pagesImageBytes, packed.compressedPagesImageBytes]).toEqual([0, c.compressedBytes]);
  expect(packed.bytes).toBe(plainBytes); // the pagemaps still describe every page

  const d = await decompressImages(images);
  expect(d.bytes).toBe(plainBytes);
  expect((await inspectCheckpoint(images)).memory.pagesImageBytes).toBe(plainBytes);

  const restored = await criu.restore({ imagesDir: images });
  pids.push(restored.pid);
  await until("restored memhog to count on", () => (Number(read(counter) ?? 0) > atDump ? true : undefined));
  process.kill(restored.pid, "SIGUSR1");
  const verdict = await until("memhog's verification", () => read(`${counter}.verify`));
  expect(verdict).toMatch(/^ok \d+$/);
  expect(existsSync(`/proc/${restored.pid}`)).toBe(true);
});
