// Benchmark (not a test): the cost of one reaper scan, and the runc driver's create+start+kill+delete
// round trip. Run as root: node_modules/.bin/bun bench/runtime-reaper.ts
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createReaper } from "../src/sys/index.ts";
import { createRunc, readPidFile } from "../src/runtime/index.ts";

using reaper = createReaper({ backstopMs: 0 });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

// 1. Scan cost with N reparented sleeping children and one unwatched zombie-free state.
for (const n of [0, 20, 100]) {
  const sh = Bun.spawn(["sh", "-c", `for i in $(seq ${n}); do sleep 1000 >/dev/null 2>&1 & done; jobs -p`], { stdout: "pipe" });
  const pids = (await new Response(sh.stdout).text()).split("\n").filter(Boolean).map(Number);
  await sh.exited;
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    reaper.reap();
    times.push(performance.now() - t);
  }
  console.log(`reap() scan with ${pids.length} reparented children: median ${(median(times) * 1000).toFixed(0)} us`);
  const exits = pids.map((p) => reaper.watch(p));
  for (const p of pids) process.kill(p, "SIGKILL");
  await Promise.all(exits);
}

// 2. runc lifecycle through the driver (create, start, kill -9, reaper exit, delete).
const base = mkdtempSync(join(tmpdir(), "cryo-bench-runtime-"));
try {
  const rootfs = join(base, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  copyFileSync("/usr/bin/busybox", join(rootfs, "bin", "busybox"));
  symlinkSync("busybox", join(rootfs, "bin", "sleep"));
  Bun.spawnSync(["runc", "spec"], { cwd: base });
  const config = JSON.parse(readFileSync(join(base, "config.json"), "utf8"));
  config.process.args = ["sleep", "1000"];
  config.process.terminal = false;
  const runc = createRunc({ root: join(base, "root") });
  const rounds = 20;
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const id = `cryo-bench-${process.pid}-${i}`;
    config.linux.cgroupsPath = `/${id}`;
    writeFileSync(join(base, "config.json"), JSON.stringify(config));
    const t = performance.now();
    await runc.create(id, base, { pidFile: join(base, "pid") });
    const exit = reaper.watch(readPidFile(join(base, "pid")));
    await runc.start(id);
    await runc.kill(id, 9);
    await exit;
    await runc.delete(id);
    times.push(performance.now() - t);
  }
  console.log(`runc create+start+kill+wait+delete: median ${median(times).toFixed(1)} ms over ${rounds} rounds`);
} finally {
  rmSync(base, { recursive: true, force: true });
}
