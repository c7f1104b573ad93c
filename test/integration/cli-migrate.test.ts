/**
 * `cryo migrate` between two private containerds, through ctr as a user would: a counter container moves
 * (runc's shim and cryo's shim), its count goes on at the target, the source is gone and no checkpoint
 * image is left on either side; a refused or failed migration leaves the source running, also one whose
 * checkpoint hangs in CRIU until --timeout (ctr passes the deadline to containerd, and containerd to the shim).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { ensureTestImage, freePort, readContainerFile, readCounter, removeContainer, startPrivateContainerd, taskPid, testImage, uniqueId, waitFor, type PrivateContainerd, taskStatus } from "../harness/index.ts";

const bun = process.execPath;
const main = resolve(import.meta.dir, "../../src/cli/main.ts");
let a: PrivateContainerd;
let b: PrivateContainerd;
let ns: string;

async function cryo(...args: string[]) {
  const proc = Bun.spawn([bun, main, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exitCode };
}

async function containers(pc: PrivateContainerd): Promise<string[]> {
  return (await pc.ctrOk(["containers", "ls", "-q"])).split("\n").filter((l) => l !== "");
}

async function checkpointImages(pc: PrivateContainerd): Promise<string[]> {
  return (await pc.ctrOk(["images", "ls", "-q"])).split("\n").filter((l) => l.includes("cryo-migrate"));
}

/** Directories either containerd extracted checkpoints of this file's namespace into (its XDG_RUNTIME_DIR, <dir>/tmp). */
function extractedCheckpoints(): string[] {
  return [a, b].flatMap((pc) => {
    const base = pc.layout.tmp;
    return readdirSync(base)
      .filter((n) => n.startsWith("ctrd-checkpoint"))
      .map((n) => join(base, n))
      .filter((dir) => Bun.spawnSync(["grep", "-rlq", ns, dir]).exitCode === 0);
  });
}

beforeAll(async () => {
  ns = uniqueId("mig");
  a = await startPrivateContainerd({ namespace: ns });
  b = await startPrivateContainerd({ namespace: ns });
  // Only the source has the image: the first migration has to bring it along.
  await ensureTestImage(a);
}, 180_000);

afterAll(async () => {
  await b?.stop();
  await a?.stop();
}, 180_000);

