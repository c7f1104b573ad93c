/**
 * Post-copy checkpoints through ctr (`cryo.checkpoint/lazy-pages=true` with `cryo.checkpoint/page-server`):
 * the dump writes no page of the container's memory; `ctr containers checkpoint` returns while CRIU's page
 * server holds the frozen source; a restore under a new name runs at once, fetches every page from the
 * source, and the source then ends (CRIU kills it). With no restore, the page server stops after the
 * timeout and the source runs on, its network namespace unlocked; a client that goes away without saying it
 * has every page does not end it. Without the pipe size CRIU's page server needs, the checkpoint is refused
 * before anything is frozen. A shim killed while its CRIU serves leaves neither that CRIU nor the source.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { POST_COPY_PIPE_BYTES } from "../../src/shim/checkpoint-dump.ts";
import {
  checkpointCriuTar,
  checkpointMetadata,
  criuTarEntries,
  ensureTestImage,
  freePort,
  readContainerFile,
  readCounter,
  removeContainer,
  shimDaemonPids,
  startPrivateContainerd,
  taskPid,
  taskStatus,
  testImage,
  uniqueId,
  waitFor,
  type PrivateContainerd,
} from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const TIMEOUT_MS = 15_000;
let pc: PrivateContainerd;
const images: string[] = [];

beforeAll(async () => {
  pc = await startPrivateContainerd({ namespace: uniqueId("postcopy"), env: { CRYO_POST_COPY_TIMEOUT_MS: String(TIMEOUT_MS) } });
  await ensureTestImage(pc);
}, 120_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
}, 120_000);


function postCopy(port: number): string[] {
  return ["--annotation", "cryo.checkpoint/lazy-pages=true", "--annotation", `cryo.checkpoint/page-server=127.0.0.1:${port}`];
}

async function runMemhog(id: string, mib: number, flags: string[]): Promise<number> {
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, ...flags, testImage, id, "/bin/memhog", String(mib), "/tmp/counter"], { timeoutMs: 60_000 });
  return await waitFor(() => readCounter(pc, id), { what: "memhog filled", timeoutMs: 60_000 });
}

/** The counter stays put for a while: the process is frozen. */
async function counterStill(id: string, ms = 600): Promise<number | undefined> {
  const a = readCounter(pc, id);
  await Bun.sleep(ms);
  return readCounter(pc, id) === a ? a : undefined;
}

/** `ctr containers checkpoint --task` of a post-copy container: returns when the source is held frozen, with its counter then. */
async function checkpointServing(id: string): Promise<{ t0: number; atDump: number | undefined }> {
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  const t0 = performance.now();
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  const atDump = await counterStill(id);
  expect(atDump).toBeGreaterThan(0);
  return { t0, atDump };
}

interface PostCopyMeta {
  options: { lazyPages: boolean; leaveRunning: boolean; pageServer?: { address: string; port: number } };
}

