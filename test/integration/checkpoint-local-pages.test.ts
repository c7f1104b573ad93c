/**
 * Local pages through ctr (`cryo.checkpoint/local-pages=true`, src/checkpoint/local-pages.ts): the page
 * images stay in this host's page store (CRYO_PAGE_STORE on containerd, a temp dir here) and the
 * checkpoint image containerd stores holds none of them; a restore (also a lazy one, also a second one
 * from the same checkpoint) reads them from the store with memory intact; a restore whose store entry is
 * gone fails naming it and leaves nothing; options that need the pages in the image are refused and the
 * task keeps running; the checkpoint-defaults example plugin turns local pages on for big containers only.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { pagesPruneCommand } from "../../src/checkpoint/pages-command.ts";
import { Code } from "../../src/errors.ts";
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
  taskPid,
  taskStatus,
  testImage,
  uniqueId,
  waitFor,
  type PrivateContainerd,
} from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const RUNC_ROOT = "/run/containerd/runc";
const LOCAL = ["--annotation", "cryo.checkpoint/local-pages=true"];
let pc: PrivateContainerd;
let ns: string;
let store: string;
const images: string[] = [];

beforeAll(async () => {
  store = mkdtempSync("/var/tmp/cryo-page-store-");
  ns = uniqueId("lpages");
  pc = await startPrivateContainerd({ namespace: ns, env: { CRYO_PAGE_STORE: store } });
  await ensureTestImage(pc);
}, 120_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
  rmSync(store, { recursive: true, force: true });
}, 120_000);

async function runDetached(id: string, args: string[], flags: string[] = []): Promise<void> {
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, ...flags, testImage, id, ...args], { timeoutMs: 60_000 });
}

const remove = (id: string): Promise<void> => removeContainer(pc, id, { stopped: "not-running" });

interface LocalPagesMeta {
  options: { localPages: boolean };
  localPages?: { dir: string; hostname: string; files: { name: string; bytes: number }[] };
}

/** Page images left in the directories containerd extracted checkpoints into (it never removes them). */
function pagesInExtractDirs(): string[] {
  return readdirSync(pc.layout.tmp)
    .filter((d) => d.startsWith("ctrd-checkpoint"))
    .flatMap((d) => {
      try {
        return readdirSync(join(pc.layout.tmp, d)).filter((f) => /^pages-\d+\.img$/.test(f)).map((f) => `${d}/${f}`);
      } catch {
        return []; // removed between the two reads (the shim removes a lazy restore's extraction once its pages are in)
      }
    });
}

/** Restore images directories left in the page store (each restore's is removed once every page is in). */
function restoreDirsInStore(): string[] {
  return readdirSync(store).filter((n) => n.startsWith(".restore-"));
}

async function verifyMemory(id: string): Promise<void> {
  await pc.ctrOk(["task", "kill", "-s", "USR1", id]);
  const verdict = await waitFor(() => readContainerFile(pc, id, "/tmp/counter.verify"), { what: "memhog's verification", timeoutMs: 60_000 });
  expect(verdict).toMatch(/^ok \d+$/);
}