async function moveCounter(runtime: string, flags: string[]): Promise<void> {
  const id = uniqueId("cnt");
  const newId = `${id}-m`;
  await a.ctrOk(["run", "-d", "--runtime", runtime, testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  const before = await waitFor(() => {
    const n = readCounter(a, id) ?? 0;
    return n >= 20 ? n : undefined;
  }, { what: "counter at 20" });

  const r = await cryo("migrate", id, "--from", a.address, "--to", b.address, "--namespace", ns, "--new-id", newId, ...flags);
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toContain(`migrated ${id} -> ${newId} at ${b.address}`);

  expect(await taskStatus(b, newId)).toBe("RUNNING");
  // The target's rootfs is fresh (or, with --rw, the source's files): the counter goes on from where it was.
  const first = await waitFor(() => readCounter(b, newId), { what: "counter at the target" });
  expect(first).toBeGreaterThanOrEqual(before);
  await waitFor(() => (readCounter(b, newId) ?? 0) > first, { what: "counter going on at the target" });
  expect(await containers(a)).not.toContain(id);
  expect(await checkpointImages(a)).toEqual([]);
  expect(await checkpointImages(b)).toEqual([]);
  // The target's shim removes containerd's extraction of the checkpoint once the restore has every page.
  await waitFor(() => (extractedCheckpoints().length === 0 ? true : undefined), { what: "containerd's extractions of the checkpoint removed" });

  await removeContainer(b, newId);
}

test("a runc-shim counter moves to the other containerd with --rw, image included, and counts on there", async () => {
  await moveCounter("io.containerd.runc.v2", ["--rw"]);
}, 180_000);

test("a cryo-shim counter moves with --rw and counts on there", async () => {
  await moveCounter("io.containerd.cryo.v2", ["--rw"]);
}, 180_000);

test("--keep copies: the source goes on running too", async () => {
  const id = uniqueId("keep");
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => readCounter(a, id), { what: "counter" });
  const r = await cryo("migrate", id, "--from", a.address, "--to", b.address, "-n", ns, "--new-id", `${id}-c`, "--keep");
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toContain(`${id} still runs at ${a.address}`);
  expect(await taskStatus(a, id)).toBe("RUNNING");
  expect(await taskStatus(b, `${id}-c`)).toBe("RUNNING");
  const n = readCounter(a, id)!;
  await waitFor(() => (readCounter(a, id) ?? 0) > n, { what: "source counting on" });
  for (const [pc, cid] of [[a, id], [b, `${id}-c`]] as const) await removeContainer(pc, cid);
}, 180_000);

test("addresses written unix://PATH (docs/cli.md) work as the path, for migrate and pages prune", async () => {
  // ctr 1.6 dials every --address as a socket path: given unix:///x it dialled unix://unix:///x, and migrate and
  // prune failed after ctr's 10 s dial timeout ("context deadline exceeded").
  const id = uniqueId("unix");
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => readCounter(a, id), { what: "counter" });
  const r = await cryo("migrate", id, "--from", `unix://${a.address}`, "--to", `unix://${b.address}`, "-n", ns, "--new-id", `${id}-c`, "--keep", "--rw");
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(await taskStatus(b, `${id}-c`)).toBe("RUNNING");
  for (const [pc, cid] of [[a, id], [b, `${id}-c`]] as const) await removeContainer(pc, cid);
  const store = mkdtempSync(join(a.layout.tmp, "store-"));
  try {
    const p = await cryo("pages", "prune", "--address", `unix://${a.address}`, "--address", `unix://${b.address}`, "--store", store, "--dry-run");
    expect(p.stderr).toBe("");
    expect(p.exitCode).toBe(0);
    expect(p.stdout).toContain(`page store ${store}: 0 to remove, 0 kept`);
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}, 180_000);

test("a container run attached (ctr run without -d) moves too, and its container is removed at the source", async () => {
  const id = uniqueId("att");
  // This ctr waits for the task and deletes it itself when it sees the exit: migrate must not need that task.
  const attached = a.ctr(["run", "--runtime", "io.containerd.cryo.v2", testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 120_000 });
  await waitFor(() => readCounter(a, id), { what: "counter" });
  const r = await cryo("migrate", id, "--from", a.address, "--to", b.address, "-n", ns, "--new-id", `${id}-m`, "--rw");
  // Before, it failed after the restore: "delete task ...: not found" (the attached ctr had deleted it), and the
  // source container stayed.
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(await taskStatus(b, `${id}-m`)).toBe("RUNNING");
  expect((await attached).exitCode).toBe(137);
  expect(await containers(a)).not.toContain(id);
  await removeContainer(b, `${id}-m`);
}, 180_000);

test("refusals leave the source running: same id on one machine, unknown container, same address", async () => {
  const id = uniqueId("ref");
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "sleep", "600"], { timeoutMs: 60_000 });
  const same = await cryo("migrate", id, "--from", a.address, "--to", b.address, "-n", ns);
  expect(same.exitCode).toBe(1);
  expect(same.stderr).toContain(`cryo migrate: container ${id}: failed precondition: its runc state is under /run/containerd/runc`);
  const missing = await cryo("migrate", "nope", "--from", a.address, "--to", b.address, "-n", ns);
  expect(missing.exitCode).toBe(1);
  expect(missing.stderr.trim()).toBe(`cryo migrate: container nope in namespace ${ns} at ${a.address}: not found`);
  const self = await cryo("migrate", id, "--from", a.address, "--to", a.address, "-n", ns, "--new-id", "x");
  expect(self.exitCode).toBe(2);
  const usage = await cryo("migrate", id, "--to", b.address);
  expect(usage.exitCode).toBe(2);
  expect(await taskStatus(a, id)).toBe("RUNNING");
  expect(await containers(b)).toEqual([]);
  expect(await checkpointImages(a)).toEqual([]);
  await removeContainer(a, id);
}, 120_000);

