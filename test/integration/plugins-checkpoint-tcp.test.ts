/**
 * The checkpoint-defaults example plugin changes what CRIU is asked to do, through ctr and the cryo
 * shim against a private containerd. A container annotated `policy.cryo.dev/stateful=true` (the
 * plugin's own policy knob — not one of cryo's `cryo.checkpoint/*` annotations) holds a TCP
 * connection between tcp-client and tcp-echo inside it:
 * - with the plugin configured (`ctr run --runtime-config-path`), the checkpoint succeeds, its
 *   recorded options (cryo-checkpoint.json in the image's CRIU tar) have tcpEstablished although
 *   nothing else asked for it, and after a restore under a new name the same connection keeps working;
 * - with the plugin configured but no stateful annotation, and with no plugin at all, CRIU refuses
 *   the connected socket and the container keeps running.
 * The shim is build/bin's (setup builds it from the current source).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, readContainerFile, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd, taskStatus, removeContainer, buildPlugins, checkpointMetadata } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const STATEFUL = "policy.cryo.dev/stateful=true";
const root = join(import.meta.dir, "../..");
let pc: PrivateContainerd;
let dir: string;
let config: string;
const images: string[] = [];

beforeAll(async () => {
  buildPlugins();
  dir = mkdtempSync(join(tmpdir(), "cryo-plugins-tcp-"));
  config = join(dir, "config.toml");
  // The plugin's defaults: tcp_established_annotation = "policy.cryo.dev/stateful", max_memory_gib = "8".
  writeFileSync(config, `[[plugins]]\nname = "checkpoint-defaults"\npath = "${join(root, "build/plugins/checkpoint-defaults.wasm")}"\nhooks = ["checkpoint", "restore"]\n`);
  // No CRYO_CONFIG for containerd and no /etc/cryo: a container run without --runtime-config-path has no plugins.
  pc = await startPrivateContainerd({ namespace: uniqueId("plugtcp") });
  await ensureTestImage(pc);
}, 300_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.ctr(["images", "rm", "--sync", testImage]);
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const remove = (id: string): Promise<void> => removeContainer(pc, id, { ignoreRmFailure: true });

/** "<count> ok" of tcp-client's file, or undefined (tcp-client writes "error ..." and exits when its connection breaks). */
function tcpCount(id: string): number | undefined {
  const m = /^(\d+) ok$/.exec(readContainerFile(pc, id, "/tmp/tcp") ?? "");
  return m ? Number(m[1]) : undefined;
}

/** Runs tcp-echo and a tcp-client connected to it in one container; waits until they talk. */
async function runTcpPair(id: string, flags: string[]): Promise<void> {
  await pc.ctrOk(
    ["run", "-d", "--runtime", RUNTIME, ...flags, testImage, id, "sh", "-c", "/bin/tcp-echo 7000 & sleep 0.3; exec /bin/tcp-client 127.0.0.1 7000 /tmp/tcp"],
    { timeoutMs: 60_000 },
  );
  await waitFor(() => (tcpCount(id) ?? 0) >= 5, { what: `${id}: tcp-client talking`, timeoutMs: 60_000 });
}

interface Recorded {
  containerId: string;
  options: { tcpEstablished: boolean };
  spec: { annotations?: Record<string, string> };
}

/** cryo-checkpoint.json out of the checkpoint image's CRIU tar in containerd's content store. */
function recordedMetadata(ref: string): Promise<Recorded> {
  return checkpointMetadata<Recorded>(pc, ref);
}

/** The container's freezer state (the dump froze it; a failed dump must thaw it). */
function freezerState(id: string): string {
  return readFileSync(`/sys/fs/cgroup/freezer/${pc.namespace}/${id}/freezer.state`, "utf8").trim();
}

/** Checkpoints id expecting CRIU to refuse the connected socket; the container must keep running and talking. */
async function expectRefusedAndRunning(id: string): Promise<void> {
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  const r = await pc.ctr(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain("Connected TCP socket, consider using --tcp-established option");
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  expect(freezerState(id)).toBe("THAWED");
  const at = tcpCount(id)!;
  await waitFor(() => (tcpCount(id) ?? 0) >= at + 5, { what: `${id}: tcp-client still talking after the refused checkpoint` });
  expect(readContainerFile(pc, id, "/tmp/tcp")).not.toContain("error");
}

test("with checkpoint-defaults configured, a stateful container's TCP connection is dumped and survives a restore under a new name", async () => {
  const id = uniqueId("stateful");
  const restored = uniqueId("restored");
  await runTcpPair(id, ["--runtime-config-path", config, "--annotation", STATEFUL]);
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  // Read before the dump: the original goes on counting after a leave-running dump, the restored one starts at the dumped count.
  const before = tcpCount(id)!;
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  const meta = await recordedMetadata(ref);
  expect(meta.containerId).toBe(id);
  expect(meta.options.tcpEstablished).toBe(true);
  // Only the plugin asked: the container carries no cryo.checkpoint/* annotation, there is no config
  // default, and ctr's checkpoint request does not set open_tcp.
  const annotations = meta.spec.annotations ?? {};
  expect(annotations["policy.cryo.dev/stateful"]).toBe("true");
  expect(Object.keys(annotations).filter((k) => k.startsWith("cryo.checkpoint/"))).toEqual([]);
  await remove(id);
  try {
    const r = await pc.ctr(["containers", "restore", "--live", restored, ref], { timeoutMs: 120_000 });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    // The restored tcp-client continues its count (same process, same connection) and keeps going.
    const first = await waitFor(() => tcpCount(restored), { what: "restored tcp-client writing" });
    expect(first).toBeGreaterThanOrEqual(before);
    await waitFor(() => (tcpCount(restored) ?? 0) >= first + 10, { what: "ten more round trips on the restored connection" });
    expect(readContainerFile(pc, restored, "/tmp/tcp")).not.toContain("error");
    expect(await taskStatus(pc, restored)).toBe("RUNNING");
  } finally {
    await remove(restored);
  }
}, 240_000);

test("with checkpoint-defaults configured, a container that is not stateful keeps CRIU's refusal and keeps running", async () => {
  const id = uniqueId("plain");
  await runTcpPair(id, ["--runtime-config-path", config]);
  try {
    await expectRefusedAndRunning(id);
  } finally {
    await remove(id);
  }
}, 180_000);

test("without the plugin, the stateful annotation means nothing to cryo: CRIU refuses and the container keeps running", async () => {
  const id = uniqueId("noplug");
  await runTcpPair(id, ["--annotation", STATEFUL]);
  try {
    await expectRefusedAndRunning(id);
  } finally {
    await remove(id);
  }
}, 180_000);