test("a 64 MiB container: the checkpoint image holds no page images, they are in the store; restored twice with memory intact", async () => {
  const id = uniqueId("lp");
  await runDetached(id, ["/bin/memhog", "64", "/tmp/counter"], LOCAL);
  await waitFor(() => readCounter(pc, id), { what: "memhog filled", timeoutMs: 60_000 });
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  expect(await taskStatus(pc, id)).toBe("RUNNING");

  const tar = await checkpointCriuTar(pc, ref);
  const entries = criuTarEntries(tar);
  expect(entries).toContain("cryo-checkpoint.json");
  expect(entries.some((e) => e.startsWith("pagemap-"))).toBe(true);
  expect(entries.filter((e) => /pages-\d+\.img/.test(e))).toEqual([]);
  expect(tar.size).toBeLessThan(4 * 2 ** 20); // 64 MiB of memory, a few hundred KiB of checkpoint

  const meta = await checkpointMetadata<LocalPagesMeta>(pc, ref);
  expect(meta.options.localPages).toBe(true);
  const local = meta.localPages!;
  expect(local.dir.startsWith(`${store}/${ns}-${id}-`)).toBe(true);
  expect(readdirSync(local.dir).sort()).toEqual(["entry.json", ...local.files.map((f) => f.name)].sort());
  const bytes = local.files.reduce((s, f) => s + f.bytes, 0);
  expect(bytes).toBeGreaterThanOrEqual(64 * 2 ** 20);
  for (const f of local.files) expect(statSync(join(local.dir, f.name)).size).toBe(f.bytes);
  await remove(id);

  // A plain restore under a new name, after the original is gone.
  const renamed = `${id}-r`;
  const r1 = await pc.ctr(["containers", "restore", "--live", renamed, ref], { timeoutMs: 120_000 });
  expect(r1.stderr).toBe("");
  expect(r1.exitCode).toBe(0);
  expect(await taskStatus(pc, renamed)).toBe("RUNNING");
  expect(pagesInExtractDirs()).toEqual([]); // no page image goes through containerd's directory
  expect(restoreDirsInStore()).toEqual([]); // the restore's images directory is gone once every page is in
  await verifyMemory(renamed);
  await remove(renamed);
  // The store entry is still whole: a second restore from the same checkpoint, under the original name.
  expect(readdirSync(local.dir).sort()).toEqual(["entry.json", ...local.files.map((f) => f.name)].sort());
  const r2 = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r2.exitCode).toBe(0);
  await verifyMemory(id);
  await remove(id);
}, 300_000);

