/**
 * containerd's native snapshotter (`ctr run --snapshotter native`: what a host without overlayfs uses) gives the shim a
 * bind mount of a plain directory as the rootfs instead of an overlay. The lifecycle and the checkpoint flow with the
 * rw layer (`--rw`: containerd diffs the snapshot against the image's) work on it as on overlayfs, and nothing is left.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ensureTestImage, readContainerFile, readCounter, removeContainer, startPrivateContainerd, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const isRoot = process.getuid?.() === 0;
let pc: PrivateContainerd;
const images: string[] = [];

beforeAll(async () => {
  if (!isRoot) return;
  pc = await startPrivateContainerd({ namespace: uniqueId("native") });
  await ensureTestImage(pc);
}, 120_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
}, 120_000);

const mountsNaming = (text: string) =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.includes(text));

/** The native snapshotter's active snapshots (the committed image layers are not counted). */
async function activeSnapshots(): Promise<string[]> {
  const out = await pc.ctrOk(["snapshots", "--snapshotter", "native", "ls"]);
  return out
    .split("\n")
    .slice(1)
    .filter((l) => /\bActive\b/.test(l))
    .map((l) => l.trim().split(/\s+/)[0]!);
}

test.skipIf(!isRoot)("ctr run --rm on the native snapshotter: the rootfs is a plain directory, both streams and the exit code come back", async () => {
  const id = uniqueId("nat-rm");
  const r = await pc.ctr(["run", "--rm", "--snapshotter", "native", "--runtime", RUNTIME, testImage, id, "sh", "-c", "echo out; echo err >&2; grep ' / ' /proc/mounts | cut -d' ' -f3; exit 3"], { timeoutMs: 60_000 });
  // The root's file system is the one the containerd's directory is on (ext4 here), not an overlay.
  const [out, rootFs] = r.stdout.split("\n");
  expect({ code: r.exitCode, out, err: r.stderr }).toEqual({ code: 3, out: "out", err: "err\n" });
  expect(rootFs).toMatch(/^[a-z0-9]+$/);
  expect(rootFs).not.toBe("overlay");
  expect(mountsNaming(`/${id}/`)).toEqual([]);
  expect(await activeSnapshots()).toEqual([]);
}, 120_000);

test.skipIf(!isRoot)("a container on the native snapshotter checkpointed with --rw and restored with --rw keeps its written files and its memory", async () => {
  const id = uniqueId("nat-ck");
  await pc.ctrOk(["run", "-d", "--snapshotter", "native", "--runtime", RUNTIME, testImage, id, "/bin/memhog", "16", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => (readCounter(pc, id) ?? 0) >= 3, { what: "counter at 3" });
  await pc.ctrOk(["task", "exec", "--exec-id", "w", id, "sh", "-c", "echo written > /written"], { timeoutMs: 60_000 });
  const ref = `localhost/native/${id}:1`;
  images.push(ref);
  const atCheckpoint = readCounter(pc, id)!;
  await pc.ctrOk(["containers", "checkpoint", "--task", "--rw", id, ref], { timeoutMs: 120_000 });
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await removeContainer(pc, id, { stopped: "not-running" });
  expect(await activeSnapshots()).toEqual([]);

  const r = await pc.ctr(["containers", "restore", "--live", "--rw", id, ref], { timeoutMs: 120_000 });
  expect({ code: r.exitCode, err: r.stderr }).toEqual({ code: 0, err: "" });
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  expect(readContainerFile(pc, id, "/written")).toBe("written");
  // The restored memhog counts on from the dump (at least the value read before it) and finds its 16 MiB intact.
  await waitFor(() => (readCounter(pc, id) ?? 0) > atCheckpoint, { what: "the restored counter to go on" });
  const verify = await pc.ctrOk(["task", "exec", "--exec-id", "v", id, "sh", "-c", "rm -f /tmp/counter.verify; kill -USR1 1; while [ ! -s /tmp/counter.verify ]; do sleep 0.05; done; cut -d' ' -f1 /tmp/counter.verify"], { timeoutMs: 60_000 });
  expect(verify.trim()).toBe("ok");

  await removeContainer(pc, id, { stopped: "not-running" });
  expect(mountsNaming(`/${id}/`)).toEqual([]);
  expect(await activeSnapshots()).toEqual([]);
}, 180_000);