test("a container restored from a checkpoint image still in the store: migrate names that image, and moves it once the image is gone", async () => {
  // containerd 1.6 writes a checkpoint of a container whose spec blob an older checkpoint image holds without its CRIU
  // images (ctr exits 0). A restored container has its checkpoint's spec, whatever its new id: here the clone's own
  // history has no checkpoint, and the message used to say "an older checkpoint image of this container".
  const id = uniqueId("orig");
  const clone = `${id}-r`;
  const held = `localhost/held/${id}:1`;
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "sleep", "600"], { timeoutMs: 60_000 });
  await a.ctrOk(["containers", "checkpoint", "--task", id, held], { timeoutMs: 120_000 });
  await a.ctrOk(["containers", "restore", "--live", clone, held], { timeoutMs: 120_000 });
  expect(await taskStatus(a, clone)).toBe("RUNNING");
  const args = ["migrate", clone, "--from", a.address, "--to", b.address, "-n", ns, "--new-id", `${clone}-m`];
  const r = await cryo(...args);
  const major = Number(/Server:\s*\n\s*Version:\s*v?(\d+)/.exec(await a.ctrOk(["version"]))?.[1]);
  if (major < 2 || r.exitCode !== 0) {
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("without the task's CRIU images");
    expect(r.stderr).toContain(`here ${held}; remove it with ctr -n ${ns} images rm --sync`);
    expect(await taskStatus(a, clone)).toBe("RUNNING");
    expect(await containers(b)).toEqual([]);
    expect(await checkpointImages(a)).toEqual([]);
    await a.ctrOk(["images", "rm", "--sync", held]);
    const again = await cryo(...args);
    expect(again.stderr).toBe("");
    expect(again.exitCode).toBe(0);
  } else {
    await a.ctrOk(["images", "rm", "--sync", held]);
  }
  expect(await taskStatus(b, `${clone}-m`)).toBe("RUNNING");
  expect(await containers(a)).not.toContain(clone);
  await removeContainer(b, `${clone}-m`);
  await removeContainer(a, id);
}, 180_000);

/** After a failed migration: the source still runs, nothing is left at either end; then the source is removed. */
async function expectSourceAloneThenRemove(id: string): Promise<void> {
  expect(await taskStatus(a, id)).toBe("RUNNING");
  expect(await containers(b)).toEqual([]);
  expect(await checkpointImages(a)).toEqual([]);
  expect(await checkpointImages(b)).toEqual([]);
  expect(extractedCheckpoints()).toEqual([]);
  await removeContainer(a, id);
}

test("a restore that fails at the target leaves the source running and nothing behind at the target", async () => {
  // ctr restores without a terminal: runc refuses to restore a tty container, after the checkpoint worked.
  const id = uniqueId("tty");
  const run = Bun.spawnSync(["script", "-qec", `ctr --address ${a.address} -n ${ns} run -d -t --runtime io.containerd.runc.v2 ${testImage} ${id} sleep 600`, "/dev/null"]);
  expect(run.exitCode).toBe(0);
  expect(await taskStatus(a, id)).toBe("RUNNING");
  const r = await cryo("migrate", id, "--from", a.address, "--to", b.address, "-n", ns, "--new-id", `${id}-m`);
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain(`cryo migrate: restore container ${id}-m`);
  // runc's refusal through ctr 1.6; ctr 2.x itself panics restoring a terminal container, with any shim.
  expect(r.stderr).toMatch(/cannot allocate tty|panic: provided file is not a console/);
  expect(r.stdout).toContain(`${id} is still running at ${a.address}`);
  await expectSourceAloneThenRemove(id);
}, 120_000);

