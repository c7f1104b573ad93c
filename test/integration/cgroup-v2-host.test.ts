/**
 * cryo on a cgroup v2 host, end to end through ctr: this VM is hybrid (v1 controllers), so the private containerd
 * runs in a mount namespace that looks like a pure v2 host (startPrivateContainerd's cgroupV2Host: every cgroup
 * mount gone, cgroup2 at /sys/fs/cgroup). runc then puts containers in the unified hierarchy, and cryo pauses them
 * through cgroup.freeze, reads v2 metrics, and checkpoints and restores them with CRIU freezing through the v2
 * cgroup (containerd pauses the task before its checkpoint). The hierarchy has no memory, pids or cpu controller
 * here (hugetlb only), so ctr runs with `--cpu-shares 0` (no cpu.weight to write). The same cgroup2 hierarchy is
 * /sys/fs/cgroup/unified in this test's own mount namespace.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { checkpointCriuTar, ensureTestImage, removeContainer, startPrivateContainerd, taskPid, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const UNIFIED = "/sys/fs/cgroup/unified";
let pc: PrivateContainerd;

beforeAll(async () => {
  pc = await startPrivateContainerd({ namespace: uniqueId("cgv2"), cgroupV2Host: true });
  await ensureTestImage(pc);
}, 120_000);

// Stopping it removes what the tests leave (containers, their cgroups, the checkpoint image).
afterAll(() => pc?.stop(), 120_000);

/** runc's state of a container: its cgroup paths (only the unified directory, key "", on a v2 host). */
function cgroupPaths(id: string): Record<string, string> {
  return JSON.parse(readFileSync(`/run/containerd/runc/${pc.namespace}/${id}/state.json`, "utf8")).cgroup_paths;
}

/** The container's cgroup directory as this test sees it (runc's path is under the namespace's /sys/fs/cgroup). */
function cgroupDir(id: string): string {
  const paths = cgroupPaths(id);
  expect(Object.keys(paths)).toEqual([""]);
  return join(UNIFIED, paths[""]!.replace(/^\/sys\/fs\/cgroup\//, ""));
}

/** The counter memhog writes, read through the task's /proc root (its rootfs is mounted in containerd's namespace only). */
async function counter(id: string): Promise<number | undefined> {
  const pid = await taskPid(pc, id);
  try {
    const text = readFileSync(`/proc/${pid}/root/tmp/counter`, "utf8").trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

async function run(id: string): Promise<void> {
  await pc.ctrOk(["run", "-d", "--cpu-shares", "0", "--runtime", RUNTIME, testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(async () => ((await counter(id)) ?? 0) > 2, { what: `${id} counting` });
}

test("pause and resume freeze the container's v2 cgroup (cgroup.freeze); metrics are cgroups v2 Metrics", async () => {
  const id = uniqueId("v2p");
  await run(id);
  const dir = cgroupDir(id);
  const pid = await taskPid(pc, id);
  expect(readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n")).toContain(String(pid));

  await pc.ctrOk(["task", "pause", id]);
  expect(await taskStatus(pc, id)).toBe("PAUSED");
  expect(readFileSync(join(dir, "cgroup.freeze"), "utf8").trim()).toBe("1");
  expect(readFileSync(join(dir, "cgroup.events"), "utf8")).toContain("frozen 1");
  const frozen = await counter(id);
  await Bun.sleep(1500);
  expect(await counter(id)).toBe(frozen!);

  await pc.ctrOk(["task", "resume", id]);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  expect(readFileSync(join(dir, "cgroup.freeze"), "utf8").trim()).toBe("0");
  await waitFor(async () => ((await counter(id)) ?? 0) > frozen!, { what: `${id} counting again` });

  // ctr prints a v2 Metrics message as cpu.usage_usec etc. (a v1 one as cpu.usage.total ...)
  const metrics = await pc.ctrOk(["task", "metrics", id]);
  const usage = /cpu\.usage_usec\s+(\d+)/.exec(metrics);
  expect(usage).not.toBeNull();
  expect(Number(usage![1])).toBeGreaterThan(0);

  await removeContainer(pc, id);
  expect(existsSync(dir)).toBe(false);
}, 120_000);

test("ctr containers checkpoint --task and restore --live: CRIU freezes through the v2 cgroup, and the counter goes on from its checkpointed value in the new v2 cgroup", async () => {
  const id = uniqueId("v2c");
  const ref = `localhost/checkpoint/${id}:1`;
  await run(id);
  const before = await counter(id);
  // --rw: the restored rootfs holds the counter's value at the dump, which is read right after the restore below.
  await pc.ctrOk(["containers", "checkpoint", "--task", "--rw", id, ref], { timeoutMs: 120_000 });
  // containerd paused the task for the dump and resumed it: it runs on, thawed.
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  expect(readFileSync(join(cgroupDir(id), "cgroup.freeze"), "utf8").trim()).toBe("0");
  // The dump froze through cgroup.freeze (CRIU's log says so), not by seizing a frozen tree through ptrace.
  const tar = await checkpointCriuTar(pc, ref);
  const log = Bun.spawnSync(["tar", "-xOf", tar.path, "dump.log"], { stdout: "pipe" }).stdout.toString();
  expect(log).toContain("Detected cgroup V2 freezer");
  expect(log).toContain("freezing cgroup /sys/fs/cgroup/");
  await removeContainer(pc, id);

  const r = await pc.ctr(["containers", "restore", "--live", "--rw", id, ref], { timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  const pid = await taskPid(pc, id);
  const dir = cgroupDir(id);
  expect(readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n")).toContain(String(pid));
  // memhog's counter came back with its memory (at least where it was before the dump, not from 0), and counts on.
  const restored = await counter(id);
  expect(restored).toBeGreaterThanOrEqual(before!);
  await waitFor(async () => ((await counter(id)) ?? 0) > restored!, { what: `${id} counting after the restore` });
  // Managed as any container afterwards: exec, pause.
  expect((await pc.ctrOk(["task", "exec", "--exec-id", "e1", id, "echo", "in"])).trim()).toBe("in");
  await pc.ctrOk(["task", "pause", id]);
  expect(readFileSync(join(dir, "cgroup.freeze"), "utf8").trim()).toBe("1");
  await pc.ctrOk(["task", "resume", id]);
  await removeContainer(pc, id);
  expect(existsSync(dir)).toBe(false);
  await pc.ctrOk(["images", "rm", "--sync", ref]);
}, 180_000);
