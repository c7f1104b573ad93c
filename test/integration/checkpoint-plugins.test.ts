/**
 * Policy plugins at Checkpoint and Restore through ctr and the cryo shim: the example
 * checkpoint-defaults plugin refuses to checkpoint a container above its memory limit (the container
 * keeps running), allows a small one whose checkpoint then restores; a plugin answering the
 * checkpoint hook with output of the wrong shape fails the checkpoint with an error naming it. The
 * config reaches the shim through `ctr run --runtime-config-path`, and a restore gets it from the
 * checkpoint's runtime options.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildPlugins,
  checkpointCriuTar,
  checkpointMetadata,
  criuTarEntries,
  ensureTestImage,
  readContainerFile,
  readCounter,
  removeContainer,
  startPrivateContainerd,
  taskStatus,
  testImage,
  uniqueId,
  waitFor,
  type PrivateContainerd,
} from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const root = join(import.meta.dir, "../..");
const plugins = join(root, "build/plugins");
let pc: PrivateContainerd;
let ns: string;
let dir: string;
let config: string;
const images: string[] = [];

beforeAll(async () => {
  buildPlugins();
  dir = mkdtempSync(join(tmpdir(), "cryo-ckpt-plugins-"));
  config = join(dir, "config.toml");
  writeFileSync(
    config,
    [
      `[[plugins]]\nname = "checkpoint-defaults"\npath = "${join(plugins, "checkpoint-defaults.wasm")}"\nhooks = ["checkpoint", "restore"]\nconfig = { max_memory_gib = "0.1" }\n`,
      `[[plugins]]\nname = "malformed-json"\npath = "${join(plugins, "malformed-json.wasm")}"\nhooks = ["checkpoint"]\nmatch = { annotations = { "cryo.test/bad" = "malformed-json" } }\n`,
    ].join("\n"),
  );
  ns = uniqueId("ckptplug");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
}, 300_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const remove = (id: string): Promise<void> => removeContainer(pc, id);

async function run(id: string, args: string[], flags: string[] = []): Promise<void> {
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", config, ...flags, testImage, id, ...args], { timeoutMs: 60_000 });
  await waitFor(() => readCounter(pc, id), { what: `${id} counting`, timeoutMs: 60_000 });
}

function freezerState(id: string): string {
  return readFileSync(`/sys/fs/cgroup/freezer/${ns}/${id}/freezer.state`, "utf8").trim();
}

test("checkpoint-defaults refuses a container above its memory limit; the container keeps running", async () => {
  const id = uniqueId("big");
  await run(id, ["/bin/memhog", "256", "/tmp/counter"]);
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  const r = await pc.ctr(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  expect(r.exitCode).not.toBe(0);
  // (the shim answers PERMISSION_DENIED; containerd 1.6's errdefs has no such kind and ctr prints "unknown")
  expect(r.stderr).toContain("denied by plugin checkpoint-defaults: container uses 0.25");
  expect(r.stderr).toContain("above the checkpoint limit of 0.1 GiB");
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  expect(freezerState(id)).toBe("THAWED");
  await remove(id);
}, 180_000);

test("a small container passes the checkpoint and restore hooks and comes back", async () => {
  const id = uniqueId("small");
  await run(id, ["/bin/memhog", "0", "/tmp/counter"]);
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  // Read before the dump: the original goes on counting after a leave-running dump, the restored one starts at the dumped count.
  const at = readCounter(pc, id)!;
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await remove(id);
  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.exitCode).toBe(0);
  expect(await waitFor(() => readCounter(pc, id), { what: "restored counter" })).toBeGreaterThanOrEqual(at);
  await remove(id);
}, 180_000);

test("a plugin answering the checkpoint hook with the wrong shape fails the checkpoint, naming the plugin", async () => {
  const id = uniqueId("bad");
  await run(id, ["/bin/memhog", "0", "/tmp/counter"], ["--annotation", "cryo.test/bad=malformed-json"]);
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  const r = await pc.ctr(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain("malformed-json");
  expect(r.stderr).toContain("checkpoint");
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await remove(id);
}, 180_000);

test("checkpoint-defaults with compress_above_gib: the big container's page images are stored zstd-compressed, the small one's plain; the big one restores intact", async () => {
  const own = join(dir, "compress.toml");
  writeFileSync(own, `[[plugins]]\nname = "checkpoint-defaults"\npath = "${join(plugins, "checkpoint-defaults.wasm")}"\nhooks = ["checkpoint"]\nconfig = { compress_above_gib = "0.03" }\n`);
  const seen: Record<string, { zst: boolean; plain: boolean; compressed: unknown; compression: string }> = {};
  for (const [name, mib] of [["big", "48"], ["small", "0"]] as const) {
    const id = uniqueId(`zp${name}`);
    // memhog's compressible pattern: a quarter of it hashed words (zstd keeps the pages compressed).
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", own, testImage, id, "/bin/memhog", mib, "/tmp/counter", "compressible"], { timeoutMs: 60_000 });
    await waitFor(() => readCounter(pc, id), { what: `${id} filled`, timeoutMs: 60_000 });
    const ref = `localhost/checkpoint/${id}:1`;
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    const entries = criuTarEntries(await checkpointCriuTar(pc, ref));
    const meta = await checkpointMetadata<{ compressed?: unknown; options: { compression: string } }>(pc, ref);
    seen[name] = {
      zst: entries.some((e) => /^pages-\d+\.img\.zst$/.test(e)),
      plain: entries.some((e) => /^pages-\d+\.img$/.test(e)),
      compressed: meta.compressed,
      compression: meta.options.compression,
    };
    await remove(id);
    if (name === "big") {
      const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      await pc.ctrOk(["task", "kill", "-s", "USR1", id]);
      expect(await waitFor(() => readContainerFile(pc, id, "/tmp/counter.verify"), { what: "memhog's verification", timeoutMs: 60_000 })).toMatch(/^ok \d+$/);
      await remove(id);
    }
  }
  expect(seen).toEqual({
    big: { zst: true, plain: false, compressed: { algorithm: "zstd", level: 1 }, compression: "zstd" },
    small: { zst: false, plain: true, compressed: false, compression: "none" },
  });
}, 300_000);
