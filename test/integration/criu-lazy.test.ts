// Lazy restore of a 1 GiB program through createCriu().restoreLazy: the lazy-pages daemon is started
// (and ready) before the restore, restore returns while the daemon is still handing pages over, the
// daemon exits 0 once every page is back, and the program then finds its whole memory intact.
// Root only (criu with userfaultfd, gcc).
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createCriu } from "../../src/criu/index.ts";
import { fixtureProgram, killPids, readTrimmed, waitFor } from "../harness/index.ts";

setDefaultTimeout(180_000);
const criu = createCriu();
const MIB = 1024;
let dir: string;
let memhog: string;
const pids: number[] = [];

beforeAll(async () => {
  dir = mkdtempSync("/tmp/cryo-criu-lazy-");
  memhog = await fixtureProgram("memhog");
});

afterAll(() => {
  killPids(pids);
  rmSync(dir, { recursive: true, force: true });
});

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? -1);
}

test("restoreLazy: a 1 GiB program runs before its pages are all back, then verifies all of them", async () => {
  const counter = join(dir, "count");
  const p = Bun.spawn(["setsid", memhog, String(MIB), counter], { stdio: ["ignore", "ignore", "ignore"] }); // nothing of the test runner's: CRIU must be able to dump every fd
  pids.push(p.pid);
  await waitFor(() => (Number(readTrimmed(counter) ?? 0) >= 1 ? true : undefined), { what: "memhog to count", timeoutMs: 60_000, intervalMs: 10 });
  const images = join(dir, "img");
  mkdirSync(images);
  await criu.dump({ imagesDir: images, pid: p.pid, logLevel: 2 });
  await p.exited;
  const atDump = Number(readTrimmed(counter));

  const work = join(dir, "work");
  const t0 = performance.now();
  await using restored = await criu.restoreLazy({ imagesDir: images, workDir: work, logLevel: 2 });
  const returnedMs = performance.now() - t0;
  pids.push(restored.pid);
  // Restore has returned and the tree runs, but the daemon is still serving: not every page is back.
  expect(restored.lazyPages.exitCode).toBeNull();
  expect(existsSync(`/proc/${restored.lazyPages.pid}`)).toBe(true);
  const rssAtReturn = rssKiB(restored.pid);
  expect(readFileSync(join(work, "cryo-restore.conf"), "utf8")).toContain("lazy-pages");

  const summary = await restored.lazyPages.done;
  const allBackMs = performance.now() - t0;
  expect(summary.totalPages).toBeGreaterThanOrEqual((MIB * 2 ** 20) / 4096);
  expect(summary.transferredPages).toBe(summary.totalPages);

  await waitFor(() => (Number(readTrimmed(counter) ?? 0) > atDump ? true : undefined), { what: "restored memhog to count on", timeoutMs: 60_000, intervalMs: 10 });
  process.kill(restored.pid, "SIGUSR1");
  expect(await waitFor(() => readTrimmed(`${counter}.verify`), { what: "memhog's verification", timeoutMs: 60_000, intervalMs: 10 })).toMatch(/^ok \d+$/);
  expect(rssKiB(restored.pid)).toBeGreaterThanOrEqual(MIB * 1024);
  console.log(`lazy-pages.log at level 4: ${Bun.file(restored.lazyPages.logFile).size} bytes`);
  console.log(`lazy restore of ${MIB} MiB: restore returned after ${returnedMs.toFixed(0)} ms (RSS then ${(rssAtReturn / 1024).toFixed(0)} MiB), all pages back after ${allBackMs.toFixed(0)} ms (${summary.transferredPages} pages)`);
});

test("restoreLazy: a restore that fails after the daemon is ready kills the daemon and rejects", async () => {
  const counter = join(dir, "clash");
  const p = Bun.spawn(["setsid", memhog, "16", counter], { stdio: ["ignore", "ignore", "ignore"] }); // nothing of the test runner's: CRIU must be able to dump every fd
  pids.push(p.pid);
  await waitFor(() => (Number(readTrimmed(counter) ?? 0) >= 1 ? true : undefined), { what: "memhog to count", timeoutMs: 60_000, intervalMs: 10 });
  const images = join(dir, "clash-img");
  mkdirSync(images);
  await criu.dump({ imagesDir: images, pid: p.pid, leaveRunning: true, logLevel: 2 });
  // The original still holds the pid: CRIU cannot fork the restored task with it.
  const err = (await criu.restoreLazy({ imagesDir: images, logLevel: 2 }).catch((e: unknown) => e)) as Error;
  expect(err).toBeInstanceOf(Error);
  expect(err.message).toContain("criu restore");
  expect(readFileSync(join(images, "lazy-pages.log"), "utf8").length).toBeGreaterThan(0); // the daemon had started
  const left = Bun.spawnSync(["pgrep", "-f", `lazy-pages --images-dir ${images}`]).stdout.toString().trim();
  expect(left).toBe("");
  p.kill("SIGKILL");
  await p.exited;
});
