// A runc container dumped through cryo's libcriu helper the way runc sets CRIU up, then restored
// into a NEW container (new id, copied rootfs, new cgroups, new stdio pipes).
// Root only: runc 1.1, criu 4.2.1, busybox-static, cgroup v1 hybrid.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCriu, inspectCheckpoint } from "../../src/criu/index.ts";
import {
  containerDumpOpts,
  containerRestorePlan,
  createRestoreMountpoints,
  externalNamespaceInodes,
  maskedFiles,
  prepareRestoreRoot,
  readHostCgroupFacts,
  resolveCheckpointPlan,
  runcContainerFrom,
} from "../../src/checkpoint/index.ts";
import { close, pipe } from "../../src/sys/index.ts";
import { waitFor } from "../harness/index.ts";

const criu = createCriu();
const suffix = Math.random().toString(36).slice(2, 8);
const id = `cryo-criu-${suffix}`;
const newId = `cryo-criu-${suffix}-r`;
const cgParent = `/cryo-criu-test-${suffix}`;
let dir: string;
let runcRoot: string;
const pidsToKill: number[] = [];
const fdsToClose: number[] = [];
const cgroupDirs: string[] = [];

function runc(...args: string[]) {
  const r = Bun.spawnSync(["runc", "--root", runcRoot, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

function count(rootfs: string): number | undefined {
  try {
    const t = readFileSync(join(rootfs, "count"), "utf8").trim();
    return t === "" ? undefined : Number(t);
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Collects what a pipe's read end delivers, in the background. */
function drain(fd: number): { text: () => string } {
  let text = "";
  void (async () => {
    for await (const chunk of Bun.file(fd).stream()) text += new TextDecoder().decode(chunk);
  })().catch(() => {});
  return { text: () => text };
}

function makeBundle(name: string, cgroupsPath: string): string {
  const bundle = join(dir, name);
  const rootfs = join(bundle, "rootfs");
  for (const d of ["bin", "proc", "dev", "sys", "tmp"]) mkdirSync(join(rootfs, d), { recursive: true });
  cpSync("/usr/bin/busybox", join(rootfs, "bin", "busybox"));
  const spec = Bun.spawnSync(["runc", "spec", "--bundle", bundle]);
  if (spec.exitCode !== 0) throw new Error(spec.stderr.toString());
  const config = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
  config.process.terminal = false;
  // Counts into /count (the rootfs, visible from the host) and says every 10th value on stdout.
  config.process.args = ["/bin/busybox", "sh", "-c", "i=0; while true; do echo $i > /count; [ $((i % 10)) = 0 ] && echo $i; i=$((i+1)); /bin/busybox usleep 10000; done"];
  config.root.readonly = false;
  config.linux.cgroupsPath = cgroupsPath;
  writeFileSync(join(bundle, "config.json"), JSON.stringify(config));
  return bundle;
}

beforeAll(() => {
  dir = mkdtempSync("/tmp/cryo-criu-runc-");
  runcRoot = join(dir, "runc-root");
});

afterAll(async () => {
  for (const pid of pidsToKill) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const pid of pidsToKill) await waitFor(() => !alive(pid), { what: `pid ${pid} to exit`, timeoutMs: 10_000, intervalMs: 5 }).catch(() => {});
  runc("delete", "--force", id);
  for (const fd of fdsToClose) close(fd);
  for (const d of cgroupDirs.reverse()) {
    await waitFor(() => {
      if (!existsSync(d)) return true;
      try {
        rmdirSync(d);
        return true;
      } catch {
        return false;
      }
    }, { what: `rmdir ${d}`, timeoutMs: 10_000, intervalMs: 5 }).catch(() => {});
  }
  rmSync(dir, { recursive: true, force: true });
});

setDefaultTimeout(60_000);

describe("runc container through libcriu", () => {
  test("dump a running runc container, restore it as a new container with new cgroups and stdio", async () => {
    const bundle = makeBundle("bundle", `${cgParent}/${id}`);
    const [outR, outW] = pipe();
    const [errR, errW] = pipe();
    fdsToClose.push(outR, errR);
    const run = Bun.spawn(["runc", "--root", runcRoot, "run", "--detach", "--bundle", bundle, id], { stdio: ["ignore", outW, errW] });
    expect(await run.exited).toBe(0);
    close(outW);
    close(errW);
    const oldOut = drain(outR);
    const state = runcContainerFrom(JSON.parse(readFileSync(join(runcRoot, id, "state.json"), "utf8")));
    pidsToKill.push(state.init_process_pid);
    for (const p of Object.values(state.cgroup_paths)) cgroupDirs.push(p);
    expect(state.external_descriptors[1]).toMatch(/^pipe:\[\d+\]$/);
    const rootfs = state.config.rootfs;
    const beforeDump = await waitFor(() => {
      const n = count(rootfs);
      return n !== undefined && n > 10 ? n : undefined;
    }, { what: "container to count", timeoutMs: 10_000, intervalMs: 5 });

    // Dump, the way runc does it: root=rootfs, external mounts, freezer cgroup, orphan pts master.
    const plan = resolveCheckpointPlan({ annotations: { "cryo.checkpoint/exit": "true" } });
    const images = join(dir, "images");
    mkdirSync(images);
    const host = readHostCgroupFacts();
    const dumpOpts = containerDumpOpts({ plan, container: state, imagesDir: images, host, maskedFiles: maskedFiles(state), externalNs: externalNamespaceInodes(state) });
    expect(dumpOpts.freezeCgroup).toBe(state.cgroup_paths.freezer);
    expect(dumpOpts.extMounts).toEqual(expect.arrayContaining([{ key: "/sys/fs/cgroup/memory", value: "/sys/fs/cgroup/memory" }, { key: "/proc/keys", value: "/dev/null" }]));
    const dump = await criu.dump(dumpOpts);
    await waitFor(() => !alive(state.init_process_pid), { what: "container init to be gone", timeoutMs: 10_000, intervalMs: 5 });
    // `echo $i > /count` truncates before it writes: a dump that froze the shell in between leaves the file
    // empty, and the restored shell finishes that write. The value read before the dump bounds it then.
    const leftInFile = count(rootfs);
    const atDump = leftInFile ?? beforeDump;
    expect(dump.stats.dump!.pagesWritten).toBeGreaterThan(0);
    expect(dump.stats.dump!.frozenTimeUs).toBeGreaterThan(0);
    const inspected = await inspectCheckpoint(images);
    expect(inspected.processes[0]!.pid).toBe(1); // pids as seen inside the container's pid namespace
    expect(inspected.processes[0]!.comm).toBe("busybox");
    expect(inspected.problems).toEqual([]);
    expect(runc("state", id).out).toContain('"status": "stopped"');
    expect(runc("delete", id).code).toBe(0);
    await waitFor(() => oldOut.text().length > 0, { what: "old stdout to close", timeoutMs: 10_000, intervalMs: 5 });

    // A new container: copied rootfs, a different id and cgroups, new stdout pipe.
    const newBundle = makeBundle("bundle-new", `${cgParent}/${newId}`);
    rmSync(join(newBundle, "rootfs"), { recursive: true });
    cpSync(rootfs, join(newBundle, "rootfs"), { recursive: true });
    const newRootfs = join(newBundle, "rootfs");
    const newContainer = runcContainerFrom({ ...state, id: newId, config: { ...state.config, rootfs: newRootfs } });
    const cgroupPaths: Record<string, string> = {};
    for (const line of readFileSync("/proc/self/cgroup", "utf8").trim().split("\n")) {
      const [, ctrl = ""] = line.split(":");
      const mount = ctrl === "" ? "/sys/fs/cgroup/unified" : `/sys/fs/cgroup/${ctrl.replace(/^name=/, "")}`;
      const path = join(mount, cgParent, newId);
      mkdirSync(path, { recursive: true });
      cgroupDirs.push(join(mount, cgParent), path);
      if (ctrl === "cpuset") {
        for (const f of ["cpuset.cpus", "cpuset.mems"]) {
          const parent = readFileSync(join(mount, f), "utf8");
          writeFileSync(join(mount, cgParent, f), parent);
          writeFileSync(join(path, f), parent);
        }
      }
      cgroupPaths[ctrl] = path;
    }
    createRestoreMountpoints(newContainer);
    const [newR, newW] = pipe();
    const [newErrR, newErrW] = pipe();
    fdsToClose.push(newR, newErrR);
    const newOut = drain(newR);
    const events: string[] = [];
    let restoredPid: number;
    {
      using root = prepareRestoreRoot(newRootfs, join(dir, "criu-root"));
      const restorePlan = containerRestorePlan({
        plan,
        container: newContainer,
        imagesDir: images,
        criuRoot: root.path,
        host,
        cgroupPaths,
        descriptors: state.external_descriptors,
      });
      expect(restorePlan.stdioKeys.map((k) => k.index)).toEqual([1, 2]);
      expect(restorePlan.opts.extMounts).toEqual(expect.arrayContaining([{ key: "/sys/fs/cgroup/memory", value: cgroupPaths.memory }, { key: "/dev/null", value: "/dev/null" }]));
      const restored = await criu.restore(
        restorePlan.opts,
        {
          joinCgroups: restorePlan.joinCgroups,
          inheritFds: restorePlan.stdioKeys.map((k) => ({ fd: k.index === 1 ? newW : newErrW, key: k.key })),
          onNotify: (e) => void events.push(e.action),
        },
      );
      restoredPid = restored.pid;
      pidsToKill.push(restoredPid);
      expect(restored.stats.restore!.pagesRestored).toBeGreaterThan(0);
    }
    close(newW);
    close(newErrW);
    expect(events).toEqual(expect.arrayContaining(["setup-namespaces", "post-restore"]));

    // The counter goes on in the NEW rootfs, from the dumped value; the old rootfs stays still.
    const resumed = await waitFor(() => {
      const n = count(newRootfs);
      return n !== undefined && n > atDump + 5 ? n : undefined;
    }, { what: "restored container to count on", timeoutMs: 10_000, intervalMs: 5 });
    expect(resumed).toBeGreaterThan(atDump);
    expect(count(rootfs)).toBe(leftInFile);
    // It writes to the new stdout pipe, numbers from after the dump.
    const said = await waitFor(() => {
      const nums = newOut.text().trim().split("\n").filter((s) => s !== "").map(Number);
      return nums.length > 0 ? nums : undefined;
    }, { what: "output on the new stdout", timeoutMs: 10_000, intervalMs: 5 });
    expect(said[0]!).toBeGreaterThanOrEqual(atDump - 10);
    // In the new container's cgroups, v1 and unified.
    const cg = readFileSync(`/proc/${restoredPid}/cgroup`, "utf8");
    expect(cg).toContain(`memory:${cgParent}/${newId}`);
    expect(cg).toContain(`0::${cgParent}/${newId}`);
    expect(readFileSync(join(cgroupPaths.freezer!, "cgroup.procs"), "utf8")).toContain(String(restoredPid));
    // Its own pid namespace: it is pid 1 inside.
    expect(readFileSync(`/proc/${restoredPid}/status`, "utf8")).toMatch(/NSpid:\s+\d+\s+1\n/);
    // The restore root was unmounted.
    expect(readdirSync(dir)).not.toContain("criu-root");
  });
});