test("post-copy (page server on any free port): checkpoint returns before the pages move; the restore runs at once, gets every page, and the source ends", async () => {
  const id = uniqueId("pc");
  // The status path gets one byte (0) once the page server serves: before Checkpoint answers.
  const statusPath = join(tmpdir(), `${id}.status`);
  // port 0: the dump picks a free one and records it for the restore
  await runMemhog(id, 128, [...postCopy(0), "--annotation", `cryo.checkpoint/status-path=${statusPath}`]);
  const sourcePid = (await taskPid(pc, id))!;
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);

  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  expect([...readFileSync(statusPath)]).toEqual([0]);
  rmSync(statusPath);
  // Checkpoint has answered, but the source is still there, held (frozen) by CRIU's page server.
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  const atDump = await counterStill(id);
  expect(atDump).toBeGreaterThan(0);
  expect(readFileSync(`/proc/${sourcePid}/status`, "utf8")).toMatch(/^State:\s+t/m); // ptrace-stopped by CRIU

  const tar = await checkpointCriuTar(pc, ref);
  expect(tar.size).toBeLessThan(4 * 2 ** 20); // 128 MiB of memory, none of it in the checkpoint
  expect(criuTarEntries(tar)).toContain("cryo-checkpoint.json");
  const meta = await checkpointMetadata<PostCopyMeta>(pc, ref);
  expect(meta.options.lazyPages).toBe(true);
  expect(meta.options.pageServer?.address).toBe("127.0.0.1");
  expect(meta.options.pageServer?.port).toBeGreaterThan(0);
  expect(meta.options.leaveRunning).toBe(false); // ctr asked to leave it running: a post-copy source ends

  const renamed = `${id}-r`;
  const r = await pc.ctr(["containers", "restore", "--live", renamed, ref], { timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(await taskStatus(pc, renamed)).toBe("RUNNING");
  // Every page reached the restored copy: CRIU then ended the source.
  await waitFor(async () => ((await taskStatus(pc, id)) === "STOPPED" ? true : undefined), { what: "the source to end", timeoutMs: 60_000 });
  await waitFor(() => ((readCounter(pc, renamed) ?? 0) > atDump! ? true : undefined), { what: "the restored copy to count on", timeoutMs: 60_000 });
  await pc.ctrOk(["task", "kill", "-s", "USR1", renamed]);
  expect(await waitFor(() => readContainerFile(pc, renamed, "/tmp/counter.verify"), { what: "memhog's verification", timeoutMs: 60_000 })).toMatch(/^ok \d+$/);
  await removeContainer(pc, renamed);
  await removeContainer(pc, id);
}, 240_000);

test("post-copy with no restore: the page server stops after the timeout, the source runs on with its network unlocked", async () => {
  const id = uniqueId("pcn");
  const port = freePort();
  // A network lock asked for (a namespace with only loopback would get none): the shim must remove it.
  await runMemhog(id, 16, [...postCopy(port), "--annotation", "cryo.checkpoint/network-lock=nftables"]);
  const pid = (await taskPid(pc, id))!;
  const { t0, atDump } = await checkpointServing(id);
  // CRIU's network lock is in the container's namespace while it serves.
  const tables = () => Bun.spawnSync(["nsenter", `--net=/proc/${pid}/ns/net`, "nft", "list", "tables"]).stdout.toString();
  expect(tables()).toMatch(/table inet CRIU-/);
  await waitFor(() => ((readCounter(pc, id) ?? 0) > atDump! ? true : undefined), { what: "the source to run on", timeoutMs: TIMEOUT_MS + 60_000, intervalMs: 200 });
  expect(performance.now() - t0).toBeGreaterThan(TIMEOUT_MS - 1000);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await waitFor(() => (tables().includes("CRIU-") ? undefined : true), { what: "CRIU's network lock to go", timeoutMs: 10_000 });
  // The container's loopback carries traffic again: a listener inside answers a client inside.
  const serve = Bun.spawn(["nsenter", `--net=/proc/${pid}/ns/net`, "busybox", "nc", "-l", "-p", "7123", "-e", "echo", "pong"], { stdout: "ignore", stderr: "ignore" });
  try {
    const answer = await waitFor(
      () => {
        const c = Bun.spawnSync(["nsenter", `--net=/proc/${pid}/ns/net`, "busybox", "nc", "-w", "2", "127.0.0.1", "7123"], { stdout: "pipe", stderr: "pipe" });
        const out = c.stdout.toString().trim();
        return out === "" ? undefined : out;
      },
      { what: "an answer over the container's loopback", timeoutMs: 10_000, intervalMs: 200 },
    );
    expect(answer).toBe("pong");
  } finally {
    serve.kill("SIGKILL");
    await serve.exited;
  }
  await removeContainer(pc, id);
}, TIMEOUT_MS + 180_000);

test("post-copy whose client goes away without its last word: the source runs on, well before the timeout", async () => {
  // A lazy-pages daemon that dies (killed with a restore that failed after it connected) closes its connection
  // without telling the page server it has every page. Upstream CRIU took that for the end of the transfer and
  // ended the source: the container was then gone on both sides. cryo's CRIU (patch 0004) fails the transfer.
  const id = uniqueId("pcc");
  const port = freePort();
  await runMemhog(id, 16, postCopy(port));
  const { atDump } = await checkpointServing(id);
  // A client that connects, then closes in order (FIN) without a command, as a killed lazy-pages daemon does.
  const closed = Promise.withResolvers<void>();
  await Bun.connect({ hostname: "127.0.0.1", port, socket: { open: (s) => void s.end(), data() {}, close: () => closed.resolve(), error: () => closed.resolve() } });
  await closed.promise;
  // Well before the page server's timeout (TIMEOUT_MS, counted from before the close): the close ended it. Not
  // timed from t0, which also counts the dump and would fail on a slow machine.
  await waitFor(() => ((readCounter(pc, id) ?? 0) > atDump! ? true : undefined), { what: "the source to run on", timeoutMs: TIMEOUT_MS / 2, intervalMs: 200 });
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await removeContainer(pc, id);
}, 120_000);

test("post-copy source killed while it serves: the page server stops, the kill takes effect and the exit is reported", async () => {
  const id = uniqueId("pck");
  await runMemhog(id, 16, postCopy(freePort()));
  const pid = (await taskPid(pc, id))!;
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^TracerPid:\s+[1-9]/m); // held by CRIU
  // Traced, the task would report its exit to CRIU, not to the shim: the shim stops the page server first.
  await pc.ctrOk(["task", "kill", "-s", "KILL", id]);
  await waitFor(async () => ((await taskStatus(pc, id)) === "STOPPED" ? true : undefined), { what: "the killed source to stop", timeoutMs: 5_000 });
  const criuLeft = Bun.spawnSync(["pgrep", "-f", `criu: dump --rpc -t ${pid}`]).stdout.toString().trim();
  expect(criuLeft).toBe("");
  await removeContainer(pc, id);
}, 120_000);

