/**
 * The cryo shim under stress and misuse, through ctr against a private containerd: containerd
 * restarted under running tasks, a SIGKILLed shim cleaned up by containerd's `delete` (also in the middle
 * of a restore), 50 containers at once with nothing leaking, and bad input answered with clear errors.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../src/errors.ts";
import { childrenOf, readProcStat } from "../../src/sys/index.ts";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { connect } from "../../src/ttrpc/index.ts";
import { PrivateContainerd, ensureTestImage, processAlive, readCounter, shimDaemonPids, startPrivateContainerd, testImage, uniqueId, waitFor, taskStatus } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let ns: string;

beforeAll(async () => {
  ns = uniqueId("shimres");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
});

afterAll(async () => {
  await pc?.stop();
});

/** Shim daemons of this containerd (by the -address they carry; not the standby, which serves no container). */
const shimPids = (): number[] => shimDaemonPids(pc.address);

function mountCount(): number {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(pc.dir) || l.includes(`/${ns}/`)).length;
}

function cgroupCount(): number {
  const dir = `/sys/fs/cgroup/memory/${ns}`;
  return existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).length : 0;
}

function runcStateCount(): number {
  const dir = `/run/containerd/runc/${ns}`;
  return existsSync(dir) ? readdirSync(dir).length : 0;
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

test("containerd restarted while tasks run: still listed and manageable", async () => {
  const id = uniqueId("restart");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "1000"]);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  // Stop containerd alone (the harness's stop would also end the shims, which must survive).
  const dir = pc.dir;
  const old = pc.pid;
  process.kill(old, "SIGTERM");
  await waitFor(() => !existsSync(`/proc/${old}`) || readFileSync(`/proc/${old}/stat`, "utf8").split(" ")[2] === "Z", { timeoutMs: 20_000 });
  pc = await startPrivateContainerd({ dir, namespace: ns });
  await waitFor(async () => (await taskStatus(pc, id)) === "RUNNING", { timeoutMs: 20_000 });
  const ex = await pc.ctr(["task", "exec", "--exec-id", "after", id, "echo", "still-here"]);
  expect(ex.stdout).toBe("still-here\n");
  await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", id]);
  await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { timeoutMs: 10_000 });
  const shim = shimPids().find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(id));
  await pc.ctrOk(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
  // The daemon exits once containerd deleted its last container, also after a containerd restart.
  // A zombie counts as gone: an earlier test in this process may have made it a child subreaper, so the
  // daemon's exit can leave it unreaped here.
  await waitFor(() => shim === undefined || !processAlive(shim), { timeoutMs: 20_000, what: `shim ${shim} gone` });
}, 90_000);

test("shim killed with SIGKILL: containerd's cleanup removes the container and reports it stopped", async () => {
  const id = uniqueId("dead");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "1000"]);
  const before = new Set(shimPids());
  const shim = shimPids().find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(id));
  expect(shim).toBeDefined();
  void before;
  const socket = readFileSync(join(pc.state, "io.containerd.runtime.v2.task", ns, id, "address"), "utf8").trim().replace(/^unix:\/\//, "");
  expect(existsSync(socket)).toBe(true);
  process.kill(shim!, "SIGKILL");
  await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED" || (await taskStatus(pc, id)) === undefined, { timeoutMs: 20_000 });
  await waitFor(() => !existsSync(`/run/containerd/runc/${ns}/${id}`), { timeoutMs: 20_000, what: "runc state removed" });
  await waitFor(() => !readFileSync("/proc/self/mountinfo", "utf8").includes(`/${id}/rootfs`), { timeoutMs: 20_000, what: "rootfs unmounted" });
  await waitFor(() => !existsSync(`/sys/fs/cgroup/memory/${ns}/${id}`), { timeoutMs: 20_000, what: "cgroup removed" });
  // The dead daemon's socket file goes too (the `delete` action removes a socket nothing answers on).
  await waitFor(() => !existsSync(socket), { timeoutMs: 20_000, what: "dead shim's socket removed" });
  await pc.ctr(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
  expect(await taskStatus(pc, id)).toBeUndefined();
}, 60_000);

