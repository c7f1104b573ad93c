/**
 * Bind mounts across a checkpoint and restore through the cryo shim (ctr against a private
 * containerd): a bind mount nested in another one (/data and /data/cache) comes back even when its
 * mount point is gone from the outer bind's source, as on another host — the restore makes it
 * inside the source, as runc's own restore does, and leaves no mount behind.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, removeContainer, startPrivateContainerd, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let dir: string;
const images: string[] = [];

beforeAll(async () => {
  pc = await startPrivateContainerd({ namespace: uniqueId("ckmnt") });
  await ensureTestImage(pc);
  dir = mkdtempSync(join(tmpdir(), "cryo-ckpt-mounts-"));
}, 120_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

function count(file: string): number {
  try {
    return Number(readFileSync(file, "utf8").trim()) || 0;
  } catch {
    return 0;
  }
}

function mountsUnder(path: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.includes(path));
}

test("a bind mount nested in another comes back after its mount point left the outer source", async () => {
  const id = uniqueId("nest");
  const data = join(dir, "data");
  const cache = join(dir, "cache");
  mkdirSync(data);
  mkdirSync(cache);
  await pc.ctrOk(
    [
      "run", "-d", "--runtime", RUNTIME,
      "--mount", `type=bind,src=${data},dst=/data,options=rbind:rw`,
      "--mount", `type=bind,src=${cache},dst=/data/cache,options=rbind:rw`,
      testImage, id, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /data/cache/n; sleep 0.05; done",
    ],
    { timeoutMs: 60_000 },
  );
  const counter = join(cache, "n");
  await waitFor(() => count(counter) >= 5, { what: "counter in the nested bind" });
  // runc made the nested mount point inside the outer bind's source when it created the container.
  expect(existsSync(join(data, "cache"))).toBe(true);

  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await removeContainer(pc, id, { stopped: "not-running" });
  // As on another host: the outer source lacks the nested mount point.
  rmdirSync(join(data, "cache"));
  const atRestore = count(counter);

  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await waitFor(() => count(counter) > atRestore + 3, { what: "restored counter writing into the nested bind" });
  expect(existsSync(join(data, "cache"))).toBe(true);
  // The restore's temporary binds are gone: only the container's own mounts name our dir.
  const during = mountsUnder(dir).length;
  await removeContainer(pc, id, { stopped: "not-running" });
  expect(mountsUnder(dir)).toEqual([]);
  expect(during).toBe(0); // the container's binds live in its own mount namespace, not ours
}, 180_000);
