// Interop with runc 1.1 on this host: a container runc created is opened from runc's own state.json
// (cgroup_paths), frozen and thawed by cryo (runc then reports paused/running), measured and updated.
// Uses a private runc root and a busybox rootfs in a temp dir; everything is removed afterwards.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCgroup, parseLinuxResources, type CgroupManager } from "../../src/cgroups/index.ts";
import { uniqueId, waitFor } from "../harness/index.ts";

const work = mkdtempSync(join(tmpdir(), "cryo-cg-runc-"));
const root = join(work, "runc-root");
const bundle = join(work, "bundle");
const id = uniqueId("cryo-cg-runc");
const cgroupsPath = `/${id}`;
let created = false;

async function runc(...args: string[]) {
  const p = Bun.spawn(["runc", "--root", root, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: bundle });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

beforeAll(async () => {
  const rootfs = join(bundle, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  for (const d of ["proc", "sys", "dev", "tmp"]) mkdirSync(join(rootfs, d));
  copyFileSync("/usr/bin/busybox", join(rootfs, "bin/busybox"));
  for (const tool of ["sh", "sleep"]) symlinkSync("busybox", join(rootfs, "bin", tool));
  const spec = await runc("spec", "--bundle", bundle);
  expect(spec.code).toBe(0);
  const config = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
  config.process.terminal = false;
  config.process.args = ["sh", "-c", "while :; do :; done"];
  config.linux.cgroupsPath = cgroupsPath;
  config.linux.resources = { memory: { limit: 64 * 1024 * 1024 } };
  writeFileSync(join(bundle, "config.json"), JSON.stringify(config));
  // Detached, the container keeps its stdio: give it /dev/null, not our pipes; runc's errors go to its log.
  const log = join(work, "runc.log");
  const p = Bun.spawn(["runc", "--root", root, "--log", log, "run", "--detach", "--bundle", bundle, id], { stdio: ["ignore", "ignore", "ignore"] });
  const code = await p.exited;
  if (code !== 0) throw new Error(`runc run exited ${code}: ${existsSync(log) ? readFileSync(log, "utf8") : ""}`);
  created = true;
  // runc returns once it told its init to exec the command, before the exec: until then the cgroup holds runc's
  // init and its threads (pids.current was 5 in one run). The tests mean the container running its command.
  const pid = (JSON.parse(readFileSync(join(root, id, "state.json"), "utf8")) as { init_process_pid: number }).init_process_pid;
  await waitFor(() => readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "sh" || undefined, { what: "the container's init to exec sh" });
}, 30_000);

afterAll(async () => {
  if (created) {
    await runc("kill", id, "KILL");
    await runc("delete", "--force", id);
  }
  rmSync(work, { recursive: true, force: true });
});

async function runcStatus(): Promise<string> {
  const r = await runc("state", id);
  return (JSON.parse(r.stdout) as { status: string }).status;
}

describe("a runc 1.1 container's cgroup", () => {
  let cg: CgroupManager;

  test("opens from runc's state.json cgroup_paths as v1", async () => {
    const state = JSON.parse(readFileSync(join(root, id, "state.json"), "utf8")) as { cgroup_paths: Record<string, string>; init_process_pid: number };
    expect(state.cgroup_paths.memory).toBe(`/sys/fs/cgroup/memory${cgroupsPath}`);
    cg = await openCgroup({ runcCgroupPaths: state.cgroup_paths });
    expect(cg.version).toBe(1);
    expect(await cg.pids()).toEqual([state.init_process_pid]);
    // The same cgroup through the spec's cgroupsPath.
    const fromSpec = await openCgroup({ cgroupsPath });
    expect(await fromSpec.pids()).toEqual([state.init_process_pid]);
  });

  test("cryo's freeze is runc's pause, and thaw its resume", async () => {
    expect(await runcStatus()).toBe("running");
    await cg.freeze();
    expect(await runcStatus()).toBe("paused");
    await cg.thaw();
    expect(await runcStatus()).toBe("running");
  });

  test("stats see runc's limit and the container's work; update changes what runc set", async () => {
    const stats = await waitFor(
      async () => {
        const s = await cg.stats();
        return s.version === 1 && (s.metrics.cpu?.usage?.total ?? 0n) > 0n ? s : undefined;
      },
      { what: "cpu usage", timeoutMs: 10_000 },
    );
    if (stats.version !== 1) throw new Error("expected v1");
    expect(stats.metrics.memory?.usage?.limit).toBe(64n * 1024n * 1024n);
    expect(stats.metrics.pids?.current).toBe(1n);
    await cg.update(parseLinuxResources({ memory: { limit: 128 * 1024 * 1024 }, pids: { limit: 10 } }));
    if (cg.location.version !== 1) throw new Error("expected v1");
    expect(readFileSync(join(cg.location.paths.memory!, "memory.limit_in_bytes"), "utf8").trim()).toBe(String(128 * 1024 * 1024));
    expect(readFileSync(join(cg.location.paths.pids!, "pids.max"), "utf8").trim()).toBe("10");
  });

  test("after runc deletes the container, its cgroup directories are gone", async () => {
    if (cg.location.version !== 1) throw new Error("expected v1");
    const dirs = Object.values(cg.location.paths);
    expect((await runc("kill", id, "KILL")).code).toBe(0);
    await waitFor(async () => (await runcStatus()) === "stopped", { what: "container stopped" });
    expect((await runc("delete", id)).code).toBe(0);
    created = false;
    for (const d of dirs) expect(existsSync(d)).toBe(false);
  });
});