test("shim killed with SIGKILL in the middle of a restore: containerd's cleanup leaves no process, cgroup, runc state or mount", async () => {
  const id = uniqueId("deadrs");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "/bin/memhog", "256", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => readCounter(pc, id), { what: "memhog filled", timeoutMs: 60_000 });
  const ref = `localhost/checkpoint/${id}:1`;
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await pc.ctrOk(["task", "kill", "-s", "KILL", id]);
  await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { what: "stopped" });
  await pc.ctrOk(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
  const bundle = join(pc.state, "io.containerd.runtime.v2.task", ns, id);
  const extractions = () => readdirSync(pc.layout.tmp).filter((n) => n.startsWith("ctrd-checkpoint"));
  const extractedBefore = extractions();
  const restore = pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  // CRIU is restoring once its log is in the restore's work directory: the daemon is killed then. The tree CRIU is
  // making has no runc state yet (the daemon writes it once CRIU is done).
  await waitFor(() => existsSync(join(bundle, "criu-restore-work", "restore.log")) || undefined, { what: "CRIU restoring", timeoutMs: 60_000, intervalMs: 2 });
  const shim = shimPids().find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(id));
  expect(shim).toBeDefined();
  expect(existsSync(`/run/containerd/runc/${ns}/${id}/state.json`)).toBe(false);
  process.kill(shim!, "SIGKILL");
  expect((await restore).exitCode).not.toBe(0);
  const inCgroup = () =>
    readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cgroup`, "utf8").includes(`/${ns}/${id}\n`);
        } catch {
          return false;
        }
      });
  for (const ctl of ["memory", "pids", "freezer", "unified"]) await waitFor(() => !existsSync(`/sys/fs/cgroup/${ctl}/${ns}/${id}`), { timeoutMs: 20_000, what: `cgroup ${ctl} removed` });
  expect(inCgroup()).toEqual([]);
  await waitFor(() => !existsSync(`/run/containerd/runc/${ns}/${id}`), { timeoutMs: 20_000, what: "runc state removed" });
  // `delete` unmounts the rootfs after it removed the runc state directory: waited for (read at once, the rootfs was
  // still mounted in one run).
  const mounted = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(`/${id}/`));
  await waitFor(() => mounted().length === 0 || undefined, { timeoutMs: 20_000, what: "the restore's mounts gone" });
  // containerd logs what its `delete` printed once it returned.
  await waitFor(() => /removed the cgroup \S+ of a restore its shim did not finish/.test(readFileSync(pc.layout.log, "utf8")) || undefined, { what: "the interrupted restore's cleanup logged", timeoutMs: 20_000 });
  // containerd's extraction of the checkpoint (256 MiB here), which the dead daemon would have removed, and
  // containerd never does: `delete` removed it (it was left before; a helper session saw 401 MB per such restore).
  expect(extractions()).toEqual(extractedBefore);
  expect(readFileSync(pc.layout.log, "utf8")).toMatch(/removed containerd's extraction of the checkpoint \S+ctrd-checkpoint\d+: the restore's shim died before it could/);
  await pc.ctr(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
  await pc.ctr(["images", "rm", "--sync", ref]);
}, 180_000);

/**
 * A memhog original, checkpointed, and the restore of a copy under a new name started beside it. `ctr containers
 * restore` keeps the checkpointed spec's cgroupsPath, the original's: the copy's restore makes a cgroup of its own
 * (/ns/<copy>, restore-container.ts restoredCgroupsPath), and its cleanup must find that one, not the spec's.
 */
async function restoreBesideOriginal(prefix: string) {
  const id = uniqueId(prefix);
  const copy = `${id}-r`;
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "/bin/memhog", "256", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => readCounter(pc, id), { what: "memhog filled", timeoutMs: 60_000 });
  const ref = `localhost/checkpoint/${id}:1`;
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  const originalPid = Number((await pc.ctrOk(["task", "ls"])).split("\n").find((l) => l.startsWith(`${id} `))!.trim().split(/\s+/)[1]);
  const originalNs = readlinkSync(`/proc/${originalPid}/ns/pid`);
  const bundle = join(pc.state, "io.containerd.runtime.v2.task", ns, copy);
  const restore = pc.ctr(["containers", "restore", "--live", copy, ref], { timeoutMs: 120_000 });
  return { id, copy, ref, originalPid, originalNs, bundle, restore };
}

/** After a failed restore of the copy: the original alive, RUNNING and counting, alone in its cgroup; then both removed. */
async function expectOriginalAloneThenRemove(o: { id: string; copy: string; ref: string; originalPid: number; originalNs: string }): Promise<void> {
  const nsOf = (p: string) => {
    try {
      return readlinkSync(`/proc/${p}/ns/pid`);
    } catch {
      return o.originalNs; // gone
    }
  };
  const cgroupProcs = () => readFileSync(`/sys/fs/cgroup/memory/${ns}/${o.id}/cgroup.procs`, "utf8").split("\n").filter((l) => l !== "");
  await waitFor(() => cgroupProcs().every((p) => nsOf(p) === o.originalNs) || undefined, { what: "only the original's processes in its cgroup", timeoutMs: 10_000 });
  expect(cgroupProcs().length).toBeGreaterThan(0);
  expect(processAlive(o.originalPid)).toBe(true);
  expect(await taskStatus(pc, o.id)).toBe("RUNNING");
  const n = readCounter(pc, o.id)!;
  await waitFor(() => (readCounter(pc, o.id) ?? 0) > n || undefined, { what: "the original's counter to go on" });
  await pc.ctr(["task", "rm", o.copy]);
  await pc.ctr(["containers", "rm", o.copy]);
  await pc.ctrOk(["task", "kill", "-s", "KILL", o.id]);
  await waitFor(async () => (await taskStatus(pc, o.id)) === "STOPPED", { what: "stopped" });
  await pc.ctrOk(["task", "rm", o.id]);
  await pc.ctrOk(["containers", "rm", o.id]);
  await pc.ctr(["images", "rm", "--sync", o.ref]);
  // With the original gone, its cgroup goes too: nothing of the copy is left in it.
  for (const ctl of ["memory", "pids", "freezer"]) await waitFor(() => !existsSync(`/sys/fs/cgroup/${ctl}/${ns}/${o.id}`), { timeoutMs: 20_000, what: `cgroup ${ctl} removed` });
}

test("shim killed in the middle of a restore under a new name beside the original: the original runs on, the copy's tree and cgroup go", async () => {
  // containerd's cleanup of the dead shim killed everything in the cgroup the spec names, the original's (seen here when
  // the copy shared it; the copy's own cgroup is recorded in the restore's marker, and only that one goes).
  const o = await restoreBesideOriginal("shared");
  await waitFor(() => existsSync(join(o.bundle, "criu-restore-work", "restore.log")) || undefined, { what: "CRIU restoring", timeoutMs: 60_000, intervalMs: 2 });
  const shim = shimPids().find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(o.copy));
  expect(shim).toBeDefined();
  process.kill(shim!, "SIGKILL");
  expect((await o.restore).exitCode).not.toBe(0);
  const cleaned = `removed the cgroup /${ns}/${o.copy} of a restore its shim did not finish`;
  await waitFor(() => readFileSync(pc.layout.log, "utf8").includes(cleaned) || undefined, { what: "the interrupted restore's cleanup logged", timeoutMs: 20_000 });
  // What is left, with the cleanup's own lines of containerd's log beside it (a fresh-clone CI run under load once
  // found one of them still there, and nothing said why).
  const left = ["memory", "pids", "freezer"].filter((ctl) => existsSync(`/sys/fs/cgroup/${ctl}/${ns}/${o.copy}`));
  const said = readFileSync(pc.layout.log, "utf8").split("\n").filter((l) => l.includes("did not finish") || l.includes(o.copy));
  expect({ left, said: left.length > 0 ? said : [] }).toEqual({ left: [], said: [] });
  await expectOriginalAloneThenRemove(o);
}, 180_000);

test("CRIU killed in the middle of a restore under a new name beside the original: the restore fails, the copy's tree goes, the original runs on", async () => {
  const o = await restoreBesideOriginal("sharedc");
  // CRIU itself: the `criu swrk` that the copy's daemon's helper runs. CRIU's forked restore processes are named
  // criu too, and CRIU rewrites its command line ("criu: restore --rpc ...") once it has the request (a look by
  // "swrk" missed it now and then): it is the one in this pid namespace, the tree is in the copy's own.
  const ownPidNs = readlinkSync("/proc/self/ns/pid");
  const isSwrk = (p: number) => {
    try {
      return readProcStat(p)?.comm === "criu" && readlinkSync(`/proc/${p}/ns/pid`) === ownPidNs;
    } catch {
      return false;
    }
  };
  const criu = await waitFor(
    () => {
      const shim = shimPids().find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(o.copy));
      return shim === undefined ? undefined : childrenOf(shim).flatMap(childrenOf).find(isSwrk);
    },
    { what: "CRIU restoring", timeoutMs: 60_000, intervalMs: 2 },
  );
  process.kill(criu, "SIGKILL");
  expect((await o.restore).exitCode).not.toBe(0);
  await expectOriginalAloneThenRemove(o);
}, 180_000);

test("CRIU killed in the middle of a dump: the checkpoint fails saying CRIU ended without an answer, and the container runs on, thawed; the next checkpoint works", async () => {
  const id = uniqueId("dumpkill");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "/bin/memhog", "256", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => readCounter(pc, id), { what: "memhog filled", timeoutMs: 60_000 });
  const shim = shimPids().find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(id));
  expect(shim).toBeDefined();
  const ref = `localhost/checkpoint/${id}:1`;
  const dumpLog = join(pc.state, "io.containerd.runtime.v2.task", ns, id, "criu-work", "dump.log");
  let r!: Awaited<ReturnType<typeof pc.ctr>>;
  for (let attempt = 1; ; attempt++) {
    const checkpoint = pc.ctr(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    // CRIU is the `criu` child of the daemon's helper (it renames its command line once it has the request).
    const criu = await waitFor(() => childrenOf(shim!).flatMap(childrenOf).find((p) => readProcStat(p)?.comm === "criu"), { what: "CRIU dumping", timeoutMs: 60_000, intervalMs: 1 });
    // Held still, then killed only while it has not yet begun to infect a task: from its first remote syscall on (its
    // log's "Dumping task", then "Parasite syscall_ip"), CRIU writes a syscall and a trap into the task's code, and
    // killed then it leaves the task to run them; the task dies of SIGTRAP (exit 133; 1 of 3 runs under load; the
    // same CRIU killed by hand there, 1 of 2). A CRIU seen too late is let go on, and the dump taken again.
    process.kill(criu, "SIGSTOP");
    const log = existsSync(dumpLog) ? readFileSync(dumpLog, "utf8") : "";
    if (!/Dumping task|Parasite/.test(log)) {
      process.kill(criu, "SIGKILL");
      r = await checkpoint;
      break;
    }
    console.log(`CRIU seen after it began to infect the task (attempt ${attempt}); dumping again`);
    process.kill(criu, "SIGCONT");
    expect((await checkpoint).exitCode).toBe(0);
    if (attempt === 10) throw new Error("CRIU was seen only after it began to infect the task, 10 dumps of 10");
    await pc.ctrOk(["images", "rm", "--sync", ref]);
  }
  expect(r.exitCode).not.toBe(0);
  // Before: "unavailable (rc -70, errno 17): Failed unpacking response: File exists; ...", libcriu's words. libcriu's
  // answer, or, when the helper is slow to reap CRIU (a loaded machine: 1 of 3 runs), the client's watchdog's words.
  expect(r.stderr).toMatch(/criu dump pid \d+: unavailable: CRIU( \(pid \d+\))? (ended without an answer: it was killed or crashed|killed by signal 9 before it answered)/);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  expect(readFileSync(`/sys/fs/cgroup/freezer/${ns}/${id}/freezer.state`, "utf8").trim()).toBe("THAWED");
  const n = readCounter(pc, id)!;
  await waitFor(() => (readCounter(pc, id) ?? 0) > n || undefined, { what: "the counter to go on" });
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await pc.ctrOk(["task", "kill", "-s", "KILL", id]);
  await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { what: "stopped" });
  await pc.ctrOk(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
  await pc.ctr(["images", "rm", "--sync", ref]);
}, 180_000);

test("50 containers started and removed concurrently: all succeed, nothing leaks", async () => {
  const before = { mounts: mountCount(), cgroups: cgroupCount(), runc: runcStateCount(), shims: new Set(shimPids()), fds: fdCount(pc.pid) };
  // Shims of earlier tests may still be on their way out: only new ones count as leaks.
  const newShims = () => shimPids().filter((p) => !before.shims.has(p));
  const ids = Array.from({ length: 50 }, () => uniqueId("par"));
  const results = await Promise.all(ids.map((id) => pc.ctr(["run", "--rm", "--runtime", RUNTIME, testImage, id, "sh", "-c", `echo ${id}`], { timeoutMs: 120_000 })));
  // Each run's whole outcome, and the shim's log lines of a run that lost its output (one run under load printed
  // nothing, its exit code unknown: a helper session's flake hunt, not reproduced in ~5000 runs).
  const outcomes = results.map((r, i) => ({ id: ids[i], stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode }));
  const wrong = outcomes.filter((o) => o.stdout !== `${o.id}\n` || o.stderr !== "" || o.exitCode !== 0);
  const logOf = (id: string) => readFileSync(pc.layout.log, "utf8").split("\n").filter((l) => l.includes(id) && /level=(warning|error)/.test(l));
  expect(wrong.map((o) => ({ ...o, log: logOf(o.id!) }))).toEqual([]);
  await waitFor(() => newShims().length === 0, { timeoutMs: 20_000, what: "shims gone" });
  await waitFor(() => fdCount(pc.pid) <= before.fds + 2, { timeoutMs: 20_000, what: "containerd fds back" });
  expect({ mounts: mountCount(), cgroups: cgroupCount(), runc: runcStateCount(), shims: newShims() }).toEqual({
    mounts: before.mounts,
    cgroups: before.cgroups,
    runc: before.runc,
    shims: [],
  });
}, 240_000);

test("bad input: clear errors with the right code, and the shim stays up", async () => {
  const id = uniqueId("bad");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "1000"]);
  const shim = shimPids().find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(id))!;

  // unknown exec id
  const k = await pc.ctr(["task", "kill", "--exec-id", "nope", id]);
  expect(k.exitCode).not.toBe(0);
  expect(k.stderr).toMatch(/exec nope.*not found/);

  // pause of a paused task
  await pc.ctrOk(["task", "pause", id]);
  const p2 = await pc.ctr(["task", "pause", id]);
  expect(p2.exitCode).not.toBe(0);
  expect(p2.stderr).toMatch(/failed precondition: cannot pause a paused container/);
  await pc.ctrOk(["task", "resume", id]);

  // exec with a missing binary: runc's error line reaches the user
  const e = await pc.ctr(["task", "exec", "--exec-id", "missing", id, "/no/such/binary"]);
  expect(e.exitCode).not.toBe(0);
  expect(e.stderr).toMatch(/no such file|not found/i);
  // A container whose binary is not there: in containerd's runc shim's words, which operators' alerts look for.
  const nobin = uniqueId("nobin");
  const c = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, testImage, nobin, "/no/such/binary"]);
  expect(c.exitCode).not.toBe(0);
  expect(c.stderr).toContain(`failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "/no/such/binary"`);
  await pc.ctr(["containers", "rm", nobin]);

  // kill of a stopped task
  await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", id]);
  await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { timeoutMs: 10_000 });
  const ks = await pc.ctr(["task", "kill", id]);
  expect(ks.exitCode).not.toBe(0);
  expect(ks.stderr).toMatch(/not found/);

  expect(existsSync(`/proc/${shim}`)).toBe(true);
  expect(await taskStatus(pc, id)).toBe("STOPPED");
  await pc.ctrOk(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);

  // invalid spec: a process whose cwd is not absolute (runc rejects the spec)
  const bad = uniqueId("spec");
  const r = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, "--cwd", "relative/dir", testImage, bad, "true"]);
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toMatch(/cwd|absolute|invalid/i);
  await pc.ctr(["containers", "rm", bad]);
}, 60_000);

test("Create with a broken bundle: NOT_FOUND / INVALID_ARGUMENT naming config.json, and the shim stays up", async () => {
  const id = uniqueId("host");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "1000"]);
  const address = readFileSync(join(pc.state, "io.containerd.runtime.v2.task", ns, id, "address"), "utf8").trim();
  const client = await connect(address.replace(/^unix:\/\//, ""));
  const dir = mkdtempSync(join(tmpdir(), "cryo-badbundle-"));
  try {
    const create = (bundle: string) =>
      client.call(TaskV2, "create", { id: uniqueId("broken"), bundle, rootfs: [], stdin: "", stdout: "", stderr: "" }, { namespace: ns, timeoutMs: 20_000 });
    const failure = async (bundle: string) => CryoError.from(await create(bundle).then(() => new Error("created"), (e: unknown) => e));

    // No plugin configured: the engine's check answers, NOT_FOUND (policy admission, when it runs first, reports a
    // missing spec as INVALID_ARGUMENT; the Create-time check of checkpoint options leaves it to the engine).
    const missing = await failure(dir);
    expect(missing.code).toBe(Code.NOT_FOUND);
    expect(missing.message).toContain("config.json");

    writeFileSync(join(dir, "config.json"), "{ not json");
    const broken = await failure(dir);
    expect(broken.code).toBe(Code.INVALID_ARGUMENT);
    expect(broken.message).toContain("config.json");

    writeFileSync(join(dir, "config.json"), "[1, 2]");
    expect((await failure(dir)).code).toBe(Code.INVALID_ARGUMENT);

    // The shim still serves its container.
    const st = await client.call(TaskV2, "state", { id }, { namespace: ns });
    expect(st.status).toBe(Status.RUNNING);
  } finally {
    client.close();
    rmSync(dir, { recursive: true, force: true });
    await pc.ctr(["task", "kill", "--signal", "SIGKILL", id]);
    await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { timeoutMs: 10_000 });
    await pc.ctrOk(["task", "rm", id]);
    await pc.ctrOk(["containers", "rm", id]);
  }
}, 60_000);
