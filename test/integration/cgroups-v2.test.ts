// cgroup v2 on this hybrid host's unified hierarchy (/sys/fs/cgroup/unified), where the v1 hierarchies
// hold every controller except hugetlb: freezing, pids, core stats (cpu.stat), hugetlb limits and
// stats, and clear errors for the controllers v2 does not have here. Everything created is removed.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCgroup, hostCgroupMounts, locationFromCgroupsPath, parseLinuxResources, type CgroupManager } from "../../src/cgroups/index.ts";
import { Code, CryoError } from "../../src/errors.ts";
import { uniqueId, waitFor } from "../harness/index.ts";

const children: Bun.Subprocess[] = [];
const cgroups: CgroupManager[] = [];
let unifiedRoot = "";
let enabledHugetlbAtRoot = false;

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const cg of cgroups) await cg.destroy({ kill: true }).catch(() => {});
  // Put the root's subtree_control back as it was (fails harmlessly while another test's cgroup uses it).
  if (enabledHugetlbAtRoot) {
    try {
      writeFileSync(join(unifiedRoot, "cgroup.subtree_control"), "-hugetlb");
    } catch {
      /* still in use elsewhere: leave it */
    }
  }
});

async function newCgroup(opts: { enableControllers?: string[] } = {}): Promise<CgroupManager> {
  const mounts = await hostCgroupMounts();
  unifiedRoot = mounts.unified!;
  const cg = await createCgroup(locationFromCgroupsPath(`/${uniqueId("cryo-cg2")}`, mounts, 2), opts);
  cgroups.push(cg);
  return cg;
}

function dirOf(cg: CgroupManager): string {
  if (cg.location.version !== 2) throw new Error("expected a v2 cgroup");
  return cg.location.path;
}

const read = (dir: string, file: string) => readFileSync(join(dir, file), "utf8");
const controllersHere = () => read(unifiedRoot || "/sys/fs/cgroup/unified", "cgroup.controllers").trim().split(/\s+/).filter(Boolean);

/** The host these tests are written for: hybrid, with memory and pids in v1 and hugetlb free for v2. */
const hybridHost =
  existsSync("/sys/fs/cgroup/unified/cgroup.controllers") &&
  !controllersHere().includes("memory") &&
  !controllersHere().includes("pids") &&
  controllersHere().includes("hugetlb");

describe.skipIf(!hybridHost)("cgroup v2 on the unified hierarchy of a hybrid host", () => {
  test("the unified hierarchy is at /sys/fs/cgroup/unified", async () => {
    const mounts = await hostCgroupMounts();
    expect(mounts.unified).toBe("/sys/fs/cgroup/unified");
  });

  test("create, move a process in, freeze, thaw, core stats, destroy", async () => {
    const cg = await newCgroup();
    const dir = dirOf(cg);
    expect(dir.startsWith("/sys/fs/cgroup/unified/cryo-cg2-")).toBe(true);
    const child = Bun.spawn(["sh", "-c", 'read _ && exec "$@"', "sh", "dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=100000000"], {
      stdin: "pipe",
      stdout: "ignore",
      stderr: "ignore",
    });
    children.push(child);
    await cg.addProcess(child.pid);
    child.stdin.write("go\n");
    child.stdin.flush();
    expect(await cg.pids()).toEqual([child.pid]);
    expect(readFileSync(`/proc/${child.pid}/cgroup`, "utf8")).toContain(`0::${dir.slice("/sys/fs/cgroup/unified".length)}\n`);

    await cg.freeze();
    expect(await cg.state()).toBe("frozen");
    expect(read(dir, "cgroup.events")).toContain("frozen 1");
    const frozenUsage = read(dir, "cpu.stat").split("\n")[0];
    await Bun.sleep(100); // negative check: nothing may run while frozen
    expect(read(dir, "cpu.stat").split("\n")[0]).toBe(frozenUsage);

    await cg.thaw();
    expect(await cg.state()).toBe("thawed");
    expect(read(dir, "cgroup.events")).toContain("frozen 0");

    const stats = await waitFor(
      async () => {
        const s = await cg.stats();
        return s.version === 2 && (s.metrics.cpu?.usageUsec ?? 0n) > 0n ? s : undefined;
      },
      { what: "cpu usage in cpu.stat", timeoutMs: 10_000 },
    );
    if (stats.version !== 2) throw new Error("unreachable");
    expect((stats.metrics.cpu?.userUsec ?? 0n) + (stats.metrics.cpu?.systemUsec ?? 0n)).toBeGreaterThan(0n);
    // No memory or pids controller in v2 here: those sections are skipped, not errors.
    expect(stats.metrics.memory).toBeUndefined();
    expect(stats.metrics.pids).toBeUndefined();

    await cg.destroy({ kill: true });
    // The cgroup empties when the child exits, which can be before Bun has reaped it.
    await child.exited;
    expect(child.signalCode).toBe("SIGKILL");
    expect(existsSync(dir)).toBe(false);
  });

  test("limits of a controller that is not enabled: FAILED_PRECONDITION naming the file; OOM watch refused", async () => {
    const cg = await newCgroup();
    let err: CryoError | undefined;
    try {
      await cg.update(parseLinuxResources({ memory: { limit: 64 * 1024 * 1024 } }));
    } catch (e) {
      err = e as CryoError;
    }
    expect(err?.code).toBe(Code.FAILED_PRECONDITION);
    expect(err?.message).toContain("memory.max");
    let oomErr: CryoError | undefined;
    try {
      cg.watchOom(() => {});
    } catch (e) {
      oomErr = e as CryoError;
    }
    expect(oomErr?.code).toBe(Code.FAILED_PRECONDITION);
    expect(oomErr?.message).toContain("memory.events");
    await cg.destroy();
  });

  test("hugetlb: enabled for the cgroup, limited through update and the unified map, reported in stats", async () => {
    enabledHugetlbAtRoot = !read(unifiedRoot || "/sys/fs/cgroup/unified", "cgroup.subtree_control").includes("hugetlb");
    const cg = await newCgroup({ enableControllers: ["hugetlb"] });
    const dir = dirOf(cg);
    expect(existsSync(join(dir, "hugetlb.2MB.max"))).toBe(true);
    await cg.update(parseLinuxResources({ hugepageLimits: [{ pageSize: "2MB", limit: 4 * 1024 * 1024 }] }));
    expect(read(dir, "hugetlb.2MB.max").trim()).toBe(String(4 * 1024 * 1024));
    await cg.update(parseLinuxResources({ unified: { "hugetlb.2MB.max": String(8 * 1024 * 1024) } }));
    expect(read(dir, "hugetlb.2MB.max").trim()).toBe(String(8 * 1024 * 1024));
    const stats = await cg.stats();
    if (stats.version !== 2) throw new Error("expected v2");
    expect(stats.metrics.hugetlb?.find((h) => h.pagesize === "2MB")).toEqual({ pagesize: "2MB", current: 0n, max: 8n * 1024n * 1024n });
    // A value the kernel refuses.
    let err: CryoError | undefined;
    try {
      await cg.update(parseLinuxResources({ unified: { "hugetlb.2MB.max": "lots" } }));
    } catch (e) {
      err = e as CryoError;
    }
    expect(err?.code).toBe(Code.FAILED_PRECONDITION);
    expect(err?.message).toContain("hugetlb.2MB.max");
    await cg.destroy();
    expect(existsSync(dir)).toBe(false);
  });
});
