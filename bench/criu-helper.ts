// Benchmark: dump and restore of a plain process holding N MiB through cryo's libcriu helper, against
// the criu CLI doing the same, and the event loop's responsiveness while a dump runs.
// Run as root: node_modules/.bin/bun bench/criu-helper.ts [sizes MiB, default 16,256,1024]
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCriu } from "../src/criu/index.ts";

const sizes = (process.argv[2] ?? "16,256,1024").split(",").map(Number);
const dir = mkdtempSync("/tmp/cryo-bench-criu-");
const criu = createCriu();

// Holds N MiB filled with a pattern, then checks it forever; prints "ok" to a file after each check.
const HOG_C = `
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <fcntl.h>
int main(int argc, char **argv) {
  size_t n = (size_t)atol(argv[1]) << 20;
  unsigned char *p = malloc(n);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7);
  int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  for (long round = 0;; round++) {
    for (size_t i = 0; i < n; i += 4096) if (p[i] != (unsigned char)(i * 7)) { pwrite(fd, "BAD\\n", 4, 0); return 1; }
    char b[32]; int l = snprintf(b, sizeof b, "%ld\\n", round); pwrite(fd, b, l, 0);
    usleep(50000);
  }
}`;
writeFileSync(join(dir, "hog.c"), HOG_C);
const cc = Bun.spawnSync(["gcc", "-O2", "-static", "-o", join(dir, "hog"), join(dir, "hog.c")]);
if (cc.exitCode !== 0) throw new Error(cc.stderr.toString());

function dirBytes(d: string): number {
  return readdirSync(d).reduce((s, f) => s + statSync(join(d, f)).size, 0);
}

async function startHog(mib: number, tag: string) {
  const status = join(dir, `${tag}.status`);
  const p = Bun.spawn(["setsid", join(dir, "hog"), String(mib), status], { stdio: ["ignore", "ignore", "ignore"] });
  const deadline = Date.now() + 60_000;
  while (!(await Bun.file(status).exists()) || (await Bun.file(status).text()).trim() === "") {
    if (Date.now() > deadline) throw new Error("hog did not start");
    await Bun.sleep(10);
  }
  return { p, status };
}

/** Samples the event loop every 5 ms while fn runs; returns fn's time and the worst lag. */
async function withLag<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; maxLagMs: number }> {
  let maxLag = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxLag = Math.max(maxLag, now - last - 5);
    last = now;
  }, 5);
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  clearInterval(timer);
  return { value, ms, maxLagMs: maxLag };
}

const pidsToKill: number[] = [];
try {
  console.log("size_MiB  helper_dump_ms  cli_dump_ms  helper_restore_ms  cli_restore_ms  images_MiB  loop_max_lag_during_dump_ms  pages_written");
  for (const mib of sizes) {
    // Through the helper.
    const a = await startHog(mib, `h${mib}`);
    const imgA = join(dir, `helper-${mib}`);
    Bun.spawnSync(["mkdir", "-p", imgA]);
    const dump = await withLag(() => criu.dump({ imagesDir: imgA, pid: a.p.pid, logLevel: 2 }));
    await a.p.exited;
    const restore = await withLag(() => criu.restore({ imagesDir: imgA, logLevel: 2 }));
    pidsToKill.push(restore.value.pid);
    process.kill(restore.value.pid, "SIGKILL");

    // Through the criu CLI (same CRIU, no libcriu, no helper).
    const b = await startHog(mib, `c${mib}`);
    const imgB = join(dir, `cli-${mib}`);
    Bun.spawnSync(["mkdir", "-p", imgB]);
    const t0 = performance.now();
    const d = Bun.spawnSync(["criu", "dump", "-t", String(b.p.pid), "-D", imgB, "-v2", "-o", "dump.log"]);
    const cliDump = performance.now() - t0;
    if (d.exitCode !== 0) throw new Error(`criu dump: ${d.stderr.toString()}`);
    await b.p.exited;
    const t1 = performance.now();
    const r = Bun.spawnSync(["criu", "restore", "-D", imgB, "-d", "-v2", "-o", "restore.log", "--pidfile", join(imgB, "pid")]);
    const cliRestore = performance.now() - t1;
    if (r.exitCode !== 0) throw new Error(`criu restore: ${r.stderr.toString()}`);
    const cliPid = Number(await Bun.file(join(imgB, "pid")).text());
    pidsToKill.push(cliPid);
    process.kill(cliPid, "SIGKILL");

    console.log(
      [mib, dump.ms.toFixed(1), cliDump.toFixed(1), restore.ms.toFixed(1), cliRestore.toFixed(1), (dirBytes(imgA) / 2 ** 20).toFixed(1), dump.maxLagMs.toFixed(1), dump.value.stats.dump?.pagesWritten ?? "?"].join("  "),
    );
    rmSync(imgA, { recursive: true, force: true });
    rmSync(imgB, { recursive: true, force: true });
  }
} finally {
  for (const pid of pidsToKill) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
