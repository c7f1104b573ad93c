/**
 * cryo's config file through ctr and the cryo shim against a private containerd: checkpoint defaults
 * from the file reach CRIU (recorded in the checkpoint image's cryo-checkpoint.json, and the page
 * images are compressed), a container annotation overrides them, the runtime options' config path
 * wins over CRYO_CONFIG, and a broken file fails Create with one clear error naming the file and field.
 *
 * CRYO_CONFIG is set on the containerd process (its shims inherit containerd's environment); the
 * runtime options' config path comes from `ctr run --runtime-config-path`. The shim is build/bin's
 * (setup builds it from the current source).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, readCounter, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd, taskStatus, removeContainer, checkpointCriuTar, checkpointMetadata, criuTarEntries, ctrErrorHasCode, taskPid } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let dir: string;
let envConfig: string;
let pathConfig: string;
let badConfig: string;
const images: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cryo-config-ctr-"));
  envConfig = join(dir, "env-config.toml");
  writeFileSync(envConfig, '[checkpoint]\ntcp_established = true\ncompression = "zstd"\n');
  pathConfig = join(dir, "path-config.json");
  writeFileSync(pathConfig, JSON.stringify({ checkpoint: { compression: "zstd", compression_level: 5 } }));
  badConfig = join(dir, "bad-config.toml");
  writeFileSync(badConfig, '[checkpoint]\ncompression = "lz4"\n');
  pc = await startPrivateContainerd({ namespace: uniqueId("config"), env: { CRYO_CONFIG: envConfig } });
  await ensureTestImage(pc);
}, 300_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const remove = (id: string): Promise<void> => removeContainer(pc, id, { ignoreRmFailure: true });

async function run(id: string, flags: string[] = []): Promise<void> {
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, ...flags, testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => readCounter(pc, id), { what: `${id} counting`, timeoutMs: 60_000 });
}

interface Recorded {
  options: { tcpEstablished: boolean; compression: string; compressionLevel: number; fileLocks: boolean };
  compressed: false | { algorithm: string; level: number };
  containerId: string;
}

/** Checkpoints with `ctr containers checkpoint --task` and reads cryo-checkpoint.json out of the image's CRIU tar in the content store. */
async function checkpointAndRead(id: string): Promise<{ ref: string; meta: Recorded; files: string[] }> {
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  const files = criuTarEntries(await checkpointCriuTar(pc, ref));
  return { ref, meta: await checkpointMetadata<Recorded>(pc, ref), files };
}

test("checkpoint defaults from the config file (CRYO_CONFIG on containerd) reach CRIU: tcp-established and zstd page images", async () => {
  const id = uniqueId("cfgenv");
  await run(id);
  const { ref, meta, files } = await checkpointAndRead(id);
  expect(meta.containerId).toBe(id);
  expect(meta.options.tcpEstablished).toBe(true);
  expect(meta.options.compression).toBe("zstd");
  expect(meta.compressed).not.toBe(false);
  expect(files.some((f) => /pages-\d+\.img\.zst$/.test(f))).toBe(true);
  // The compressed checkpoint made under the config restores and keeps counting.
  const at = readCounter(pc, id)!;
  await remove(id);
  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(await waitFor(() => { const n = readCounter(pc, id); return n !== undefined && n > at ? n : undefined; }, { what: "restored counter moving on" })).toBeGreaterThan(at);
  await remove(id);
}, 240_000);

test("a container's cryo.checkpoint/* annotations override the config file's defaults", async () => {
  const id = uniqueId("cfgann");
  await run(id, ["--annotation", "cryo.checkpoint/tcp-established=false", "--annotation", "cryo.checkpoint/compression=none"]);
  const { meta, files } = await checkpointAndRead(id);
  expect(meta.options.tcpEstablished).toBe(false);
  expect(meta.options.compression).toBe("none");
  expect(meta.compressed).toBe(false);
  expect(files.some((f) => /pages-\d+\.img$/.test(f))).toBe(true);
  expect(files.some((f) => f.endsWith(".img.zst"))).toBe(false);
  await remove(id);
}, 180_000);

