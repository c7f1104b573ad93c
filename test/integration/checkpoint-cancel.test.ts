/**
 * A dump that hangs in CRIU, cancelled. CRIU is made to hang for real, in the middle of its dump: the images
 * directory holds the init's first image (ids-1.img) as an empty file on which another process holds a read lease
 * (F_SETLEASE), so CRIU's open of it for writing blocks in the kernel's __break_lease, for the lease-break time (45 s),
 * with the container's tasks seized (frozen through the cgroup, then held in ptrace stops), its network locked (an
 * nftables table in its namespace) and CRIU's parasite in the init. The same happens when the images directory's
 * filesystem stops answering. (A FIFO at that name did the same until the shim refused, as of the thirty-third
 * session, a checkpoint directory that holds anything but regular files and directories.)
 *
 * - The request's deadline (ttrpc timeout_nano; containerd passes the client's, e.g. `ctr --timeout` or CRI's
 *   CheckpointContainer timeout) ends it: CRIU is killed, the container thawed and its network lock removed; the
 *   counter goes on, the shim answers and the next checkpoint works.
 * - The container's own timeout (`cryo.checkpoint/timeout`) ends it when the request has no deadline.
 * - `ctr task kill -s SIGKILL` ends it: the Checkpoint fails with CANCELLED and the task exits 137.
 * - Through containerd: `ctr --timeout` on `ctr task checkpoint` whose CRIU hangs before freezing (a FIFO where its
 *   log goes, in the work directory the container's annotation names); and containerd killed during such a
 *   hang: the dump is aborted and containerd's checkpoint directory, which it would have removed, goes.
 * - ctr killed during such a hang (no deadline): containerd removes its checkpoint directory as its request ends,
 *   and the shim, which no message tells, aborts the dump when that directory goes.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, CryoError } from "../../src/errors.ts";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { connect } from "../../src/ttrpc/index.ts";
import { compileStaticC } from "../harness/compile-c.ts";
import { PrivateContainerd, ensureTestImage, fixtureProgram, freePort, readContainerFile, readCounter, removeContainer, startPrivateContainerd, taskPid, taskStatus, testImage, uniqueId, waitFor, holdCriuAt, signalPending } from "../harness/index.ts";

setDefaultTimeout(120_000);
const RUNTIME = "io.containerd.cryo.v2";
/** Counts into /tmp/counter in place at the image's size (10 digits and a newline; `1<>` opens it without truncating it). */
const COUNTER = "i=0; while true; do i=$((i+1)); printf '%010d\\n' $i 1<>/tmp/counter; sleep 0.02; done";
let pc: PrivateContainerd;
let ns: string;
let dir: string;
/** The lease holder (LEASE_HOLDER_C), compiled in beforeAll. */
let leaseHolder: string;
/** Lease holders started by hangingImagesDir, ended (by pid) in afterAll. */
const holders: Bun.Subprocess[] = [];

/**
 * Holds a read lease on argv[1] until killed: an open of it for writing blocks in the kernel until the lease is given
 * up (its holder killed) or the lease-break time passes. SIGIO, which tells the holder of the break, is ignored.
 */
const LEASE_HOLDER_C = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
  signal(SIGIO, SIG_IGN);
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0 || fcntl(fd, F_SETLEASE, F_RDLCK) < 0) { perror(argv[1]); return 1; }
  puts("held");
  fflush(stdout);
  for (;;) pause();
}
`;

beforeAll(async () => {
  ns = uniqueId("ckcancel");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
  dir = mkdtempSync("/tmp/cryo-ckpt-cancel-");
  leaseHolder = compileStaticC(dir, "lease-holder", LEASE_HOLDER_C);
});

afterAll(async () => {
  for (const h of holders) h.kill("SIGKILL");
  await Promise.all(holders.map((h) => h.exited));
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function mkfifo(path: string): void {
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
}

/** The container's freezer state (v1), from runc's state. */
function freezerState(id: string): string {
  const state = JSON.parse(readFileSync(`/run/containerd/runc/${ns}/${id}/state.json`, "utf8")) as { cgroup_paths: Record<string, string> };
  return readFileSync(join(state.cgroup_paths.freezer!, "freezer.state"), "utf8").trim();
}

/**
 * CRIU processes (not in before) of this test's dump, waiting in the open of a FIFO (its log's, in a work directory) or
 * of a leased image. Its own is told by dir, its images directory (open) or work directory (its cwd): CRIU opens the one
 * and moves to the other before it opens its log. Any CRIU hung there counted before: another test's, beside this one
 * (another shard, another session's run), was taken for the dump's, held by gdb, signalled or killed.
 */
function hungCriu(before: Set<number>, dir: string): number[] {
  return criuPids().filter((p) => {
    try {
      return !before.has(p) && ["wait_for_partner", "__break_lease"].includes(readFileSync(`/proc/${p}/wchan`, "utf8")) && usesDir(p, dir);
    } catch {
      return false;
    }
  });
}

/** Whether pid works in dir (its cwd) or has it open. */
function usesDir(pid: number, dir: string): boolean {
  if (readlinkSync(`/proc/${pid}/cwd`) === dir) return true;
  return readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === dir;
    } catch {
      return false; // closed meanwhile
    }
  });
}

/** The run id CRIU pid has logged (the last "CRIU run id = ": `criu swrk` logs its own, then the request's), from its open log. */
function loggedRunId(pid: number): string | undefined {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const path = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!path.endsWith(".log")) continue;
      const ids = [...readFileSync(path, "utf8").matchAll(/CRIU run id = ([0-9a-f-]{36})/g)];
      if (ids.length > 0) return ids[ids.length - 1]![1];
    } catch {
      // closed meanwhile, or not a file
    }
  }
  return undefined;
}

/** CRIU's tables (`inet CRIU-...`) in the network namespace of pid. */
function criuTables(pid: number): string[] {
  const r = Bun.spawnSync(["nsenter", `--net=/proc/${pid}/ns/net`, "--", "nft", "list", "tables"]);
  expect(r.exitCode).toBe(0);
  return r.stdout.toString().split("\n").filter((l) => /^table inet CRIU-/.test(l.trim()));
}

/** Pids of the processes named criu. */
function criuPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, "utf8").trim() === "criu") out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

async function runCounter(id: string, extra: string[] = []): Promise<{ pid: number; client: Awaited<ReturnType<typeof connect>> }> {
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, ...extra, testImage, id, "sh", "-c", COUNTER]);
  const pid = (await taskPid(pc, id))!;
  await waitFor(() => (readCounter(pc, id) ?? 0) > 0, { timeoutMs: 10_000 });
  const bundle = join(pc.state, "io.containerd.runtime.v2.task", ns, id);
  const address = readFileSync(join(bundle, "address"), "utf8").trim();
  const client = await connect(address.replace(/^unix:\/\//, ""));
  return { pid, client };
}

/**
 * The counter's value, once the file holds one: the image's /tmp/counter is blank until COUNTER's first write. (When
 * COUNTER truncated the file before each write, a tree frozen in between (a dump's freeze, the abort's freeze before
 * CRIU is killed, a pause) left it empty until the shell ran again, and a wait for `undefined + 3` never ended; it now
 * rewrites the file in place.)
 */
function counterValue(id: string): Promise<number> {
  return waitFor(() => readCounter(pc, id), { timeoutMs: 10_000, what: `${id}'s counter` });
}

