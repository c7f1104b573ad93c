/**
 * The checkpoint hook sees the container's image, read by the shim through containerd's gRPC API, and
 * the image is recorded in the checkpoint's metadata for the restore hook (issue 5). checkpoint-defaults
 * is configured with `tcp_established_images = "localhost/cryo-test"` and nothing else marks the
 * container stateful (no annotation, no config default, ctr does not ask for open TCP): the checkpoint
 * of a container holding a TCP connection succeeds with tcpEstablished recorded, which only happens when
 * the plugin saw the image name; cryo-checkpoint.json records the image (name and the digest `ctr images
 * ls` shows), and the restore (whose hook gets that image) brings the same connection back.
 * The shim is build/bin's (setup builds it from the current source).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, readContainerFile, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd, buildPlugins, checkpointMetadata } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const root = join(import.meta.dir, "../..");
let pc: PrivateContainerd;
let dir: string;
let config: string;
const images: string[] = [];

beforeAll(async () => {
  buildPlugins();
  dir = mkdtempSync(join(tmpdir(), "cryo-plugins-image-ckpt-"));
  config = join(dir, "config.toml");
  writeFileSync(
    config,
    `[[plugins]]\nname = "checkpoint-defaults"\npath = "${join(root, "build/plugins/checkpoint-defaults.wasm")}"\nhooks = ["checkpoint", "restore"]\nconfig = { tcp_established_images = "localhost/cryo-test" }\n`,
  );
  pc = await startPrivateContainerd({ namespace: uniqueId("plugimgck") });
  await ensureTestImage(pc);
}, 300_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.ctr(["images", "rm", "--sync", testImage]);
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

async function status(id: string): Promise<string | undefined> {
  const out = await pc.ctrOk(["task", "ls"]);
  return out
    .split("\n")
    .find((l) => l.split(/\s+/)[0] === id)
    ?.trim()
    .split(/\s+/)[2];
}

async function remove(id: string): Promise<void> {
  if ((await status(id)) !== undefined) {
    await pc.ctr(["task", "kill", "-s", "KILL", id]);
    await waitFor(async () => (await status(id)) === "STOPPED", { what: `${id} stopped` });
    await pc.ctrOk(["task", "rm", id]);
  }
  await pc.ctr(["containers", "rm", id]);
}

/** "<count> ok" of tcp-client's file, or undefined (tcp-client writes "error ..." and exits when its connection breaks). */
function tcpCount(id: string): number | undefined {
  const m = /^(\d+) ok$/.exec(readContainerFile(pc, id, "/tmp/tcp") ?? "");
  return m ? Number(m[1]) : undefined;
}

/** The digest `ctr images ls` shows for ref. */
async function listedDigest(ref: string): Promise<string | undefined> {
  const line = (await pc.ctrOk(["images", "ls"])).split("\n").find((l) => l.split(/\s+/)[0] === ref);
  return line?.split(/\s+/).find((w) => w.startsWith("sha256:"));
}

interface Recorded {
  containerId: string;
  options: { tcpEstablished: boolean };
  spec: { annotations?: Record<string, string> };
  image?: { name: string; digest?: string; labels: Record<string, string>; config?: Record<string, unknown> };
}

/** cryo-checkpoint.json out of the checkpoint image's CRIU tar in containerd's content store. */
function recordedMetadata(ref: string): Promise<Recorded> {
  return checkpointMetadata<Recorded>(pc, ref);
}

test("checkpoint-defaults turns tcp-established on by the image name alone; the image is recorded and the connection survives a restore", async () => {
  const id = uniqueId("byimage");
  const restored = uniqueId("restored");
  await pc.ctrOk(
    ["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", config, testImage, id, "sh", "-c", "/bin/tcp-echo 7000 & sleep 0.3; exec /bin/tcp-client 127.0.0.1 7000 /tmp/tcp"],
    { timeoutMs: 60_000 },
  );
  let removed = false;
  try {
    await waitFor(() => (tcpCount(id) ?? 0) >= 5, { what: `${id}: tcp-client talking`, timeoutMs: 60_000 });
    const ref = `localhost/checkpoint/${id}:1`;
    images.push(ref);
    // Read before the dump: the original goes on counting after a leave-running dump, the restored one starts at the dumped count.
    const before = tcpCount(id)!;
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    const meta = await recordedMetadata(ref);
    expect(meta.containerId).toBe(id);
    expect(meta.options.tcpEstablished).toBe(true);
    // Nothing but the image name made the container stateful.
    const annotations = meta.spec.annotations ?? {};
    expect(annotations["policy.cryo.dev/stateful"]).toBeUndefined();
    expect(annotations["io.kubernetes.cri.image-name"]).toBeUndefined();
    expect(Object.keys(annotations).filter((k) => k.startsWith("cryo.checkpoint/"))).toEqual([]);
    // The image the checkpoint hook saw is in the metadata, as containerd lists it.
    expect(meta.image?.name).toBe(testImage);
    expect(meta.image?.digest).toBe((await listedDigest(testImage))!);
    expect(meta.image?.config).toBeDefined();

    await remove(id);
    removed = true;
    const r = await pc.ctr(["containers", "restore", "--live", restored, ref], { timeoutMs: 120_000 });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    try {
      const first = await waitFor(() => tcpCount(restored), { what: "restored tcp-client writing" });
      expect(first).toBeGreaterThanOrEqual(before);
      await waitFor(() => (tcpCount(restored) ?? 0) >= first + 10, { what: "ten more round trips on the restored connection" });
      expect(readContainerFile(pc, restored, "/tmp/tcp")).not.toContain("error");
      expect(await status(restored)).toBe("RUNNING");
    } finally {
      await remove(restored);
    }
  } finally {
    if (!removed) await remove(id);
  }
}, 300_000);
