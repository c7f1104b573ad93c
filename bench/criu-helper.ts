// Benchmark: dump and restore of a plain process holding N MiB through cryo's libcriu helper, against
// the criu CLI doing the same, and the event loop's responsiveness while a dump runs: lag percentiles
// (a 2 ms timer's lateness), this process's own CPU time during the dump, and how long its main
// thread waited on the CPU run queue (/proc/self/schedstat) -- lag the process did not cause itself.
// Run as root: node_modules/.bin/bun bench/criu-helper.ts [sizes MiB, default 16,256,1024]
// Env: BURN=N runs N CPU burners (sha256sum /dev/zero) during the whole run, to show contention.
//
// Helper start only: bun bench/criu-helper.ts --start N [--bin DIR ...]
//   N rounds; each round starts one cold helper per DIR (DIR/containerd-shim-cryo-v2 __criu, default
//   build/bin; several --bin are alternated, e.g. an old build and a new one) for libcriu's version call,
//   and prints the wall time to the result, the helper's own time from the request's arrival (loading
//   libcriu + a `criu swrk` round trip) and their difference: the helper's start (exec + module evaluation).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createCriu } from "../src/criu/index.ts";

if (process.argv.includes("--start")) {
  await benchStart();
  process.exit(0);
}

async function benchStart(): Promise<void> {
  const args = process.argv.slice(2);
  const rounds = Number(args[args.indexOf("--start") + 1] ?? 10);
  const bins = args.flatMap((a, i) => (args[i - 1] === "--bin" ? [a] : []));
  if (bins.length === 0) bins.push("build/bin");
  const runs = new Map<string, { wall: number[]; own: number[]; start: number[] }>(bins.map((b) => [b, { wall: [], own: [], start: [] }]));
  console.log(`# ${new Date().toISOString()} load ${loadavg().map((l) => l.toFixed(2)).join(" ")}; helper start, ${rounds} rounds, alternating ${bins.join(" ")}`);
  for (let r = 0; r < rounds; r++) {
    for (const bin of bins) {
      const t0 = performance.now();
      const p = Bun.spawn([join(bin, "containerd-shim-cryo-v2"), "__criu"], { stdio: ["pipe", "pipe", "inherit"] });
      p.stdin.write(`${JSON.stringify({ op: "version", opts: { imagesDir: "/" } })}\n`);
      await p.stdin.end();
      const out = await new Response(p.stdout).text();
      const wall = performance.now() - t0;
      await p.exited;
      const result = JSON.parse(out.trim().split("\n").at(-1)!) as { ok: boolean; rc: number; durationMs: number };
      if (!result.ok) throw new Error(`${bin}: helper failed: ${out}`);
      const m = runs.get(bin)!;
      m.wall.push(wall);
      m.own.push(result.durationMs);
      m.start.push(wall - result.durationMs);
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const fmt = (xs: number[]) => `median ${median(xs).toFixed(1)} (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
  console.log("bin  wall_ms  helper_own_ms  start_ms");
  for (const [bin, m] of runs) console.log(`${bin}  ${fmt(m.wall)}  ${fmt(m.own)}  ${fmt(m.start)}`);
  console.log(`# done, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
}

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

/** Run-queue wait of this process's main thread so far, in ms (/proc/self/schedstat field 2). */
function runQueueWaitMs(): number {
  return Number(readFileSync("/proc/self/schedstat", "utf8").split(" ")[1]) / 1e6;
}

interface Lag {
  p50: number;
  p99: number;
  max: number;
  cpuMs: number;
  runQueueMs: number;
}

/** Samples the event loop every 2 ms while fn runs; returns fn's time, lag percentiles, own CPU and run-queue wait. */
async function withLag<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; lag: Lag }> {
  const lags: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lags.push(now - last - 2);
    last = now;
  }, 2);
  const cpu0 = process.cpuUsage();
  const rq0 = runQueueWaitMs();
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  clearInterval(timer);
  const cpu = process.cpuUsage(cpu0);
  lags.sort((a, b) => a - b);
  const at = (p: number) => Math.max(0, lags[Math.min(lags.length - 1, Math.floor(lags.length * p))] ?? 0);
  return { value, ms, lag: { p50: at(0.5), p99: at(0.99), max: Math.max(0, lags.at(-1) ?? 0), cpuMs: (cpu.user + cpu.system) / 1000, runQueueMs: runQueueWaitMs() - rq0 } };
}

const fmtLag = (l: Lag) => `${l.p50.toFixed(1)}/${l.p99.toFixed(1)}/${l.max.toFixed(1)}  ${l.cpuMs.toFixed(0)}  ${l.runQueueMs.toFixed(0)}`;

const pidsToKill: number[] = [];
const burners = Array.from({ length: Number(process.env.BURN ?? 0) }, () => Bun.spawn(["sha256sum", "/dev/zero"], { stdio: ["ignore", "ignore", "ignore"] }));
try {
  const idle = await withLag(() => Bun.sleep(2000));
  console.log(`# ${new Date().toISOString()} load ${loadavg().map((l) => l.toFixed(2)).join(" ")}, burners ${burners.length}; idle 2 s: lag p50/p99/max ${fmtLag(idle.lag)}`);
  console.log("size_MiB  helper_dump_ms  cli_dump_ms  helper_restore_ms  cli_restore_ms  images_MiB  pages_written  helper_dump:lag_p50/p99/max_ms cpu_ms runq_ms  cli_dump:lag_p50/p99/max_ms cpu_ms runq_ms");
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
    const cli = await withLag(async () => {
      const d = Bun.spawn(["criu", "dump", "-t", String(b.p.pid), "-D", imgB, "-v2", "-o", "dump.log"], { stdio: ["ignore", "ignore", "pipe"] });
      const err = await new Response(d.stderr).text();
      if ((await d.exited) !== 0) throw new Error(`criu dump: ${err}`);
    });
    const cliDump = cli.ms;
    await b.p.exited;
    const t1 = performance.now();
    const r = Bun.spawnSync(["criu", "restore", "-D", imgB, "-d", "-v2", "-o", "restore.log", "--pidfile", join(imgB, "pid")]);
    const cliRestore = performance.now() - t1;
    if (r.exitCode !== 0) throw new Error(`criu restore: ${r.stderr.toString()}`);
    const cliPid = Number(await Bun.file(join(imgB, "pid")).text());
    pidsToKill.push(cliPid);
    process.kill(cliPid, "SIGKILL");

    console.log(
      [mib, dump.ms.toFixed(1), cliDump.toFixed(1), restore.ms.toFixed(1), cliRestore.toFixed(1), (dirBytes(imgA) / 2 ** 20).toFixed(1), dump.value.stats.dump?.pagesWritten ?? "?", fmtLag(dump.lag), fmtLag(cli.lag)].join("  "),
    );
    rmSync(imgA, { recursive: true, force: true });
    rmSync(imgB, { recursive: true, force: true });
  }
  console.log(`# done, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
} finally {
  for (const b of burners) b.kill("SIGKILL");
  for (const pid of pidsToKill) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