/** The counter moves on: more than 3 past its value now, within 10 s. */
async function counterMovesOn(id: string): Promise<void> {
  const n = await counterValue(id);
  await waitFor(() => (readCounter(pc, id) ?? n) > n + 3, { timeoutMs: 10_000, what: `${id}'s counter past ${n + 3}` });
}

/** An images directory whose image (the init's first by default) is leased by another process: CRIU blocks opening it, mid-dump. */
async function hangingImagesDir(name: string, imageName = "ids-1.img"): Promise<string> {
  const images = mkdtempSync(join(dir, `${name}-`));
  const image = join(images, imageName);
  writeFileSync(image, "");
  const holder = Bun.spawn([leaseHolder, image], { stdout: "pipe", stderr: "inherit" });
  holders.push(holder);
  // Its first line says the lease is held (it exits saying why not).
  const first = await holder.stdout.getReader().read();
  expect(new TextDecoder().decode(first.value ?? new Uint8Array())).toBe("held\n");
  return images;
}

/**
 * containerd's log once it holds every needle: the shim's lines reach it through the log FIFO, after the shim's calls
 * have returned (read at once, a line was missing in a helper's runs under load).
 */
async function containerdLog(...needles: (string | RegExp)[]): Promise<string> {
  const holds = (log: string) => needles.every((n) => (typeof n === "string" ? log.includes(n) : n.test(log)));
  return await waitFor(() => {
    const log = readFileSync(pc.layout.log, "utf8");
    return holds(log) ? log : undefined;
  }, { what: `containerd's log with ${needles.join(", ")}`, timeoutMs: 10_000 }).catch(() => readFileSync(pc.layout.log, "utf8"));
}