test("a restore that CRIU fails is tried once more, then the source keeps running and nothing is left at the target", async () => {
  // The container holds a file of its rootfs open; migrated without --rw, the target's rootfs lacks it and CRIU fails.
  const id = uniqueId("held");
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "sh", "-c", "exec 3>/tmp/held; echo x >&3; exec sleep 600"]);
  await waitFor(async () => (await taskStatus(a, id)) === "RUNNING", { what: `${id} running` });
  await waitFor(() => readContainerFile(a, id, "/tmp/held") === "x" || undefined, { what: `${id}: /tmp/held open and written` });
  const r = await cryo("migrate", id, "--from", a.address, "--to", b.address, "-n", ns, "--new-id", `${id}-m`);
  expect(r.exitCode).toBe(1);
  expect(r.stdout).toContain(`; removing ${id}-m at ${b.address} and trying once more`);
  expect(r.stdout).toContain(`restore ${id}-m at ${b.address} (second attempt)`);
  expect(r.stdout).toContain(`${id} is still running at ${a.address}`);
  expect(r.stderr).toContain("tmp/held");
  await expectSourceAloneThenRemove(id);
}, 120_000);


test("a checkpoint that hangs in CRIU ends at --timeout: the shim gives up too, the source is resumed and counts on", async () => {
  // CRIU's log in the work directory the container names is a FIFO: CRIU blocks at its start, for ever.
  const id = uniqueId("hang");
  const work = mkdtempSync(join(a.layout.tmp, "hang-work-"));
  expect(Bun.spawnSync(["mkfifo", join(work, "dump.log")]).exitCode).toBe(0);
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", "--annotation", `cryo.checkpoint/work-path=${work}`, testImage, id, "/bin/memhog", "0", "/tmp/counter"]);
  await waitFor(() => (readCounter(a, id) ?? 0) > 0 || undefined, { what: "counter" });
  const r = await cryo("migrate", id, "--from", a.address, "--to", b.address, "-n", ns, "--new-id", `${id}-m`, "--timeout", "4");
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain(`cryo migrate: checkpoint container ${id}`);
  expect(r.stderr).toContain("deadline exceeded");
  // ctr's own Resume came with the expired deadline: migrate resumed the source.
  expect(r.stdout).toContain(`checkpoint failed; ${id} was left paused at ${a.address}: resuming it`);
  expect(r.stdout).toContain(`${id} is still running at ${a.address}`);
  const n = readCounter(a, id)!;
  await waitFor(() => (readCounter(a, id) ?? 0) > n || undefined, { what: "counter going on at the source" });
  // The shim gave up the dump at the deadline containerd passed on: CRIU is not left hanging on the FIFO. The shim's
  // log reaches containerd's through a FIFO: waited for, as in shim-notify.
  const aborted = `checkpoint container ${id}: aborted: checkpoint container ${id}: cancelled: the request's deadline passed`;
  await waitFor(() => readFileSync(a.layout.log, "utf8").includes(aborted) || undefined, { what: "the shim's log of the aborted dump" });
  await expectSourceAloneThenRemove(id);
  rmSync(work, { recursive: true, force: true });
}, 120_000);

