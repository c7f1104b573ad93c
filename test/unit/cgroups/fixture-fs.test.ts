// The readers, writers and the v2 OOM watcher against a fake cgroupfs in a temp directory (no root).
import { afterAll, describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MetricsSchema as V1MetricsSchema } from "../../../src/gen/containerd/cgroups/v1/metrics_pb.ts";
import { MetricsSchema as V2MetricsSchema } from "../../../src/gen/containerd/cgroups/v2/metrics_pb.ts";
import { managerFor } from "../../../src/cgroups/open.ts";
import { packMetrics } from "../../../src/cgroups/metrics.ts";
import { parseLinuxResources } from "../../../src/cgroups/resources.ts";
import { readV1Stats } from "../../../src/cgroups/v1-stats.ts";
import { readV2Stats } from "../../../src/cgroups/v2-stats.ts";
import { Code, CryoError } from "../../../src/errors.ts";

const root = mkdtempSync(join(tmpdir(), "cryo-cgroups-unit-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function dir(name: string, files: Record<string, string>): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
  return d;
}

const noDevName = async () => "/dev/sda";

describe("v1 stats", () => {
  const memory = dir("v1/memory", {
    "memory.stat": "cache 4096\nrss 8192\nrss_huge 0\npgpgin 10\npgfault 30\nhierarchical_memory_limit 67108864\nhierarchical_memsw_limit 9223372036854771712\ntotal_rss 8192\ntotal_pgmajfault 2\n",
    "memory.usage_in_bytes": "12288\n",
    "memory.limit_in_bytes": "67108864\n",
    "memory.max_usage_in_bytes": "20480\n",
    "memory.failcnt": "3\n",
    "memory.memsw.usage_in_bytes": "12288\n",
    "memory.memsw.limit_in_bytes": "9223372036854771712\n",
    "memory.memsw.max_usage_in_bytes": "20480\n",
    "memory.memsw.failcnt": "0\n",
    "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
  });
  const cpuacct = dir("v1/cpuacct", {
    "cpuacct.usage": "3000\n",
    "cpuacct.usage_percpu": "1000 2000 \n",
    "cpuacct.stat": "user 7\nsystem 3\n",
    // The kernel's unscaled counters, which stray from the total (user alone above it): runc's shim reads cpuacct.stat.
    "cpuacct.usage_user": "3500\n",
    "cpuacct.usage_sys": "4\n",
  });
  const cpu = dir("v1/cpu", { "cpu.stat": "nr_periods 5\nnr_throttled 2\nthrottled_time 1234\n" });
  const pids = dir("v1/pids", { "pids.current": "3\n", "pids.max": "max\n" });
  const blkio = dir("v1/blkio", {
    "blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
    "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 0\nTotal 1\n",
  });
  const hugetlb = dir("v1/hugetlb", {
    "hugetlb.2MB.usage_in_bytes": "2097152\n",
    "hugetlb.2MB.max_usage_in_bytes": "4194304\n",
    "hugetlb.2MB.failcnt": "1\n",
    "hugetlb.2MB.limit_in_bytes": "9223372036854771712\n",
  });

  test("every controller read and mapped", async () => {
    const m = await readV1Stats({ memory, cpuacct, cpu, pids, blkio, hugetlb }, noDevName);
    expect(m.memory?.cache).toBe(4096n);
    expect(m.memory?.pgPgIn).toBe(10n);
    expect(m.memory?.hierarchicalSwapLimit).toBe(9223372036854771712n);
    expect(m.memory?.totalPgMajFault).toBe(2n);
    expect(m.memory?.usage).toEqual({ usage: 12288n, limit: 67108864n, max: 20480n, failcnt: 3n });
    expect(m.memory?.swap?.limit).toBe(9223372036854771712n);
    expect(m.memory?.kernel).toBeUndefined();
    expect(m.memoryOomControl).toEqual({ oomKillDisable: 0n, underOom: 0n, oomKill: 2n });
    expect(m.cpu?.usage).toEqual({ total: 3000n, perCpu: [1000n, 2000n], user: 70_000_000n, kernel: 30_000_000n });
    expect(m.cpu?.throttling).toEqual({ periods: 5n, throttledPeriods: 2n, throttledTime: 1234n });
    expect(m.pids).toEqual({ current: 3n, limit: 0n });
    expect(m.blkio?.ioServiceBytesRecursive).toEqual([
      { op: "Read", device: "/dev/sda", major: 8n, minor: 0n, value: 4096n },
      { op: "Write", device: "/dev/sda", major: 8n, minor: 0n, value: 0n },
    ]);
    expect(m.hugetlb).toEqual([{ pagesize: "2MB", usage: 2097152n, max: 4194304n, failcnt: 1n }]);
  });

  test("missing controllers and files are skipped", async () => {
    const m = await readV1Stats({ pids, memory: join(root, "v1/nonexistent") }, noDevName);
    expect(m.pids?.current).toBe(3n);
    expect(m.memory).toBeUndefined();
    expect(m.cpu).toBeUndefined();
  });

  test("packMetrics: the Any decodes as io.containerd.cgroups.v1.Metrics", async () => {
    const m = await readV1Stats({ memory, pids }, noDevName);
    const any = packMetrics({ version: 1, metrics: m });
    expect(any.typeUrl).toBe("io.containerd.cgroups.v1.Metrics");
    const back = fromBinary(V1MetricsSchema, any.value);
    expect(back.memory?.usage?.limit).toBe(67108864n);
    expect(back.pids?.current).toBe(3n);
    expect(back.memoryOomControl?.oomKill).toBe(2n);
  });
});

describe("v2 stats", () => {
  const d = dir("v2/c1", {
    "pids.current": "2\n",
    "pids.max": "100\n",
    "cpu.stat": "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "memory.stat": "anon 4096\nfile 8192\nworkingset_refault_anon 1\nworkingset_refault_file 2\npgfault 9\n",
    "memory.current": "12288\n",
    "memory.max": "max\n",
    "memory.peak": "16384\n",
    "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
    "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    "hugetlb.2MB.current": "0\n",
    "hugetlb.2MB.max": "max\n",
  });
  test("every file read and mapped", async () => {
    const m = await readV2Stats(d);
    expect(m.pids).toEqual({ current: 2n, limit: 100n });
    expect(m.cpu?.usageUsec).toBe(1000n);
    expect(m.memory?.anon).toBe(4096n);
    expect(m.memory?.workingsetRefault).toBe(3n);
    expect(m.memory?.usage).toBe(12288n);
    expect(m.memory?.usageLimit).toBe(2n ** 64n - 1n);
    expect(m.memory?.maxUsage).toBe(16384n);
    expect(m.memory?.swapUsage).toBeUndefined();
    expect(m.memoryEvents).toEqual({ low: 0n, high: 0n, max: 4n, oom: 1n, oomKill: 1n });
    expect(m.io?.usage).toEqual([{ major: 8n, minor: 0n, rbytes: 4096n, wbytes: 8192n, rios: 1n, wios: 2n }]);
    expect(m.hugetlb).toEqual([{ pagesize: "2MB", current: 0n, max: 2n ** 64n - 1n }]);
    const back = fromBinary(V2MetricsSchema, packMetrics({ version: 2, metrics: m }).value);
    expect(back.memoryEvents?.oomKill).toBe(1n);
  });
  test("a cgroup without controllers reports what the core files hold", async () => {
    const m = await readV2Stats(dir("v2/bare", { "cpu.stat": "usage_usec 5\n" }));
    expect(m).toEqual({ cpu: { usageUsec: 5n, userUsec: 0n, systemUsec: 0n, nrPeriods: 0n, nrThrottled: 0n, throttledUsec: 0n } });
  });
});

describe("writes on a fake cgroupfs", () => {
  test("v1 freeze/thaw writes freezer.state and sees the state", async () => {
    const freezer = dir("w1/freezer", { "freezer.state": "THAWED\n" });
    const cg = managerFor({ version: 1, paths: { freezer } });
    await cg.freeze();
    expect(await cg.state()).toBe("frozen");
    await cg.thaw();
    expect(await cg.state()).toBe("thawed");
  });
  test("v1 update writes the planned values; a missing file is FAILED_PRECONDITION naming it", async () => {
    // Regular files written without O_TRUNC, as cgroupfs takes writes: the fixtures are as long as the new values.
    const memory = dir("w1/memory", { "memory.limit_in_bytes": "0000000\n", "memory.soft_limit_in_bytes": "000000\n" });
    const cg = managerFor({ version: 1, paths: { memory } });
    await cg.update(parseLinuxResources({ memory: { limit: 1048576, reservation: 524288 } }));
    expect(readFileSync(join(memory, "memory.limit_in_bytes"), "utf8")).toBe("1048576\n");
    expect(readFileSync(join(memory, "memory.soft_limit_in_bytes"), "utf8")).toBe("524288\n");
    let err: CryoError | undefined;
    try {
      await cg.update(parseLinuxResources({ memory: { swappiness: 10 } }));
    } catch (e) {
      err = e as CryoError;
    }
    expect(err?.code).toBe(Code.FAILED_PRECONDITION);
    expect(err?.message).toContain("memory.swappiness");
  });
  test("a controller the cgroup does not have is FAILED_PRECONDITION", async () => {
    const cg = managerFor({ version: 1, paths: { memory: dir("w2/memory", {}) } });
    await expect(cg.update(parseLinuxResources({ pids: { limit: 5 } }))).rejects.toThrow(/cgroup controller pids/);
    await expect(cg.freeze()).rejects.toThrow(/freezer/);
    expect(await cg.state()).toBe("thawed");
  });
  test("pids are listed recursively, sorted and unique", async () => {
    const d = dir("w3/freezer", { "cgroup.procs": "30\n10\n" });
    dir("w3/freezer/child", { "cgroup.procs": "20\n10\n" });
    expect(await managerFor({ version: 1, paths: { freezer: d } }).pids()).toEqual([10, 20, 30]);
  });
});

describe("v2 OOM watch on memory.events", () => {
  test("a rising oom_kill calls onOom once per rise; dispose stops it", async () => {
    const d = dir("oom/c1", { "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n" });
    const seen: (bigint | undefined)[] = [];
    const cg = managerFor({ version: 2, path: d });
    const watch = cg.watchOom((n) => seen.push(n), { pollMs: 20 });
    writeFileSync(join(d, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
    const deadline = Date.now() + 5000;
    while (seen.length === 0 && Date.now() < deadline) await Bun.sleep(5);
    expect(seen).toEqual([1n]);
    writeFileSync(join(d, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
    watch[Symbol.dispose]();
    writeFileSync(join(d, "memory.events"), "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n");
    await Bun.sleep(100); // negative check: nothing may arrive after dispose (5 poll periods)
    expect(seen).toEqual([1n]);
  });
  test("no memory.events (memory controller not enabled) is FAILED_PRECONDITION", () => {
    const cg = managerFor({ version: 2, path: dir("oom/bare", {}) });
    let err: CryoError | undefined;
    try {
      cg.watchOom(() => {});
    } catch (e) {
      err = e as CryoError;
    }
    expect(err?.code).toBe(Code.FAILED_PRECONDITION);
  });
});