test("a cryo.checkpoint/* annotation with an unknown key or a bad value fails `ctr run` at Create, naming it; nothing is left running", async () => {
  for (const [annotation, message] of [
    ["cryo.checkpoint/tcp-establishd=true", "annotation cryo.checkpoint/tcp-establishd: invalid argument: unknown key; known: exit, leave-running, tcp-established"],
    ["cryo.checkpoint/compression=lz4", 'annotation cryo.checkpoint/compression="lz4": invalid argument: want none or zstd'],
    ["cryo.checkpoint/mntns-compat-mode=true", "annotation cryo.checkpoint/mntns-compat-mode: invalid argument: CRIU's older mount engine is a restore setting of the restoring host ([restore] mntns_compat_mode"],
    // Well-formed, but out of range: refused with the range, naming the annotation (it was refused only at the checkpoint).
    ["cryo.checkpoint/compression-level=30", 'checkpoint options: invalid argument: compressionLevel (annotation cryo.checkpoint/compression-level="30"): Too big: expected number to be <=22'],
    // Relative: it was taken from the shim daemon's working directory, and the dump made /relwp on the host.
    ["cryo.checkpoint/work-path=relwp", 'annotation cryo.checkpoint/work-path="relwp": invalid argument: want an absolute path'],
  ] as const) {
    const id = uniqueId("cfgann");
    const r = await pc.ctr(["run", "-d", "--runtime", RUNTIME, "--annotation", annotation, testImage, id, "sleep", "100"], { timeoutMs: 60_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(message);
    expect(await taskStatus(pc, id)).toBeUndefined();
    await pc.ctrOk(["containers", "rm", id]);
  }
}, 120_000);

test("checkpoint options that cannot go together (the config's [checkpoint] and an annotation) fail `ctr run` at Create, naming where each was set", async () => {
  const lazy = join(dir, "lazy-config.toml");
  writeFileSync(lazy, "[checkpoint]\nlazy_pages = true\n");
  const id = uniqueId("cfgclash");
  const r = await pc.ctr(["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", lazy, "--annotation", "cryo.checkpoint/pre-dump=true", testImage, id, "sleep", "100"], { timeoutMs: 60_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain(`checkpoint options: invalid argument: pre-dump cannot be combined with lazy pages (preDump from annotation cryo.checkpoint/pre-dump="true"; lazyPages from config ${lazy} [checkpoint])`);
  expect(await taskStatus(pc, id)).toBeUndefined();
  await pc.ctrOk(["containers", "rm", id]);
  // The same config alone is fine.
  await run(id, ["--runtime-config-path", lazy]);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await remove(id);
}, 120_000);

test("the runtime options' config path (ctr run --runtime-config-path) wins over CRYO_CONFIG", async () => {
  const id = uniqueId("cfgpath");
  await run(id, ["--runtime-config-path", pathConfig]);
  const { meta } = await checkpointAndRead(id);
  expect(meta.options.tcpEstablished).toBe(false);
  expect(meta.options.compression).toBe("zstd");
  expect(meta.options.compressionLevel).toBe(5);
  expect(meta.compressed).toEqual({ algorithm: "zstd", level: 5 });
  await remove(id);
}, 180_000);

test("[restore] manage_cgroups_mode = \"full\": CRIU writes the checkpointed cgroup's properties over the spec's (soft, the default, keeps the spec's)", async () => {
  const full = join(dir, "full-config.toml");
  writeFileSync(full, '[restore]\nmanage_cgroups_mode = "full"\n');
  const limit = (id: string) => Number(readFileSync(`/sys/fs/cgroup/memory/${pc.namespace}/${id}/memory.limit_in_bytes`, "utf8"));
  const MiB = 1024 * 1024;
  for (const [mode, flags, expected] of [
    ["full", ["--runtime-config-path", full], 64 * MiB],
    ["soft", [], 48 * MiB],
  ] as const) {
    const id = uniqueId(`cg${mode}`);
    await run(id, [...flags, "--memory-limit", String(48 * MiB)]);
    // The cgroup's limit changed after the start (as the task API's Update would; ctr 1.6 has no `task update`): the
    // spec, which the restore's cgroup gets first, still says 48 MiB.
    writeFileSync(`/sys/fs/cgroup/memory/${pc.namespace}/${id}/memory.limit_in_bytes`, String(64 * MiB));
    expect(limit(id)).toBe(64 * MiB);
    const { ref } = await checkpointAndRead(id);
    await remove(id);
    const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect([r.exitCode, r.stderr]).toEqual([0, ""]);
    expect([mode, limit(id)]).toEqual([mode, expected]);
    await remove(id);
  }
}, 240_000);

test("[restore] manage_cgroups_mode = \"strict\" fails the restore with FAILED_PRECONDITION naming the setting before CRIU runs (CRIU's strict mode refuses the cgroups the restore makes); nothing is made", async () => {
  const strict = join(dir, "strict-config.toml");
  writeFileSync(strict, '[restore]\nmanage_cgroups_mode = "strict"\n');
  const id = uniqueId("cgstrict");
  await run(id, ["--runtime-config-path", strict]);
  const { ref } = await checkpointAndRead(id);
  await remove(id);
  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.exitCode).not.toBe(0);
  expect(ctrErrorHasCode(r.stderr, "failed precondition")).toBe(true);
  expect(r.stderr).toContain(`restore container ${id}`);
  expect(r.stderr).toContain('manage_cgroups_mode "strict" (this host\'s [restore] config or a restore plugin)');
  // Before: CRIU's "Abort restore of existing cgroups", from its log.
  expect(r.stderr).not.toContain("Abort restore");
  expect(await taskStatus(pc, id)).toBe("CREATED");
  expect(await taskPid(pc, id)).toBeUndefined();
  for (const ctl of ["memory", "pids", "freezer", "cpu,cpuacct"]) expect(existsSync(`/sys/fs/cgroup/${ctl}/${pc.namespace}/${id}`)).toBe(false);
  expect(existsSync(join("/run/containerd/runc", pc.namespace, id))).toBe(false);
  await pc.ctrOk(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
}, 180_000);

test("a broken config fails Create with one clear error naming the file and the field; nothing is left running", async () => {
  const id = uniqueId("cfgbad");
  for (let i = 0; i < 2; i++) {
    const r = await pc.ctr(["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", badConfig, testImage, `${id}-${i}`, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(`config ${badConfig}: invalid argument: checkpoint.compression:`);
    expect(await taskStatus(pc, `${id}-${i}`)).toBeUndefined();
    await pc.ctr(["containers", "rm", `${id}-${i}`]);
  }
  // The same containerd still runs containers with a good config.
  const ok = uniqueId("cfgok");
  await run(ok);
  expect(await taskStatus(pc, ok)).toBe("RUNNING");
  await remove(ok);
  // The shim logged the error (containerd's log carries shim output), naming file and field.
  await waitFor(() => readFileSync(pc.layout.log, "utf8").includes(`config error: config ${badConfig}: invalid argument: checkpoint.compression:`) || undefined, { what: "the shim's config error in containerd's log" });
}, 180_000);

test("a broken CRYO_CONFIG is reported at shim start, once, and every Create fails with that error", async () => {
  const bad = join(dir, "bad-env.toml");
  writeFileSync(bad, '[restore]\nveth_pairs = [{ inside = "eth0" }]\n');
  const other = await startPrivateContainerd({ namespace: uniqueId("cfgstart"), env: { CRYO_CONFIG: bad } });
  try {
    await ensureTestImage(other);
    const id = uniqueId("cfgstart");
    const r = await other.ctr(["run", "-d", "--runtime", RUNTIME, testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
    expect(r.exitCode).not.toBe(0);
    const want = `config ${bad}: invalid argument: restore.veth_pairs[0].outside:`;
    expect(r.stderr).toContain(want);
    await other.ctr(["containers", "rm", id]);
    const lines = await waitFor(() => {
      const found = readFileSync(other.layout.log, "utf8").split("\n").filter((l) => l.includes(`config error: ${want}`));
      return found.length > 0 ? found : undefined;
    }, { what: "the config error in the shim's log" });
    // One daemon served that Create: checked at start and again at Create, reported once.
    expect(lines).toHaveLength(1);
  } finally {
    await other.stop();
  }
}, 240_000);