test("post-copy: the source serves its pages to the target and ends; the target has all its memory", async () => {
  const id = uniqueId("pcm");
  const newId = `${id}-m`;
  const postCopy = ["--annotation", "cryo.checkpoint/lazy-pages=true", "--annotation", `cryo.checkpoint/page-server=127.0.0.1:${freePort()}`];
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", ...postCopy, testImage, id, "/bin/memhog", "64", "/tmp/counter"], { timeoutMs: 60_000 });
  const before = await waitFor(() => readCounter(a, id), { what: "memhog filled" });

  // --keep cannot apply: refused before anything is checkpointed.
  const keep = await cryo("migrate", id, "--from", a.address, "--to", b.address, "-n", ns, "--new-id", newId, "--keep");
  expect(keep.exitCode).toBe(1);
  expect(keep.stderr).toContain(`cryo migrate: --keep with container ${id}: failed precondition`);
  expect(await taskStatus(a, id)).toBe("RUNNING");

  const r = await cryo("migrate", id, "--from", a.address, "--to", b.address, "-n", ns, "--new-id", newId, "--rw");
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toContain(`post-copy checkpoint: ${id} stays frozen at ${a.address}`);
  expect(r.stdout).toContain(`wait for ${id} at ${a.address} to end`);
  expect(r.stdout).toContain(`migrated ${id} -> ${newId} at ${b.address}`);
  expect(await containers(a)).not.toContain(id);
  expect(await taskStatus(b, newId)).toBe("RUNNING");
  await waitFor(() => ((readCounter(b, newId) ?? 0) > before ? true : undefined), { what: "counter going on at the target" });
  await b.ctrOk(["task", "kill", "-s", "USR1", newId]);
  expect(await waitFor(() => readContainerFile(b, newId, "/tmp/counter.verify"), { what: "memhog's verification", timeoutMs: 60_000 })).toMatch(/^ok \d+$/);
  expect(await checkpointImages(a)).toEqual([]);
  expect(await checkpointImages(b)).toEqual([]);
  await removeContainer(b, newId);
  for (const dir of extractedCheckpoints()) rmSync(dir, { recursive: true, force: true }); // kept for the lazy restore
}, 180_000);

test("post-copy whose restore fails: the source's page server is released and the source runs on", async () => {
  // Without --rw the target's rootfs lacks the file the container holds open: CRIU fails the restore (twice).
  const id = uniqueId("pcf");
  const postCopy = ["--annotation", "cryo.checkpoint/lazy-pages=true", "--annotation", `cryo.checkpoint/page-server=127.0.0.1:${freePort()}`];
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", ...postCopy, testImage, id, "sh", "-c", "exec 3>/tmp/held; echo x >&3; i=0; while true; do i=$((i+1)); printf '%010d\\n' $i 1<>/tmp/counter; sleep 0.05; done"]);
  await waitFor(() => readContainerFile(a, id, "/tmp/held") === "x" || undefined, { what: `${id}: /tmp/held open and written` });
  await waitFor(() => readCounter(a, id), { what: "counting" });
  const r = await cryo("migrate", id, "--from", a.address, "--to", b.address, "-n", ns, "--new-id", `${id}-m`);
  expect(r.exitCode).toBe(1);
  expect(r.stdout).toContain(`release ${id}'s page server`);
  expect(r.stdout).toContain(`${id} is still running at ${a.address}`);
  // Released: the source counts on (within moments, not after the shim's post-copy timeout).
  const n = readCounter(a, id)!;
  try {
    await waitFor(() => ((readCounter(a, id) ?? 0) > n ? true : undefined), { what: "source counting on", timeoutMs: 10_000 });
  } catch (err) {
    // What the source's shim said about its page server, and where the source's processes are (stopped by ptrace,
    // frozen, gone, or in D state: under heavy disk load, freeing a file's blocks waits for the disk's discard, which
    // is why the loop overwrites its counter in place instead of truncating it).
    const said = readFileSync(a.layout.log, "utf8").split("\n").filter((l) => l.includes(id) && /post-copy|page server|thaw|resume|pause|Resume|Pause/.test(l));
    const pid = await taskPid(a, id).catch(() => undefined);
    const state = (file: string) => {
      try {
        return readFileSync(file, "utf8").trim();
      } catch (e) {
        return String(e);
      }
    };
    // Every process of the container: its state, tracer, what it waits in (syscall, kernel stack), its signals.
    const procs = state(`/sys/fs/cgroup/freezer/${ns}/${id}/cgroup.procs`).split("\n").filter((p) => /^\d+$/.test(p));
    const status = (p: string) => state(`/proc/${p}/status`).split("\n").filter((l) => /^(Name|State|TracerPid|SigPnd|ShdPnd|SigBlk):/.test(l)).join(", ");
    const where = [
      `task pid ${pid ?? "none"}`,
      ...procs.map((p) => `/proc/${p}: ${status(p)}, wchan ${state(`/proc/${p}/wchan`)}, stat ${state(`/proc/${p}/stat`).split(" ").slice(2, 3).join(" ")}, syscall ${state(`/proc/${p}/syscall`)}, stack ${state(`/proc/${p}/stack`).split("\n").slice(0, 4).join(" < ")}`),
      `freezer: ${state(`/sys/fs/cgroup/freezer/${ns}/${id}/freezer.state`)}`,
      `counter file: ${readCounter(a, id)}`,
    ];
    // Stalled for a while (a process in D state), or for good?
    const stalledAt = performance.now();
    const later = await waitFor(() => ((readCounter(a, id) ?? 0) > n ? true : undefined), { what: "source counting on, later", timeoutMs: 30_000 }).then(
      () => `it counted on ${Math.round(performance.now() - stalledAt)} ms later`,
      () => "it did not count on within 30 s more",
    );
    throw new Error(`${(err as Error).message}; the source's shim said:\n${said.join("\n")}\n${where.join("\n")}\n${later}`);
  }
  await expectSourceAloneThenRemove(id);
}, 120_000);