test("post-copy without the pipe size CRIU's page server needs: refused before the dump, the container keeps running", async () => {
  const id = uniqueId("pcp");
  await runMemhog(id, 16, postCopy(freePort()));
  const saved = readFileSync("/proc/sys/fs/pipe-max-size", "utf8").trim();
  writeFileSync("/proc/sys/fs/pipe-max-size", String(POST_COPY_PIPE_BYTES / 4));
  let r;
  try {
    r = await pc.ctr(["task", "checkpoint", id], { timeoutMs: 60_000 });
  } finally {
    writeFileSync("/proc/sys/fs/pipe-max-size", saved);
  }
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain("fs.pipe-max-size");
  expect(r.stderr).toMatch(/failed precondition/i);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  const before = readCounter(pc, id)!;
  await waitFor(() => ((readCounter(pc, id) ?? 0) > before ? true : undefined), { what: "the container to count on", timeoutMs: 10_000 });
  await removeContainer(pc, id);
}, 120_000);

test("the shim killed while its CRIU serves the pages: containerd's cleanup leaves no CRIU, no process of the container and no cgroup", async () => {
  const id = uniqueId("pc-dead");
  await runMemhog(id, 32, postCopy(await freePort()));
  await checkpointServing(id);
  const bundle = `${pc.layout.state}/io.containerd.runtime.v2.task/${pc.namespace}/${id}`;
  // The page server is CRIU's dump, holding its log open in the dump's work directory.
  const holders = () =>
    readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readdirSync(`/proc/${p}/fd`).some((fd) => readlinkSync(`/proc/${p}/fd/${fd}`).startsWith(`${bundle}/criu-work/`));
        } catch {
          return false;
        }
      });
  const criu = holders().map(Number);
  expect(criu.length).toBeGreaterThan(0);
  // Gone, or a zombie (its parent may be this test process, a subreaper through an earlier test).
  const gone = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z");
    } catch {
      return true;
    }
  };
  const shim = shimDaemonPids(pc.address, id)[0];
  expect(shim).toBeDefined();
  const memhog = (await taskPid(pc, id))!;
  // Before, that CRIU and its helper went on waiting for a restore, for ever.
  process.kill(Number(shim), "SIGKILL");
  await waitFor(() => (criu.every(gone) ? true : undefined), { what: "CRIU's page server gone", timeoutMs: 20_000 });
  await waitFor(() => (gone(memhog) ? true : undefined), { what: "the container's process gone", timeoutMs: 20_000 });
  await waitFor(() => !existsSync(`/sys/fs/cgroup/memory/${pc.namespace}/${id}`) || undefined, { what: "cgroup removed", timeoutMs: 20_000 });
  await pc.ctr(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
}, 180_000);

