// Benchmark (not a test): latency of cryo's cgroupfs operations on this host, on a v1 cgroup holding
// one busy process: freeze+thaw, stats, pids, update. Prints medians and p95 in milliseconds.
// Run as root: node_modules/.bin/bun bench/cgroups-ops.ts
import { createCgroup, hostCgroupMounts, locationFromCgroupsPath, parseLinuxResources } from "../src/cgroups/index.ts";

const N = 200;
const mounts = await hostCgroupMounts();
const cg = await createCgroup(locationFromCgroupsPath(`/cryo-bench-${process.pid}-${crypto.randomUUID().slice(0, 8)}`, mounts, 1));
const child = Bun.spawn(["sh", "-c", "read _ && exec dd if=/dev/zero of=/dev/null bs=1M count=1000000000"], { stdin: "pipe", stdout: "ignore", stderr: "ignore" });
try {
  await cg.addProcess(child.pid);
  child.stdin.write("go\n");
  child.stdin.flush();

  async function measure(name: string, op: () => Promise<unknown>) {
    const times: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      await op();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(3);
    console.log(`${name.padEnd(24)} n=${N}  median ${q(0.5)} ms  p95 ${q(0.95)} ms  max ${q(1)} ms`);
  }

  await measure("freeze + thaw (v1)", async () => {
    await cg.freeze();
    await cg.thaw();
  });
  await measure("stats (v1, all)", () => cg.stats());
  await measure("pids", () => cg.pids());
  await measure("update memory+pids", () => cg.update(parseLinuxResources({ memory: { limit: 512 * 1024 * 1024 }, pids: { limit: 100 } })));
} finally {
  child.kill("SIGKILL");
  await child.exited;
  await cg.destroy({ kill: true });
}