test("a Ctrl-C in the middle stops after the ctr call under way and cleans up: the source runs on, nothing is left at either end", async () => {
  const id = uniqueId("int");
  const newId = `${id}-m`;
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  try {
    const workDirs = () => readdirSync("/tmp").filter((n) => n.startsWith("cryo-migrate-"));
    const before = workDirs();
    const proc = Bun.spawn([bun, main, "migrate", id, "--from", a.address, "--to", b.address, "--namespace", ns, "--new-id", newId], { stdout: "pipe", stderr: "pipe" });
    const stderr = new Response(proc.stderr).text();
    let stdout = "";
    const reader = proc.stdout.getReader();
    const decoder = new TextDecoder();
    // SIGINT once the checkpoint runs. Before, cryo died there: the checkpoint image stayed at the source and its
    // work directory in /tmp (and a later step's would have left the target's copy).
    while (!stdout.includes(`checkpoint ${id} at`)) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += decoder.decode(value);
    }
    proc.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += decoder.decode(value);
    }
    expect(await proc.exited).toBe(1);
    const err = await stderr;
    expect(err).toContain("cryo migrate: SIGINT: stopping after the step under way, then cleaning up");
    expect(err).toContain(`cryo migrate: migrate of ${id}: context canceled: interrupted (SIGINT)`);
    expect(stdout).not.toContain("migrated");
    expect(await taskStatus(a, id)).toBe("RUNNING");
    expect(await containers(b)).not.toContain(newId);
    expect(await checkpointImages(a)).toEqual([]);
    expect(await checkpointImages(b)).toEqual([]);
    expect(workDirs().filter((n) => !before.includes(n))).toEqual([]);
  } finally {
    await removeContainer(a, id);
  }
}, 60_000);

test("a container of the same namespace and id at the other containerd (both use runc's root /run/containerd/runc): the Create refused there leaves this one running", async () => {
  // containerd runs the shim's delete action after the refused Create's shim goes; it force-deleted runc's state for
  // the id, which was this container's, and killed it (runc's shim does the same).
  const id = uniqueId("twin");
  await ensureTestImage(b);
  await a.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "sleep", "600"], { timeoutMs: 60_000 });
  const pid = (await taskPid(a, id))!;
  const r = await b.ctr(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "sleep", "600"], { timeoutMs: 60_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain("already exists");
  // containerd's clean-up after the refused shim runs beside ctr's return: given time to do its worst.
  for (let i = 0; i < 20; i++) {
    expect(await taskStatus(a, id)).toBe("RUNNING");
    expect(readFileSync(`/proc/${pid}/stat`, "utf8")).not.toMatch(/^\d+ \(.*\) Z /);
    await Bun.sleep(100);
  }
  await b.ctr(["containers", "rm", id]);
  await removeContainer(a, id);
}, 120_000);
