/**
 * A task created from a checkpoint (Create with a checkpoint path) and deleted without a Start. Between
 * Create's reply and Start the shim makes the container's cgroups and has its waiting CRIU helper join
 * them (so that the kernel's cgroup move is done when Start's CRIU call comes). Delete must undo that:
 * the helper is killed and every cgroup directory of the task is removed. ctr has no create-only command
 * for a checkpoint, so the task is created through the shim's task API (ttrpc) on the source's shim.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CRIU_HELPER_ARG } from "../../src/criu/wire.ts";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { connect } from "../../src/ttrpc/index.ts";
import { PrivateContainerd, checkpointCriuTar, ensureTestImage, startPrivateContainerd, testImage, uniqueId, waitFor } from "../harness/index.ts";

setDefaultTimeout(180_000);
const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let ns: string;
let dir: string;

beforeAll(async () => {
  ns = uniqueId("ckptcd");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
  dir = mkdtempSync("/tmp/cryo-ckpt-cd-");
});

afterAll(async () => {
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The cgroup directories of cgroupsPath on this host: one per v1 hierarchy, and the unified one. */
function cgroupDirs(cgroupsPath: string): string[] {
  return readdirSync("/sys/fs/cgroup")
    .map((h) => join("/sys/fs/cgroup", h))
    .filter((h) => existsSync(join(h, "cgroup.procs")))
    .map((h) => join(h, cgroupsPath));
}

const procs = (d: string) => readFileSync(join(d, "cgroup.procs"), "utf8").trim().split("\n").filter((l) => l !== "");
const cmdline = (pid: string) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
};

test("a task created from a checkpoint and deleted unstarted leaves no cgroup and no CRIU helper", async () => {
  const src = uniqueId("src");
  const ref = `localhost/${src}:ckpt`;
  const restoredId = uniqueId("cd");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, src, "sleep", "1000"]);
  try {
    await pc.ctrOk(["containers", "checkpoint", "--task", src, ref], { timeoutMs: 120_000 });
    const tar = await checkpointCriuTar(pc, ref);
    const images = join(dir, "images");
    mkdirSync(images);
    expect(Bun.spawnSync(["tar", "-xf", tar.path, "-C", images]).exitCode).toBe(0);

    // The new task's bundle: the source's spec with a cgroup of its own, and a copy of its rootfs.
    const srcBundle = join(pc.state, "io.containerd.runtime.v2.task", ns, src);
    const bundle = join(dir, "bundle");
    mkdirSync(bundle);
    const spec = JSON.parse(readFileSync(join(srcBundle, "config.json"), "utf8")) as { linux: { cgroupsPath: string } };
    const cgroupsPath = `/${ns}/${restoredId}`;
    spec.linux.cgroupsPath = cgroupsPath;
    writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
    cpSync(join(srcBundle, "rootfs"), join(bundle, "rootfs"), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    const dirs = cgroupDirs(cgroupsPath);
    expect(dirs.length).toBeGreaterThan(1);
    for (const d of dirs) expect(existsSync(d)).toBe(false);

    const address = readFileSync(join(srcBundle, "address"), "utf8").trim();
    const client = await connect(address.replace(/^unix:\/\//, ""));
    try {
      const c = await client.call(TaskV2, "create", { id: restoredId, bundle, rootfs: [], terminal: false, stdin: "", stdout: "", stderr: "", checkpoint: images }, { namespace: ns, timeoutMs: 60_000 });
      expect(c.pid).toBe(0);
      // Ahead of a Start: the cgroups exist, and the shim's CRIU helper (and nothing else) sits in each.
      const helper = await waitFor(
        () => {
          if (!dirs.every((d) => existsSync(d))) return undefined;
          const p = procs(dirs[0]!);
          return p.length === 1 && cmdline(p[0]!).includes(CRIU_HELPER_ARG) ? p[0] : undefined;
        },
        { what: "the CRIU helper in the restored task's cgroups", timeoutMs: 20_000 },
      );
      for (const d of dirs) await waitFor(() => (procs(d).join(",") === helper ? true : undefined), { what: `the helper alone in ${d}` });

      await client.call(TaskV2, "delete", { id: restoredId }, { namespace: ns, timeoutMs: 30_000 });
      // Delete answered after the undo: the helper is gone and so is every cgroup directory.
      for (const d of dirs) expect(existsSync(d)).toBe(false);
      await waitFor(() => (!existsSync(`/proc/${helper}`) || !cmdline(helper).includes(CRIU_HELPER_ARG) ? true : undefined), { what: `helper ${helper} gone`, timeoutMs: 10_000 });
      // The source runs on, untouched.
      expect(await pc.ctrOk(["task", "ls"])).toMatch(new RegExp(`${src}\\s+\\d+\\s+RUNNING`));
    } finally {
      await client.call(TaskV2, "delete", { id: restoredId }, { namespace: ns, timeoutMs: 30_000 }).catch(() => {});
      client.close();
    }
  } finally {
    await pc.ctr(["task", "kill", "--signal", "SIGKILL", src]);
    await waitFor(async () => !(await pc.ctrOk(["task", "ls"])).includes(src) || (await pc.ctr(["task", "delete", src])).exitCode === 0, { timeoutMs: 20_000 });
    await pc.ctr(["containers", "rm", src]);
    await pc.ctr(["images", "rm", "--sync", ref]);
  }
});