test("two restores at once of one local-pages checkpoint into user namespaces: both run with memory intact, and the store's page images keep their owner and mode", async () => {
  // Each restore gives its images, the store's page images among them (hard links), to the namespace's root
  // group while CRIU runs, and gives them back afterwards: one at a time per store entry.
  const id = uniqueId("lpu");
  const maps = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"];
  await runDetached(id, ["/bin/memhog", "128", "/tmp/counter"], [...LOCAL, ...maps]);
  await waitFor(() => readCounter(pc, id), { what: "memhog filled", timeoutMs: 60_000 });
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await remove(id);
  const local = (await checkpointMetadata<LocalPagesMeta>(pc, ref)).localPages!;
  const ownerMode = () =>
    local.files.map((f) => {
      const st = statSync(join(local.dir, f.name));
      return `${f.name} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
    });
  const before = ownerMode();
  const ids = [`${id}-a`, `${id}-b`];
  const results = await Promise.all(ids.map((n) => pc.ctr(["containers", "restore", "--live", n, ref], { timeoutMs: 120_000 })));
  for (const r of results) {
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
  }
  for (const n of ids) expect(await taskStatus(pc, n)).toBe("RUNNING");
  expect(ownerMode()).toEqual(before);
  for (const n of ids) await verifyMemory(n);
  for (const n of ids) await remove(n);
  expect(ownerMode()).toEqual(before);
}, 300_000);

test("lazy pages from the store: the restored task runs, then verifies its memory", async () => {
  const id = uniqueId("lpz");
  await runDetached(id, ["/bin/memhog", "64", "/tmp/counter"], [...LOCAL, "--annotation", "cryo.checkpoint/lazy-pages=true"]);
  await waitFor(() => readCounter(pc, id), { what: "memhog filled", timeoutMs: 60_000 });
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await remove(id);
  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.exitCode).toBe(0);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  const bundle = join(pc.state, "io.containerd.runtime.v2.task", ns, id);
  const lazyLog = await waitFor(() => (existsSync(join(bundle, "criu-lazy-pages.log")) ? readFileSync(join(bundle, "criu-lazy-pages.log"), "utf8") : undefined), {
    what: "lazy-pages daemon done",
    timeoutMs: 60_000,
  });
  expect(lazyLog).toContain("uffd");
  expect(pagesInExtractDirs()).toEqual([]);
  await waitFor(() => restoreDirsInStore().length === 0, { what: "the restore's images directory removed after the lazy-pages daemon", timeoutMs: 10_000 });
  await verifyMemory(id);
  await remove(id);
}, 300_000);

test("a restore whose store entry holds another token, whose page image was written to since, or whose entry is gone, fails naming it, and leaves no process, cgroup, runc state or mount", async () => {
  const id = uniqueId("lpg");
  await runDetached(id, ["/bin/memhog", "8", "/tmp/counter"], LOCAL);
  await waitFor(() => readCounter(pc, id), { what: "memhog filled" });
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await remove(id);
  const { localPages } = await checkpointMetadata<LocalPagesMeta>(pc, ref);
  // An entry that does not hold this checkpoint's token (as another checkpoint's entry would not) is refused.
  const entryFile = join(localPages!.dir, "entry.json");
  const entry = JSON.parse(readFileSync(entryFile, "utf8")) as { token: string };
  writeFileSync(entryFile, JSON.stringify({ ...entry, token: "0".repeat(32) }));
  const denied = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(denied.exitCode).not.toBe(0);
  expect(denied.stderr).toContain("permission denied");
  expect(denied.stderr).toContain("does not belong to this checkpoint");
  expect(await taskPid(pc, id)).toBeUndefined();
  await pc.ctr(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);

  // The entry's own token back, and one of its page images rewritten in place, its size kept (a byte flipped): CRIU
  // would restore the changed pages without a word.
  writeFileSync(entryFile, JSON.stringify(entry));
  const pages = join(localPages!.dir, localPages!.files.at(-1)!.name);
  const fd = openSync(pages, "r+");
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, 0);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, 0);
  } finally {
    closeSync(fd);
  }
  const changed = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(changed.exitCode).not.toBe(0);
  expect(changed.stderr).toContain("failed precondition");
  expect(changed.stderr).toContain(`${pages} was modified since the checkpoint`);
  expect(await taskPid(pc, id)).toBeUndefined();
  expect(existsSync(join(RUNC_ROOT, ns, id))).toBe(false);
  expect(restoreDirsInStore()).toEqual([]);
  await pc.ctr(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);

  rmSync(localPages!.dir, { recursive: true });

  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain("failed precondition");
  expect(r.stderr).toContain(`kept in the page store of host`);
  expect(r.stderr).toContain(localPages!.dir);
  expect(await taskPid(pc, id)).toBeUndefined();
  for (const ctl of ["memory", "pids", "freezer", "cpu,cpuacct", "devices", "blkio", "cpuset", "systemd", "unified"]) {
    expect(existsSync(`/sys/fs/cgroup/${ctl}/${ns}/${id}`)).toBe(false);
  }
  expect(existsSync(join(RUNC_ROOT, ns, id))).toBe(false);
  // This restore's (another test file's restore may be under way beside this one, with its own).
  expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(`${join(RUNC_ROOT, ns, id)}/criu-root`);
  expect(restoreDirsInStore()).toEqual([]);
  await pc.ctr(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
}, 180_000);

test("local pages with compression are refused naming both: at Create when the container asks for both, at the checkpoint when its config file asks for compression since; the task keeps running and nothing is stored", async () => {
  const id = uniqueId("lpc");
  const r0 = await pc.ctr(["run", "-d", "--runtime", RUNTIME, ...LOCAL, "--annotation", "cryo.checkpoint/compression=zstd", testImage, id, "sleep", "100"], { timeoutMs: 60_000 });
  expect(r0.exitCode).not.toBe(0);
  expect(r0.stderr).toContain('local-pages cannot be combined with compression=zstd (localPages from annotation cryo.checkpoint/local-pages="true"; compression from annotation cryo.checkpoint/compression="zstd")');
  expect(await taskStatus(pc, id)).toBeUndefined();
  await pc.ctrOk(["containers", "rm", id]);

  // The config file the container runs with gains compression after its Create: the shim reads the edited file at
  // the checkpoint, and refuses it there.
  const cfgDir = mkdtempSync(join(tmpdir(), "cryo-lpc-"));
  const cfg = join(cfgDir, "config.toml");
  writeFileSync(cfg, "[checkpoint]\nlocal_pages = true\n");
  await runDetached(id, ["/bin/memhog", "0", "/tmp/counter"], ["--runtime-config-path", cfg]);
  await waitFor(() => readCounter(pc, id), { what: "counter" });
  writeFileSync(cfg, '[checkpoint]\nlocal_pages = true\ncompression = "zstd"\n');
  const before = readdirSync(store).length;
  const ref = `localhost/checkpoint/${id}:1`;
  const r = await pc.ctr(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain(`local-pages cannot be combined with compression=zstd (localPages from config ${cfg} [checkpoint]; compression from config ${cfg} [checkpoint])`);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  const n = readCounter(pc, id)!;
  await waitFor(() => (readCounter(pc, id) ?? 0) > n, { what: "still counting" });
  expect(readdirSync(store).length).toBe(before);
  await remove(id);
  rmSync(cfgDir, { recursive: true, force: true });
}, 180_000);

test("a local-pages checkpoint that CRIU fails (read-only work directory) leaves the task running and no store entry", async () => {
  const ro = mkdtempSync(join(tmpdir(), "cryo-lp-ro-"));
  expect(Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro]).exitCode).toBe(0);
  const id = uniqueId("lpf");
  try {
    await runDetached(id, ["/bin/memhog", "8", "/tmp/counter"], [...LOCAL, "--annotation", `cryo.checkpoint/work-path=${ro}`]);
    await waitFor(() => readCounter(pc, id), { what: "memhog filled" });
    const before = readdirSync(store);
    const ref = `localhost/checkpoint/${id}:1`;
    images.push(ref);
    const r = await pc.ctr(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("Read-only file system");
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    expect(readdirSync(store)).toEqual(before);
    await remove(id);
  } finally {
    Bun.spawnSync(["umount", ro]);
    rmSync(ro, { recursive: true, force: true });
  }
}, 180_000);

test("the checkpoint-defaults plugin with local_pages_above_gib: the big container's pages stay local, the small one's go into the image", async () => {
  buildPlugins();
  const dir = mkdtempSync(join(tmpdir(), "cryo-lpages-plugin-"));
  try {
    const config = join(dir, "config.toml");
    const wasm = join(import.meta.dir, "../../build/plugins/checkpoint-defaults.wasm");
    writeFileSync(config, `[[plugins]]\nname = "checkpoint-defaults"\npath = "${wasm}"\nhooks = ["checkpoint"]\nconfig = { local_pages_above_gib = "0.03" }\n`);
    const local: Record<string, boolean> = {};
    for (const [name, mib] of [["big", "64"], ["small", "8"]] as const) {
      const id = uniqueId(`lpp${name}`);
      await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", config, testImage, id, "/bin/memhog", mib, "/tmp/counter"], { timeoutMs: 60_000 });
      await waitFor(() => readCounter(pc, id), { what: "memhog filled", timeoutMs: 60_000 });
      const ref = `localhost/checkpoint/${id}:1`;
      images.push(ref);
      await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
      const meta = await checkpointMetadata<LocalPagesMeta>(pc, ref);
      const pagesInTar = criuTarEntries(await checkpointCriuTar(pc, ref)).some((e) => /pages-\d+\.img/.test(e));
      local[name] = meta.options.localPages;
      expect(pagesInTar).toBe(!meta.options.localPages);
      expect(meta.localPages !== undefined).toBe(meta.options.localPages);
      await remove(id);
    }
    expect(local).toEqual({ big: true, small: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);

test("containerd's temporary directory on a tmpfs smaller than the memory: pages go from CRIU to the store and back, never through it", async () => {
  const dir = mkdtempSync("/tmp/cryo-lp-tmpfs-");
  mkdirSync(join(dir, "tmp"));
  const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "cryo-lp-tmpfs", join(dir, "tmp")], { stderr: "pipe" });
  expect(mount.stderr.toString()).toBe("");
  // stop() unmounts what is mounted under the dir (the tmpfs) before it removes the dir.
  const other = await startPrivateContainerd({ dir, namespace: uniqueId("lptmpfs"), env: { CRYO_PAGE_STORE: store } });
  try {
    expect(readFileSync("/proc/mounts", "utf8")).toContain(`cryo-lp-tmpfs ${join(dir, "tmp")} tmpfs`);
    await ensureTestImage(other);
    const id = uniqueId("lpt");
    // 96 MiB of memory: more than the tmpfs holds, so a copy of the pages there could not even succeed.
    await other.ctrOk(["run", "-d", "--runtime", RUNTIME, ...LOCAL, testImage, id, "/bin/memhog", "96", "/tmp/counter"], { timeoutMs: 60_000 });
    await waitFor(() => readCounter(other, id), { what: "memhog filled", timeoutMs: 60_000 });
    const ref = `localhost/checkpoint/${id}:1`;
    await other.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    await removeContainer(other, id, { stopped: "not-running" });
    const r = await other.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    await other.ctrOk(["task", "kill", "-s", "USR1", id]);
    const verdict = await waitFor(() => readContainerFile(other, id, "/tmp/counter.verify"), { what: "memhog's verification", timeoutMs: 60_000 });
    expect(verdict).toMatch(/^ok \d+$/);
    expect(readFileSync(other.layout.log, "utf8")).not.toContain("were copied");
    expect(restoreDirsInStore()).toEqual([]);
    await removeContainer(other, id, { stopped: "not-running" });
    await other.ctr(["images", "rm", "--sync", ref]);
  } finally {
    await other.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);

test("cryo pages prune keeps what checkpoint images refer to (and young entries), removes the rest", async () => {
  const run = async (args: string[]) => {
    let out = "";
    const code = await pagesPruneCommand.run(args, { out: (t) => void (out += `${t}\n`), err: (t) => void (out += `${t}\n`) });
    return { code, out };
  };
  const entries: Record<"kept" | "orphan", string> = { kept: "", orphan: "" };
  for (const which of ["kept", "orphan"] as const) {
    const id = uniqueId(`lpr${which}`);
    await runDetached(id, ["/bin/memhog", "8", "/tmp/counter"], LOCAL);
    await waitFor(() => readCounter(pc, id), { what: "memhog filled" });
    const ref = `localhost/checkpoint/${id}:1`;
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    entries[which] = (await checkpointMetadata<LocalPagesMeta>(pc, ref)).localPages!.dir;
    await remove(id);
    if (which === "orphan") await pc.ctrOk(["images", "rm", "--sync", ref]); // its entry stays behind
  }
  const name = (dir: string) => dir.split("/").pop()!;
  // The entry names the containerd it was made for: a prune of other containerds keeps it.
  expect(JSON.parse(readFileSync(join(entries.orphan, "entry.json"), "utf8")).containerd).toBe(pc.address);
  const args = ["--address", pc.address, "--store", store];
  // Young entries are kept by default (a checkpoint in progress has its entry before its image exists).
  const young = await run(args);
  expect(young.out).toContain(`kept ${name(entries.orphan)}: younger than the age limit`);
  expect(existsSync(entries.orphan)).toBe(true);
  const dry = await run([...args, "--older-than", "0", "--dry-run"]);
  expect(dry.out).toContain(`would remove ${name(entries.orphan)}`);
  expect(dry.out).toContain(`kept ${name(entries.kept)}: referenced by localhost/checkpoint/`);
  expect(existsSync(entries.orphan)).toBe(true);
  const real = await run([...args, "--older-than", "0"]);
  expect(real.code).toBe(0);
  expect(real.out).toContain(`removed ${name(entries.orphan)}`);
  expect(existsSync(entries.orphan)).toBe(false);
  expect(existsSync(entries.kept)).toBe(true);
  // A containerd that does not answer: nothing is removed.
  await expect(run(["--address", "/nonexistent/containerd.sock", "--store", store, "--older-than", "0"])).rejects.toMatchObject({ code: Code.UNAVAILABLE });
  expect(existsSync(entries.kept)).toBe(true);
}, 300_000);