test("a dump hung in CRIU ends at the request's deadline: the container is thawed, its network unlocked, and runs on", async () => {
  const id = uniqueId("dl");
  // The lock asked for: a loopback-only namespace without TCP sockets would get none (checkpoint-dump.ts).
  const { pid, client } = await runCounter(id, ["--annotation", "cryo.checkpoint/network-lock=nftables"]);
  try {
    const criuBefore = new Set(criuPids());
    const images = await hangingImagesDir("dl");
    const t0 = performance.now();
    const call = client.call(TaskV2, "checkpoint", { id, path: images }, { namespace: ns, timeoutMs: 6000 });
    call.catch(() => {});
    // The hang is real: CRIU seized the tree and locked its network, and waits in the open of the FIFO (the
    // kernel's wait_for_partner); the counter stands still.
    await waitFor(() => criuTables(pid).length === 1 && hungCriu(criuBefore, images).length === 1, { timeoutMs: 5000 });
    const criu = hungCriu(criuBefore, images);
    const held = readContainerFile(pc, id, "/tmp/counter"); // undefined only before COUNTER's first write
    // The shim answers meanwhile.
    const state = await client.call(TaskV2, "state", { id }, { namespace: ns, timeoutMs: 2000 });
    expect(state.pid).toBe(pid);
    await Bun.sleep(500);
    expect(readContainerFile(pc, id, "/tmp/counter")).toBe(held);

    expect(await call.then(() => undefined, (e: unknown) => e)).toBeDefined();
    expect(performance.now() - t0).toBeLessThan(30_000); // it ended (the hang was for ever)

    // CRIU is gone, the container thawed and unlocked, and it goes on counting.
    await waitFor(() => criu.every((p) => !existsProc(p)), { timeoutMs: 10_000 });
    await waitFor(() => freezerState(id) === "THAWED" && criuTables(pid).length === 0, { timeoutMs: 10_000 });
    await counterMovesOn(id);
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    // What the daemon did, in containerd's log.
    const log = await containerdLog(`checkpoint container ${id}: aborted`, "cgroup thawed");
    expect(log).toContain(`checkpoint container ${id}: aborted`);
    expect(log).toContain("cgroup thawed");
    expect(log).toMatch(/CRIU's network lock \(nftables table inet CRIU-[0-9a-f-]{8,36}\) removed from the container's network namespace/);

    // The container still checkpoints, and exec works.
    const good = mkdtempSync(join(dir, "dl-good-"));
    await client.call(TaskV2, "checkpoint", { id, path: good }, { namespace: ns, timeoutMs: 60_000 });
    expect(readdirSync(good)).toContain("cryo-checkpoint.json");
    // (never empty: COUNTER rewrites it in place, and it has counted before)
    expect((await pc.ctrOk(["task", "exec", "--exec-id", "e1", id, "cat", "/tmp/counter"])).trim()).toMatch(/^\d+$/);
    expect(freezerState(id)).toBe("THAWED");
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

test("with network-lock iptables, the CRIU chain a killed dump left in the container's namespace is removed", async () => {
  const id = uniqueId("ipt");
  const { pid, client } = await runCounter(id, ["--annotation", "cryo.checkpoint/network-lock=iptables"]);
  const chain = () => Bun.spawnSync(["nsenter", `--net=/proc/${pid}/ns/net`, "--", "iptables", "-w", "-n", "-L", "CRIU"]).exitCode === 0;
  try {
    const criuBefore = new Set(criuPids());
    const images = await hangingImagesDir("ipt");
    const call = client.call(TaskV2, "checkpoint", { id, path: images }, { namespace: ns, timeoutMs: 4000 });
    call.catch(() => {});
    await waitFor(() => chain() && hungCriu(criuBefore, images).length === 1, { timeoutMs: 5000 });
    expect(((await call.then(() => undefined, (e: unknown) => e)) as CryoError).code).toBe(Code.DEADLINE_EXCEEDED);
    await waitFor(() => !chain(), { timeoutMs: 10_000 });
    const input = Bun.spawnSync(["nsenter", `--net=/proc/${pid}/ns/net`, "--", "iptables", "-w", "-S", "INPUT"]).stdout.toString();
    expect(input).not.toContain("CRIU");
    await counterMovesOn(id);
    expect(await containerdLog("CRIU's network lock (iptables chain CRIU) removed from the container's network namespace")).toContain("CRIU's network lock (iptables chain CRIU) removed from the container's network namespace");
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

/**
 * A paused counter (nftables lock) whose dump hangs in CRIU, which has thawed the cgroup: the tree is held by CRIU
 * alone. Returns the call's error (or undefined) and the hung CRIU's pid.
 */
async function pausedHungDump(prefix: string, timeoutMs: number): Promise<{ id: string; pid: number; client: Awaited<ReturnType<typeof connect>>; failed: Promise<CryoError | undefined>; criu: number }> {
  const id = uniqueId(prefix);
  const { pid, client } = await runCounter(id, ["--annotation", "cryo.checkpoint/network-lock=nftables"]);
  await pc.ctrOk(["task", "pause", id]);
  expect(freezerState(id)).toBe("FROZEN");
  const criuBefore = new Set(criuPids());
  const images = await hangingImagesDir(prefix);
  const failed = client.call(TaskV2, "checkpoint", { id, path: images }, { namespace: ns, timeoutMs }).then(
    () => undefined,
    (e: unknown) => e as CryoError,
  );
  await waitFor(() => hungCriu(criuBefore, images).length === 1 && criuTables(pid).length === 1 && freezerState(id) === "THAWED", { timeoutMs: 5000 });
  return { id, pid, client, failed, criu: hungCriu(criuBefore, images)[0]! };
}

/** Paused it was, paused it is after the dump's end: frozen, unlocked, standing still, PAUSED; resume brings it back. */
async function stillPaused(id: string, pid: number, criu: number): Promise<void> {
  await waitFor(() => criuTables(pid).length === 0 && !existsProc(criu), { timeoutMs: 10_000 });
  expect(freezerState(id)).toBe("FROZEN");
  const held = readContainerFile(pc, id, "/tmp/counter"); // undefined only before COUNTER's first write
  await Bun.sleep(500);
  expect(readContainerFile(pc, id, "/tmp/counter")).toBe(held);
  expect(await taskStatus(pc, id)).toBe("PAUSED");
  expect(await containerdLog("cgroup frozen again (the container was paused before)")).toContain("cgroup frozen again (the container was paused before)");
  await pc.ctrOk(["task", "resume", id]);
  await counterMovesOn(id);
}

test("a paused container whose dump hung is frozen again after the abort, as it was (CRIU thaws the cgroup once it holds the tree)", async () => {
  const { id, pid, client, failed, criu } = await pausedHungDump("ps", 4000);
  try {
    expect((await failed)?.code).toBe(Code.DEADLINE_EXCEEDED);
    await stillPaused(id, pid, criu);
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

test("CRIU killed from outside mid-dump (a crash, an operator's kill) of a paused container: frozen again and its network lock removed, as after an abort", async () => {
  const { id, pid, client, failed, criu } = await pausedHungDump("lost", 60_000);
  try {
    // Not the shim's doing: the dump was not aborted, CRIU just died, undoing nothing. Before, the tree ran on while
    // containerd said PAUSED (a helper session: counter 18, 47, 56), and the nftables lock cut its network.
    process.kill(criu, "SIGKILL");
    await undonePaused(await failed, "ended without an answer: it was killed or crashed", { id, pid, criu });
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

/** A paused container's dump that failed because CRIU was lost, saying `why`: undone, the container still paused. */
async function undonePaused(err: CryoError | undefined, why: string, c: { id: string; pid: number; criu: number }): Promise<void> {
  expect(err).toBeInstanceOf(CryoError);
  expect(err!.code).toBe(Code.UNAVAILABLE);
  expect(err!.message).toContain(why);
  expect(err!.message).toContain("after it: ");
  expect(err!.message).toContain("cgroup frozen again (the container was paused before)");
  expect(err!.message).not.toContain("not undone");
  expect(criuTables(c.pid)).toEqual([]);
  await stillPaused(c.id, c.pid, c.criu);
}

test("CRIU killed mid-dump of a paused container while its helper cannot answer yet (a loaded machine): the client's watchdog ends the call, and the dump is undone all the same", async () => {
  const { id, pid, client, failed, criu } = await pausedHungDump("lostwd", 60_000);
  const helper = Number(readFileSync(`/proc/${criu}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
  expect(readFileSync(`/proc/${helper}/cmdline`, "utf8")).toContain("__criu");
  try {
    // The helper stopped, CRIU's death stays a zombie and libcriu's answer does not come: the watchdog sees the zombie
    // twice and ends the call (under load the helper is merely slow: shim-resilience saw this end in 1 of 3 runs).
    // Before, that end was no CriuLostError: nothing was undone, the tree ran on while containerd said PAUSED, and
    // the nftables lock cut its network.
    process.kill(helper, "SIGSTOP");
    process.kill(criu, "SIGKILL");
    await undonePaused(await failed, `CRIU (pid ${criu}) killed by signal 9 before it answered`, { id, pid, criu });
  } finally {
    try {
      process.kill(helper, "SIGKILL"); // the watchdog's kill, if it did not come
    } catch {
      // gone
    }
    client.close();
    await removeContainer(pc, id);
  }
});

test("the shim's CRIU helper killed from outside mid-dump of a paused container: the CRIU it left goes, and the dump is undone", async () => {
  const { id, pid, client, failed, criu } = await pausedHungDump("helper", 60_000);
  try {
    // The helper (`__criu`, CRIU's parent): CRIU is handed to the daemon and works on, holding the tree. Before, the call
    // failed at once ("unknown: helper exited with SIGKILL") and CRIU, left alone, froze the tree again at its end
    // while containerd said RUNNING (a helper session).
    const helper = Number(readFileSync(`/proc/${criu}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    expect(readFileSync(`/proc/${helper}/cmdline`, "utf8")).toContain("__criu");
    process.kill(helper, "SIGKILL");
    const err = await failed;
    expect(err).toBeInstanceOf(CryoError);
    expect(err!.code).toBe(Code.UNAVAILABLE);
    expect(err!.message).toContain("helper exited with SIGKILL without a result");
    expect(err!.message).toContain(`the CRIU it had started (pid ${criu}`);
    expect(err!.message).toContain("cgroup frozen again (the container was paused before)");
    expect(err!.message).not.toContain("not undone");
    expect(existsProc(criu)).toBe(false);
    expect(criuTables(pid)).toEqual([]);
    await stillPaused(id, pid, criu);
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

test("tcp-established: a connection CRIU had put in TCP repair mode before it hung works on after the abort", async () => {
  const id = uniqueId("tcp");
  // tcp-client (pid 1, exec'd) talks to tcp-echo (pid 2) over 127.0.0.1 every 100 ms; any failure ends it.
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--annotation", "cryo.checkpoint/tcp-established=true", testImage, id, "sh", "-c", "/bin/tcp-echo 7000 & sleep 0.3; exec /bin/tcp-client 127.0.0.1 7000 /tmp/tcp"]);
  const tcpCount = () => Number(/^(\d+) ok$/.exec(readContainerFile(pc, id, "/tmp/tcp") ?? "")?.[1] ?? NaN);
  await waitFor(() => tcpCount() >= 5, { timeoutMs: 10_000, what: "tcp-client talking" });
  const pid = (await taskPid(pc, id))!;
  const bundle = join(pc.state, "io.containerd.runtime.v2.task", ns, id);
  const client = await connect(readFileSync(join(bundle, "address"), "utf8").trim().replace(/^unix:\/\//, ""));
  try {
    // CRIU dumps the init (its socket goes into repair mode), then hangs at tcp-echo's first image, named by its pid
    // in the container's namespace.
    const cgroupProcs = readFileSync(`/sys/fs/cgroup/pids/${ns}/${id}/cgroup.procs`, "utf8").trim().split("\n");
    const echo = cgroupProcs.find((p) => readFileSync(`/proc/${p}/comm`, "utf8").trim() === "tcp-echo")!;
    const echoVpid = /NSpid:\s+\d+\s+(\d+)/.exec(readFileSync(`/proc/${echo}/status`, "utf8"))![1];
    const images = await hangingImagesDir("tcp", `ids-${echoVpid}.img`);
    const criuBefore = new Set(criuPids());
    const call = client.call(TaskV2, "checkpoint", { id, path: images }, { namespace: ns, timeoutMs: 4000 });
    call.catch(() => {});
    await waitFor(() => hungCriu(criuBefore, images).length === 1, { timeoutMs: 5000 });
    expect(((await call.then(() => undefined, (e: unknown) => e)) as CryoError).code).toBe(Code.DEADLINE_EXCEEDED);
    await waitFor(() => hungCriu(criuBefore, images).length === 0 && criuTables(pid).length === 0, { timeoutMs: 10_000 });
    // The connection carries on: more echoes, no error, the task still running.
    const n = tcpCount();
    await waitFor(() => tcpCount() > n + 5, { timeoutMs: 10_000, what: `tcp-client past ${n + 5}: ${readContainerFile(pc, id, "/tmp/tcp")}` });
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    const repairOff = new RegExp(`checkpoint container ${id}: aborted.*TCP repair mode turned off on 1 socket`);
    expect(await containerdLog(repairOff)).toMatch(repairOff);
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

for (const lock of ["nftables", "iptables"] as const) {
test(`host network, tcp-established, ${lock} lock, CRIU log level 2: the connection's lock in the host's namespace goes too, and the connection works on`, async () => {
  const id = uniqueId("hn");
  const port = freePort();
  // The log level that would not name CRIU's run id (by which the host's table is found) or the connections it
  // locked with iptables is raised for the dump.
  await pc.ctrOk(["run", "-d", "--net-host", "--runtime", RUNTIME, "--annotation", "cryo.checkpoint/tcp-established=true", "--annotation", `cryo.checkpoint/network-lock=${lock}`, "--annotation", "cryo.checkpoint/log-level=2", testImage, id, "/bin/tcp-echo", String(port)]);
  const out = join(mkdtempSync(join(dir, "hn-")), "client");
  const tcpClient = Bun.spawn([await fixtureProgram("tcp-client"), "127.0.0.1", String(port), out], { stdio: ["ignore", "ignore", "ignore"] });
  const count = () => Number(/^(\d+) ok$/.exec(existsSync(out) ? readFileSync(out, "utf8").trim() : "")?.[1] ?? NaN);
  // The host's locks of this test's dump: CRIU's nftables table, named after its run id (cut short), or its iptables
  // DROP rules for this test's port. The host's other CRIU tables are other dumps' (this test's, in a run beside this
  // one, had one there before and none after).
  const hostLocks = (runId: string) =>
    lock === "nftables"
      ? [...Bun.spawnSync(["nft", "list", "tables"]).stdout.toString().matchAll(/table inet (CRIU-\S+)/g)].map((m) => m[1]!).filter((t) => `CRIU-${runId}`.startsWith(t))
      : Bun.spawnSync(["iptables", "-w", "-S"]).stdout.toString().split("\n").filter((l) => l.includes("0xc114") && l.includes(String(port)));
  const bundle = join(pc.state, "io.containerd.runtime.v2.task", ns, id);
  const client = await connect(readFileSync(join(bundle, "address"), "utf8").trim().replace(/^unix:\/\//, ""));
  try {
    await waitFor(() => count() >= 5, { timeoutMs: 10_000, what: "client talking to the container" });
    // CRIU dumps tcp-echo's sockets (the connection locked in the host's namespace, in repair mode), then hangs at
    // its memory.
    const images = await hangingImagesDir("hn-img", "pagemap-1.img");
    const criuBefore = new Set(criuPids());
    const call = client.call(TaskV2, "checkpoint", { id, path: images }, { namespace: ns, timeoutMs: 4000 });
    call.catch(() => {});
    let runId: string | undefined;
    await waitFor(() => {
      const [criu] = hungCriu(criuBefore, images);
      runId ??= criu === undefined ? undefined : loggedRunId(criu);
      return runId !== undefined && hostLocks(runId).length > 0;
    }, { timeoutMs: 5000, what: "CRIU hung with the connection locked" });
    expect(((await call.then(() => undefined, (e: unknown) => e)) as CryoError).code).toBe(Code.DEADLINE_EXCEEDED);
    await waitFor(() => hungCriu(criuBefore, images).length === 0, { timeoutMs: 10_000 });
    // The call failed at the client's own deadline; the shim undoes the dump after CRIU's end, and logs "aborted"
    // once it is done (one of the two iptables rules was seen still there when this looked right after CRIU's end).
    await waitFor(() => readFileSync(pc.layout.log, "utf8").includes(`checkpoint container ${id}: aborted`), { timeoutMs: 10_000, what: "the abort's undo" });
    expect(hostLocks(runId!)).toEqual([]);
    const n = count();
    await waitFor(() => count() > n + 5, { timeoutMs: 10_000, what: `client past ${n + 5}` });
    const log = await containerdLog(new RegExp(`checkpoint container ${id}: aborted.*TCP repair mode turned off on 1 socket`));
    expect(log).toMatch(new RegExp(`checkpoint container ${id}: aborted.*TCP repair mode turned off on 1 socket`));
    expect(log).toContain(`checkpoint container ${id}: CRIU log level 2 raised to 3`);
    expect(log).toMatch(
      new RegExp(`checkpoint container ${id}: aborted.*${lock === "nftables" ? "removed from the shim's network namespace" : "CRIU's iptables connection locks removed \\(2 of the 2 rules"}`),
    );
  } finally {
    tcpClient.kill();
    await tcpClient.exited;
    client.close();
    await removeContainer(pc, id);
  }
});
}

test("a paused container stands still through repeated checkpoints (its tasks, let go by the last dump, are not taken for stopped)", async () => {
  const id = uniqueId("prep");
  const { client } = await runCounter(id);
  try {
    await pc.ctrOk(["task", "pause", id]);
    const held = readContainerFile(pc, id, "/tmp/counter"); // undefined only before COUNTER's first write
    // Each dump lets the tree go frozen, in ptrace_stop without a tracer. The next one took those tasks for stopped ones
    // and thawed the cgroup for a ptrace seize: the counter moved by one every second checkpoint (runc's did not).
    for (let k = 0; k < 4; k++) {
      await client.call(TaskV2, "checkpoint", { id, path: mkdtempSync(join(dir, "prep-")) }, { namespace: ns, timeoutMs: 60_000 });
      expect(readContainerFile(pc, id, "/tmp/counter")).toBe(held);
      expect(freezerState(id)).toBe("FROZEN");
    }
    expect(readFileSync(pc.layout.log, "utf8")).not.toContain(`checkpoint container ${id}: stopped tasks`);
    await pc.ctrOk(["task", "resume", id]);
    await counterMovesOn(id);
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

test("the container's own timeout (cryo.checkpoint/timeout) aborts a hung dump whose request has no deadline", async () => {
  const id = uniqueId("to");
  const { client } = await runCounter(id, ["--annotation", "cryo.checkpoint/timeout=2s"]);
  try {
    const err = await client.call(TaskV2, "checkpoint", { id, path: await hangingImagesDir("to") }, { namespace: ns }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect((err as CryoError).message).toContain(`checkpoint container ${id}: cancelled: its timeout of 2 s passed`);
    // CRIU, blocked in the open of a FIFO, cannot take the stop request: it is killed once its grace has passed.
    expect((err as CryoError).message).toContain("CRIU killed during the dump (asked to stop, it had not ended 3 s later)");
    expect((err as CryoError).message).not.toContain("not undone");
    expect(freezerState(id)).toBe("THAWED");
    await counterMovesOn(id);
    // A dump that does not hang is not cut short by it.
    const good = mkdtempSync(join(dir, "to-good-"));
    await client.call(TaskV2, "checkpoint", { id, path: good }, { namespace: ns, timeoutMs: 60_000 });
    expect(JSON.parse(readFileSync(join(good, "cryo-checkpoint.json"), "utf8")).options.timeoutSeconds).toBe(2);
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

test("ctr task kill -s SIGKILL during a dump hung in CRIU cancels it: CANCELLED, and the task exits 137", async () => {
  const id = uniqueId("kl");
  const { pid, client } = await runCounter(id, ["--annotation", "cryo.checkpoint/network-lock=nftables"]);
  try {
    const images = await hangingImagesDir("kl");
    const criuBefore = new Set(criuPids());
    const call = client.call(TaskV2, "checkpoint", { id, path: images }, { namespace: ns });
    call.catch(() => {});
    await waitFor(() => criuTables(pid).length === 1 && hungCriu(criuBefore, images).length === 1, { timeoutMs: 5000 });
    await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", id]);
    const err = await call.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.CANCELLED);
    expect((err as CryoError).message).toContain("task killed while checkpointing");
    expect((err as CryoError).message).toContain("CRIU killed during the dump (its tasks are being killed)");
    await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { timeoutMs: 10_000 });
    const wait = await client.call(TaskV2, "wait", { id }, { namespace: ns, timeoutMs: 5000 });
    expect(wait.exitStatus).toBe(137);
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

test("ctr --timeout on ctr task checkpoint reaches the shim: a CRIU hung before the freeze is killed, the shim serves on", async () => {
  const id = uniqueId("ct");
  const work = mkdtempSync(join(dir, "ct-work-"));
  // CRIU's log in the work directory is a FIFO: CRIU's open of it blocks at the start of its run.
  mkfifo(join(work, "dump.log"));
  const { client } = await runCounter(id, ["--annotation", `cryo.checkpoint/work-path=${work}`]);
  try {
    const r = await pc.ctr(["--timeout", "5s", "task", "checkpoint", id], { timeoutMs: 60_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("deadline exceeded");
    // ctr paused the task before the Checkpoint, and its deferred Resume goes out with the same deadline (ctr's
    // client, with any runtime): mostly expired by then, which leaves the task paused until resumed; once in a while
    // ctr still had a few milliseconds (containerd's and the shim's deadlines end a little before ctr's), and it is
    // resumed. Either way containerd's state and the freezer's agree.
    const status = await taskStatus(pc, id);
    expect([status, freezerState(id)]).toEqual(status === "PAUSED" ? ["PAUSED", "FROZEN"] : ["RUNNING", "THAWED"]);
    if (status === "PAUSED") await pc.ctrOk(["task", "resume", id]);
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    await counterMovesOn(id);
    const log = await containerdLog(`checkpoint container ${id}: aborted`);
    expect(log).toContain(`checkpoint container ${id}: aborted`);
    const cwdIn = (p: number) => {
      try {
        return readlinkSync(`/proc/${p}/cwd`).startsWith(work);
      } catch {
        return false; // gone meanwhile
      }
    };
    expect(criuPids().filter(cwdIn)).toEqual([]);
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
});

/**
 * A counter whose checkpoint hangs at CRIU's log (a FIFO in its work directory), and `ctr task checkpoint` of it
 * started by `start`: returns once containerd's directory holds cryo's descriptors.json and CRIU runs.
 */
async function hungCtrCheckpoint<T>(prefix: string, start: (id: string) => T): Promise<{ id: string; work: string; ctr: T; made: string; criu: number[] }> {
  const id = uniqueId(prefix);
  const work = mkdtempSync(join(dir, `${prefix}-work-`));
  mkfifo(join(work, "dump.log"));
  const { client } = await runCounter(id, ["--annotation", `cryo.checkpoint/work-path=${work}`]);
  client.close();
  const ckptDirs = () => readdirSync(pc.layout.tmp).filter((n) => n.startsWith("ctd-checkpoint"));
  const before = new Set(ckptDirs());
  const criuBefore = new Set(criuPids());
  const ctr = start(id);
  // containerd made its directory and cryo wrote descriptors.json there; CRIU hangs at its log. Waited for as hung (in
  // the open of the FIFO), not as any new process named criu: one that is not the dump's (another test's, another
  // user's) let the caller be killed while the shim was between descriptors.json and its watch of the directory,
  // which then never started, and the dump was not aborted.
  const made = await waitFor(() => ckptDirs().find((n) => !before.has(n) && readdirSync(join(pc.layout.tmp, n)).includes("descriptors.json")), { timeoutMs: 10_000 });
  const criu = await waitFor(() => {
    const c = hungCriu(criuBefore, work);
    return c.length > 0 ? c : undefined;
  }, { timeoutMs: 10_000 });
  return { id, work, ctr, made, criu };
}

test("containerd killed during a hung ctr task checkpoint: the dump is aborted, and the checkpoint directory containerd cannot remove any more goes", async () => {
  const { id, ctr, made, criu } = await hungCtrCheckpoint("rs", (id) => pc.ctr(["task", "checkpoint", id], { timeoutMs: 60_000 }));
  // A containerd that dies (SIGKILL: a crash, the OOM killer) never removes its directory; on SIGTERM it does itself.
  const old = pc.pid;
  const d = pc.dir;
  process.kill(old, "SIGKILL");
  await waitFor(() => !existsProc(old), { timeoutMs: 20_000 });
  expect((await ctr).exitCode).not.toBe(0);
  await waitFor(() => !existsSync(join(pc.layout.tmp, made)) && criu.every((p) => !existsProc(p)), { timeoutMs: 10_000, what: `${made} removed, CRIU gone` });
  pc = await startPrivateContainerd({ dir: d, namespace: ns });
  // ctr paused the task before the Checkpoint; its Resume never came (containerd was gone).
  await waitFor(async () => (await taskStatus(pc, id)) !== undefined, { timeoutMs: 20_000 });
  if ((await taskStatus(pc, id)) === "PAUSED") await pc.ctrOk(["task", "resume", id]);
  await counterMovesOn(id);
  await removeContainer(pc, id);
});

test("a checkpoint that succeeded keeps its page store entry while containerd still removes its directory at the shim's late look (a big tree's images: it was taken for an abandoned one)", async () => {
  const id = uniqueId("slowrm");
  const { client } = await runCounter(id, ["--annotation", "cryo.checkpoint/local-pages=true"]);
  const images = join(dir, `ctd-checkpoint${Date.now() % 1_000_000_000}`);
  mkdirSync(images);
  let entry: string | undefined;
  try {
    await client.call(TaskV2, "checkpoint", { id, path: images }, { namespace: ns, timeoutMs: 60_000 });
    entry = (JSON.parse(readFileSync(join(images, "cryo-checkpoint.json"), "utf8")) as { localPages?: { dir: string } }).localPages?.dir;
    expect(entry).toBeDefined();
    // As containerd's RemoveAll after it made the image: CRIU's inventory among the first, the rest a file at a time,
    // still under way past the shim's late look (2 s after the checkpoint's end), never still for a second.
    const files = readdirSync(images).sort((a, b) => (a === "inventory.img" ? -1 : b === "inventory.img" ? 1 : 0));
    const step = Math.max(100, Math.ceil(3200 / files.length));
    for (const f of files) {
      rmSync(join(images, f), { recursive: true, force: true });
      await Bun.sleep(step);
    }
    rmSync(images, { recursive: true, force: true });
    await Bun.sleep(1500);
    expect(existsSync(entry!)).toBe(true);
    expect(readFileSync(pc.layout.log, "utf8")).not.toContain(`checkpoint container ${id}: its images directory`);
  } finally {
    client.close();
    if (entry) rmSync(entry, { recursive: true, force: true });
    rmSync(images, { recursive: true, force: true });
    await removeContainer(pc, id);
  }
});

test("ctr killed during a hung ctr task checkpoint: containerd removes its checkpoint directory, and the shim aborts the dump it was for", async () => {
  // No --timeout: ttrpc has no message for a caller that went away, and containerd's connection to the shim stays.
  const spawnCtr = (id: string) => Bun.spawn(["ctr", "--address", pc.address, "--namespace", ns, "task", "checkpoint", id], { stdout: "ignore", stderr: "ignore" });
  const { id, work, ctr, made, criu } = await hungCtrCheckpoint("ck", spawnCtr);
  try {
    // The bundle names containerd's directory while the dump is unanswered: a `delete` after the daemon's death
    // removes it (an orphaned CRIU may write into it after containerd's removal).
    const record = join(pc.state, "io.containerd.runtime.v2.task", ns, id, "cryo-dump-dir");
    expect(readFileSync(record, "utf8")).toBe(join(pc.layout.tmp, made));
    ctr.kill("SIGKILL");
    await ctr.exited;
    // containerd's Checkpoint returned with its cancelled caller and removed its directory; the shim saw it go.
    await waitFor(() => !existsSync(join(pc.layout.tmp, made)) && criu.every((p) => !existsProc(p)), { timeoutMs: 15_000, what: `${made} removed, CRIU gone` });
    const gone = `checkpoint container ${id}: aborted: checkpoint container ${id}: cancelled: its images directory ${join(pc.layout.tmp, made)} was removed during the dump`;
    expect(await containerdLog(gone)).toContain(gone);
    expect(existsSync(record)).toBe(false);
    // ctr paused the task before the Checkpoint and was killed before its Resume: paused it stays, and resumes.
    expect(await taskStatus(pc, id)).toBe("PAUSED");
    expect(freezerState(id)).toBe("FROZEN");
    await pc.ctrOk(["task", "resume", id]);
    await counterMovesOn(id);
    // The shim is not wedged: the next checkpoint (CRIU's log no longer a FIFO) works, and the task runs on.
    rmSync(join(work, "dump.log"));
    await pc.ctrOk(["task", "checkpoint", id], { timeoutMs: 60_000 });
    expect(await taskStatus(pc, id)).toBe("RUNNING");
  } finally {
    ctr.kill("SIGKILL");
    await removeContainer(pc, id);
  }
});

function existsProc(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

/** A dump whose CRIU gdb holds (heldDump), and what cleans it up. */
interface HeldDump {
  id: string;
  pid: number;
  client: Awaited<ReturnType<typeof connect>>;
  work: string;
  images: string;
  /** The Checkpoint call: resolves with its error, or undefined. */
  outcome: Promise<unknown>;
  criu: number;
  release: () => void;
  /** gdb's line for CRIU's stop at the function, with its arguments. */
  stop: string;
  /** CRIU's whole log (dump.txt in work), once CRIU has ended. */
  log: () => Promise<string>;
  [Symbol.asyncDispose]: () => Promise<void>;
}

/**
 * A counter (annotations: extra) whose Checkpoint through the task API has its CRIU held by gdb at fn (holdCriuAt):
 * CRIU's log is a FIFO in the container's work directory (drained into dump.txt there), so CRIU waits in its open,
 * before it touches the container, for gdb to attach. paused: the container is paused first.
 */
async function heldDump(prefix: string, fn: string, extra: string[] = [], paused = false, id = uniqueId(prefix)): Promise<HeldDump> {
  const work = mkdtempSync(join(dir, `${prefix}-work-`));
  mkfifo(join(work, "dump.log"));
  const { pid, client } = await runCounter(id, ["--annotation", `cryo.checkpoint/work-path=${work}`, ...extra]);
  const started: Bun.Subprocess[] = [];
  const dispose = async () => {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    client.close();
    await removeContainer(pc, id);
  };
  try {
    if (paused) await pc.ctrOk(["task", "pause", id]);
    const criuBefore = new Set(criuPids());
    const images = mkdtempSync(join(dir, `${prefix}-`));
    const outcome = client.call(TaskV2, "checkpoint", { id, path: images }, { namespace: ns, timeoutMs: 120_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const criu = (await waitFor(() => hungCriu(criuBefore, work)[0], { timeoutMs: 5000, what: "the dump's CRIU in the open of its log" }))!;
    const { release, stop, log } = await holdCriuAt(criu, join(work, "dump.log"), join(work, "dump.txt"), fn, started);
    return { id, pid, client, work, images, outcome, criu, release, stop, log, [Symbol.asyncDispose]: dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** The shim's stop request (SIGTERM) is pending on the held CRIU, or CRIU is gone (killed). */
async function stopRequested(criu: number): Promise<void> {
  await waitFor(() => signalPending(criu, 15) || !existsProc(criu), { timeoutMs: 15_000, what: "the shim's abort of CRIU" });
}

/** The container runs on after the dump: its init under the same pid, thawed and counting, no CRIU table left. */
async function runsOn(id: string, pid: number): Promise<void> {
  await counterMovesOn(id).catch(async (e: unknown) => {
    throw new Error(`${String(e)}; the task is ${await taskStatus(pc, id)}, ${(await pc.ctr(["task", "ls"])).stdout.split("\n").find((l) => l.startsWith(id)) ?? ""}`);
  });
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  expect(await taskPid(pc, id)).toBe(pid);
  expect(freezerState(id)).toBe("THAWED");
  expect(criuTables(pid)).toEqual([]);
}

/** The shim's "aborted" line for container id in containerd's log, once it is there. */
async function abortedLine(id: string): Promise<string> {
  const said = `checkpoint container ${id}: aborted: `;
  return (await containerdLog(said)).split("\n").find((l) => l.includes(said)) ?? "";
}

/**
 * gdb holds the dump's CRIU inside compel's infection of the container's init: in parasite_trap, after the init ran
 * a syscall CRIU injected through ptrace, stopped at the trap instruction that follows it, with CRIU's registers and
 * the injected code in it. The caller goes away there (its connection closed, as when ctr is killed). CRIU killed at
 * that point (cryo's abort before patch 0007) leaves the init to run that code untraced: it dies of SIGTRAP, exit
 * 133, once the cgroup thaws. Asked to stop with SIGTERM instead, CRIU finishes the syscall, stops at its next safe
 * point and undoes the dump itself.
 */
async function abortInInfection(paused: boolean): Promise<void> {
  await using d = await heldDump(paused ? "ijp" : "ij", "parasite_trap", [], paused);
  // The caller goes while CRIU is held there; the shim asks CRIU to stop (SIGTERM, pending while gdb holds it). The
  // old abort killed it instead.
  d.client.close();
  await stopRequested(d.criu);
  d.release();
  expect(await d.outcome).toBeDefined();
  await waitFor(() => !existsProc(d.criu), { timeoutMs: 10_000 });
  if (paused) {
    // Paused it was, paused it is: CRIU froze the cgroup again itself (it had thawed it once it held the tree).
    expect(freezerState(d.id)).toBe("FROZEN");
    expect(await taskStatus(pc, d.id)).toBe("PAUSED");
    const held = readContainerFile(pc, d.id, "/tmp/counter");
    await Bun.sleep(500);
    expect(readContainerFile(pc, d.id, "/tmp/counter")).toBe(held);
    await pc.ctrOk(["task", "resume", d.id]);
  }
  await runsOn(d.id, d.pid);
  // CRIU undid the dump itself: the shim had nothing left to undo.
  const criuLog = await d.log();
  expect(criuLog.includes("Dump aborted: signal 15 received") ? "" : criuLog.split("\n").slice(-40).join("\n")).toBe("");
  expect(await abortedLine(d.id)).toContain("CRIU stopped the dump at a safe point and put the container back as it was");
}

test("a caller that goes away while CRIU runs a syscall inside the container's init (compel's infection): CRIU stops at a safe point, and the task runs on", async () => {
  await abortInInfection(false);
});

test("the same for a paused container (every ctr checkpoint pauses first): CRIU freezes it again as it stops, and it stays PAUSED until resumed", async () => {
  await abortInInfection(true);
});

/**
 * The container's own timeout passes just as CRIU finishes the dump: gdb holds CRIU in cr_dump_finish past its last
 * look at the stop request (at cr_plugin_fini, the network already unlocked), and SIGTERM comes there. CRIU finishes
 * and answers that the dump is done; the caller, still waiting, gets the checkpoint (it failed before with "CRIU had
 * already finished the dump when it was asked to stop", and a dump without leave-running had ended the tasks by then).
 *
 * CRIU also reaches cr_plugin_fini when its dump failed or stopped earlier, with ret -1 (gdb shows the argument). The
 * timeout counts from CRIU's call, and gdb's attach and the dump have no bound on a loaded machine: a timeout that
 * came before the last look stopped the dump there ("Dump aborted" in CRIU's log), and one that came before CRIU set up
 * its stop handler (during gdb's attach) killed CRIU, never held. That dump is not this case: another container is
 * dumped with twice the timeout.
 */
test("the container's own timeout passing as CRIU finishes the dump: the finished checkpoint is kept and returned", async () => {
  for (let timeout = 6; ; timeout *= 2) {
    const id = uniqueId("fin");
    const held = await heldDump("fin", "cr_plugin_fini", ["--annotation", `cryo.checkpoint/timeout=${timeout}`], false, id).catch(async (err: unknown) => {
      const overtaken = `checkpoint container ${id}: aborted: checkpoint container ${id}: cancelled: its timeout of ${timeout} s passed`;
      if (timeout < 24 && (await containerdLog(overtaken)).includes(overtaken)) return undefined;
      throw err;
    });
    if (held === undefined) continue;
    await using d = held;
    if (!/\bret=(?:ret@entry=)?0\b/.test(d.stop)) {
      d.release();
      const log = await d.log();
      if (timeout < 24 && log.includes("Dump aborted: signal 15 received")) continue;
      // Failed otherwise (or overtaken every time): CRIU's words.
      expect({ stop: d.stop, log: log.split("\n").slice(-40).join("\n") }).toEqual({ stop: expect.stringContaining("ret=0"), log: "" });
    }
    // The timeout passes while CRIU is held there: the shim asks it to stop.
    await stopRequested(d.criu);
    d.release();
    const err = await d.outcome;
    expect(err === undefined ? "" : String(err)).toBe("");
    expect(readdirSync(d.images)).toContain("cryo-checkpoint.json");
    expect(await d.log()).toContain("Dumping finished successfully");
    // The task API's Checkpoint without options leaves the container running.
    await runsOn(d.id, d.pid);
    return;
  }
});

/**
 * The images directory removed while CRIU is held at the start of its dump (as containerd removes its directory when
 * ctr is killed early), and CRIU let go at once: CRIU fails on the missing directory before the shim's once-a-second
 * watch looks (a helper session saw it with ctr killed 0.01-0.1 s into a dump). The error names the removal, not
 * CRIU's "unknown (rc -52)".
 */
test("an images directory removed before the shim's watch looks: CRIU fails on it, and the error names the removal", async () => {
  await using d = await heldDump("rmd", "cr_dump_tasks");
  rmSync(d.images, { recursive: true, force: true });
  d.release();
  const err = await d.outcome;
  expect(err).toBeInstanceOf(CryoError);
  expect((err as CryoError).code).toBe(Code.CANCELLED);
  expect((err as CryoError).message).toContain(`its images directory ${d.images} was removed during the dump`);
  expect(await d.log()).toContain("Dumping FAILED");
  await runsOn(d.id, d.pid);
});

/**
 * The stop request reaches CRIU before it has set up its handler (gdb holds it at the start of cr_dump_tasks): CRIU
 * dies of SIGTERM without an answer (libcriu's ECOMM), having seized nothing. That is not CRIU's own end of the
 * dump: the shim takes it for killed and undoes what a killed CRIU may leave (the cgroup's freezer put back).
 */
test("a stop request that reaches CRIU before its handler is set up: CRIU dies of it, and the shim takes it for killed", async () => {
  await using d = await heldDump("early", "cr_dump_tasks");
  d.client.close();
  await stopRequested(d.criu);
  d.release();
  await waitFor(() => !existsProc(d.criu), { timeoutMs: 10_000, what: "CRIU gone" });
  expect(await d.log()).not.toContain("Dump aborted");
  await runsOn(d.id, d.pid);
  // The shim's line for a killed CRIU lists what it undid; CRIU's own stop has nothing to undo.
  const line = await abortedLine(d.id);
  expect(line).not.toContain("CRIU stopped the dump");
  expect(line).toContain("cgroup thawed");
});

/**
 * A Kill with SIGKILL that comes while an aborted dump's CRIU has been asked to stop and not yet answered (gdb holds it
 * inside compel's infection, so it cannot): the tasks die anyway, and CRIU is killed then rather than when the
 * ABORT_GRACE_MS it was given runs out (before, the Kill waited out that grace). The shim's line says why CRIU was killed.
 */
/** The held dump's caller goes, CRIU is asked to stop, then `ctr task kill -s SIGKILL`: CRIU is killed then, and the task stops. */
async function killWhileAskedToStop(d: HeldDump): Promise<void> {
  d.client.close();
  await stopRequested(d.criu);
  await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", d.id]);
  await waitFor(() => !existsProc(d.criu), { timeoutMs: 10_000, what: "CRIU gone" });
  const line = await abortedLine(d.id);
  expect(line).toContain("asked to stop, then its tasks were killed");
  expect(line).not.toContain("had not ended");
  await waitFor(async () => (await taskStatus(pc, d.id)) === "STOPPED", { timeoutMs: 10_000, what: "the task stopped" });
}

test("a Kill with SIGKILL while an aborted dump's CRIU is being waited for: CRIU is killed then, and the task stops", async () => {
  await using d = await heldDump("esc", "parasite_trap");
  await killWhileAskedToStop(d);
  // It died of the Kill's SIGKILL, given before the thaw: not of the SIGTRAP CRIU's death in the infection left it
  // (the Kill then failed with "process already finished").
  const bundle = join(pc.state, "io.containerd.runtime.v2.task", ns, d.id);
  const client = await connect(readFileSync(join(bundle, "address"), "utf8").trim().replace(/^unix:\/\//, ""));
  try {
    expect((await client.call(TaskV2, "wait", { id: d.id }, { namespace: ns, timeoutMs: 5000 })).exitStatus).toBe(137);
  } finally {
    client.close();
  }
});

/**
 * A post-copy dump (lazy pages served by the source's own page server) whose caller goes away while CRIU is inside
 * compel's infection, before the page server listens: CRIU is asked to stop there too (before, a post-copy dump was
 * always killed, and the init died of SIGTRAP), and the task runs on. Past the page server's start CRIU no longer looks
 * at the request, and the dump's owner kills it.
 */
test("a post-copy dump whose caller goes away before its page server listens: CRIU is asked to stop, and the task runs on", async () => {
  await using d = await heldDump("pcj", "parasite_trap", ["--annotation", "cryo.checkpoint/lazy-pages=true", "--annotation", `cryo.checkpoint/page-server=127.0.0.1:${freePort()}`]);
  d.client.close();
  await stopRequested(d.criu);
  d.release();
  await waitFor(() => !existsProc(d.criu), { timeoutMs: 10_000, what: "CRIU gone" });
  await runsOn(d.id, d.pid);
  const criuLog = await d.log();
  expect(criuLog.includes("Dump aborted: signal 15 received") ? "" : criuLog.split("\n").slice(-40).join("\n")).toBe("");
  expect(await abortedLine(d.id)).toContain("CRIU stopped the dump at a safe point and put the container back as it was");
});

/**
 * The same Kill after the dump's own abort: its timeout (cryo.checkpoint/timeout), not the caller, asked CRIU to stop
 * (gdb holds it inside compel's infection). The Kill is then the first abort of the container's checkpoint, but the
 * dump's call was aborted already: CRIU is killed then all the same, and the init dies of the Kill's SIGKILL (before,
 * CRIU was left its 3 s; found by a review session).
 */
test("a Kill with SIGKILL after the dump's own timeout asked CRIU to stop: CRIU is killed then, and the task exits 137", async () => {
  await using d = await heldDump("esct", "parasite_trap", ["--annotation", "cryo.checkpoint/timeout=6"]);
  await stopRequested(d.criu);
  await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", d.id]);
  await waitFor(() => !existsProc(d.criu), { timeoutMs: 10_000, what: "CRIU gone" });
  await waitFor(async () => (await taskStatus(pc, d.id)) === "STOPPED", { timeoutMs: 10_000, what: "the task stopped" });
  const exitStatus = (await d.client.call(TaskV2, "wait", { id: d.id }, { namespace: ns, timeoutMs: 5000 })).exitStatus;
  const err = await d.outcome;
  expect(err).toBeInstanceOf(CryoError);
  expect([exitStatus, (err as CryoError).message]).toEqual([137, expect.stringContaining("its timeout of 6 s passed")]);
  expect((err as CryoError).message).toContain("CRIU killed during the dump (asked to stop, then its tasks were killed)");
});

/**
 * A post-copy dump whose caller went away before its page server listens: CRIU is asked to stop (gdb holds it inside
 * compel's infection, so it cannot answer). A Kill with SIGKILL then kills it at once, as for any other dump (the
 * post-copy call had no killNow at first; found by a review session).
 */
test("a Kill with SIGKILL while an aborted post-copy dump's CRIU is being waited for: CRIU is killed then", async () => {
  await using d = await heldDump("pcesc", "parasite_trap", ["--annotation", "cryo.checkpoint/lazy-pages=true", "--annotation", `cryo.checkpoint/page-server=127.0.0.1:${freePort()}`]);
  await killWhileAskedToStop(d);
});
