/**
 * Restore admission by the checkpoint's image, through ctr and the cryo shim: the restore hook's input
 * carries the image the checkpoint recorded (docs/plugins.md), and the test plugin restore-image
 * (plugins/testdata) allows only images starting with `localhost/cryo-test`. Two counters run from the
 * same image content under two names (the test image, and a tag of it outside the list), are
 * checkpointed and removed; `ctr containers restore` of the one from the other name fails with the
 * plugin's reason and leaves no container process, cgroup, runc state or CRIU mount (the task stays
 * CREATED with its rootfs mounted, as after any failed restore, until `ctr task rm`, after which
 * no mount is left either); the one from the test
 * image restores and keeps counting. The config reaches the restore through the checkpoint's runtime
 * options (`ctr run --runtime-config-path`).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildPlugins,
  checkpointMetadata,
  ensureTestImage,
  readCounter,
  removeContainer,
  startPrivateContainerd,
  taskPid,
  taskStatus,
  testImage,
  uniqueId,
  waitFor,
  type PrivateContainerd,
} from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const RUNC_ROOT = "/run/containerd/runc";
let pc: PrivateContainerd;
let ns: string;
let dir: string;
let config: string;
let otherImage: string;
const images: string[] = [];

beforeAll(async () => {
  const plugins = buildPlugins();
  dir = mkdtempSync(join(tmpdir(), "cryo-restore-image-"));
  config = join(dir, "config.toml");
  writeFileSync(config, `[[plugins]]\nname = "restore-image"\npath = "${join(plugins, "restore-image.wasm")}"\nhooks = ["restore"]\nconfig = { images = "localhost/cryo-test:,localhost/cryo-test@" }\n`);
  ns = uniqueId("rstimg");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
  otherImage = `localhost/cryo-elsewhere/${uniqueId("img")}:1`;
  await pc.ctrOk(["images", "tag", testImage, otherImage]);
  images.push(otherImage);
}, 300_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const remove = (id: string): Promise<void> => removeContainer(pc, id, { stopped: "not-running" });

/** Runs a counter from `image`, checkpoints it into a new image and removes it; returns the checkpoint ref and the count read just before the dump. */
async function checkpointCounter(id: string, image: string): Promise<{ ref: string; at: number }> {
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", config, image, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => readCounter(pc, id), { what: `${id}: counter` });
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  // Read before the dump: the original goes on counting after a leave-running dump, the restored one starts at the dumped count.
  const at = readCounter(pc, id)!;
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await remove(id);
  return { ref, at };
}

/** Pids of host processes in the container's cgroup (any v1 hierarchy or the unified one). */
function processesIn(id: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cgroup`, "utf8").includes(`/${ns}/${id}\n`)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Everything of container `id` left on the host: processes, cgroups, runc state, mounts. */
function traces(id: string): string[] {
  const found: string[] = processesIn(id).map((pid) => `process ${pid}`);
  for (const ctl of readdirSync("/sys/fs/cgroup")) if (existsSync(`/sys/fs/cgroup/${ctl}/${ns}/${id}`)) found.push(`cgroup ${ctl}`);
  if (existsSync(join(RUNC_ROOT, ns, id))) found.push("runc state");
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const point = line.split(" ")[4];
    // (CRIU's root mount is <runc root>/<namespace>/<id>/criu-root: matched here too.)
    if (point && (point.includes(`/${id}/`) || point.endsWith(`/${id}`))) found.push(`mount ${point}`);
  }
  return found;
}

test("a checkpoint from an image outside the list is refused with the plugin's reason and leaves nothing behind; one from the listed image restores", async () => {
  const deniedId = uniqueId("rdeny");
  const allowedId = uniqueId("rallow");
  const denied = await checkpointCounter(deniedId, otherImage);
  const allowed = await checkpointCounter(allowedId, testImage);
  // The checkpoints recorded the images the containers ran (what the restore hook gets).
  expect((await checkpointMetadata<{ image?: { name: string } }>(pc, denied.ref)).image?.name).toBe(otherImage);
  expect((await checkpointMetadata<{ image?: { name: string } }>(pc, allowed.ref)).image?.name).toBe(testImage);
  expect(traces(deniedId)).toEqual([]);

  const r = await pc.ctr(["containers", "restore", "--live", deniedId, denied.ref], { timeoutMs: 120_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain(
    `restore of container ${deniedId}: denied by plugin restore-image: checkpoint image ${otherImage} is not allowed to restore here (allowed: localhost/cryo-test:, localhost/cryo-test@)`,
  );
  // As after any failed restore: containerd keeps the task CREATED (rootfs mounted, no process) until
  // it is removed; nothing ran, so no process, cgroup, runc state or CRIU mount exists.
  expect(await taskStatus(pc, deniedId)).toBe("CREATED");
  expect(await taskPid(pc, deniedId)).toBeUndefined();
  expect(traces(deniedId).filter((t) => !t.endsWith(`/${deniedId}/rootfs`))).toEqual([]);
  await pc.ctrOk(["task", "rm", deniedId]);
  await pc.ctrOk(["containers", "rm", deniedId]);
  expect(traces(deniedId)).toEqual([]);

  const ok = await pc.ctr(["containers", "restore", "--live", allowedId, allowed.ref], { timeoutMs: 120_000 });
  expect(ok.stderr).toBe("");
  expect(ok.exitCode).toBe(0);
  try {
    const first = await waitFor(() => readCounter(pc, allowedId), { what: "restored counter" });
    expect(first).toBeGreaterThanOrEqual(allowed.at);
    await waitFor(() => (readCounter(pc, allowedId) ?? 0) > first, { what: "restored counter advancing" });
    expect(await taskStatus(pc, allowedId)).toBe("RUNNING");
  } finally {
    await remove(allowedId);
  }
  expect(traces(allowedId)).toEqual([]);
}, 300_000);
