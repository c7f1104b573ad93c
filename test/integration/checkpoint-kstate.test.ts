/**
 * Per-thread kernel state that CRIU's images do not hold, carried by cryo across `ctr containers checkpoint --task`
 * and `ctr containers restore --live`: CPU affinity, timer slack and I/O priority of each thread (kstate-fixture.ts
 * sets them on two threads, with different values, and reads them back itself). What CRIU keeps by itself (nice,
 * scheduler policy, semaphore values) is asserted as well, the personality that cryo's CRIU build carries (patch 0011),
 * and what neither keeps (a datagram queued on a UDP socket, a child's SEM_UNDO) is asserted as lost, as
 * docs/checkpoint-restore.md says. A restore by a CRIU without patch 0011 of a personality the task depends on fails
 * with FAILED_PRECONDITION (src/checkpoint/personality-check.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { METADATA_FILE } from "../../src/checkpoint/index.ts";
import { formatCpuList } from "../../src/checkpoint/thread-state.ts";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { parsePreciseJson, stringifyPreciseJson } from "../../src/sys/precise-json.ts";
import { connect } from "../../src/ttrpc/index.ts";
import { inspectCheckpoint, renderInspect } from "../../src/criu/index.ts";
import { checkpointCriuTar, compileStaticC, ctrErrorHasCode, ensureTestImage, readContainerFile, removeContainer, startPrivateContainerd, taskApiRestoreInputs, taskPid, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";
import { KSTATE_C } from "./kstate-fixture.ts";

/**
 * persona HEX [thread]: takes personality(0xHEX) (with "thread", only in a second thread, whose leader keeps 0), writes
 * /tmp/ready, and waits.
 */
const PERSONA_C = String.raw`
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <unistd.h>
static unsigned long want;
static void take(void) {
  if (personality(want) < 0) { perror("personality"); _exit(1); }
  FILE *f = fopen("/tmp/ready", "w");
  if (f) fputs("ready\n", f), fclose(f);
}
static void *second(void *arg) { (void)arg; take(); for (;;) pause(); }
int main(int argc, char **argv) {
  if (argc < 2) return 1;
  want = strtoul(argv[1], NULL, 16);
  if (argc > 2 && strcmp(argv[2], "thread") == 0) {
    pthread_t t;
    if (pthread_create(&t, NULL, second, NULL) != 0) return 1;
  } else {
    take();
  }
  for (;;) pause();
}
`;

/** The personality the host's /proc shows for each thread of pid (TIDs the host's), in thread order. */
function hostPersonalities(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b)
    .map((tid) => readFileSync(`/proc/${tid}/personality`, "utf8").trim());
}

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let dir: string;
let bin: string;
let personaBin: string;
const images: string[] = [];

beforeAll(async () => {
  pc = await startPrivateContainerd({ namespace: uniqueId("kstate") });
  await ensureTestImage(pc);
  dir = mkdtempSync(join(tmpdir(), "cryo-kstate-"));
  bin = compileStaticC(dir, "kstate", KSTATE_C);
  personaBin = compileStaticC(dir, "persona", PERSONA_C);
}, 120_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** The lines of a round of kstate's report ("round N tK ..."), keyed by K, once "round N done" is written. */
async function askRound(id: string, n: number): Promise<Map<string, Record<string, string>>> {
  process.kill((await taskPid(pc, id))!, "SIGUSR1");
  const lines = await waitFor(() => {
    const text = readContainerFile(pc, id, "/tmp/kstate.out");
    return text?.split("\n").includes(`round ${n} done`) ? text.split("\n") : undefined;
  }, { what: `kstate's round ${n}` });
  const threads = new Map<string, Record<string, string>>();
  for (const line of lines) {
    const m = new RegExp(`^round ${n} (t\\d) (.*)$`).exec(line);
    if (m) threads.set(m[1]!, Object.fromEntries(m[2]!.split(" ").map((kv) => kv.split("=") as [string, string])));
  }
  return threads;
}

/** Each thread's timer slack as the host's /proc shows it (/proc/TID/timerslack_ns, TID the host's). */
function hostTimerSlack(pid: number): number[] {
  const tids = Bun.spawnSync(["ls", `/proc/${pid}/task`]).stdout.toString().trim().split("\n").map(Number).sort((a, b) => a - b);
  return tids.map((tid) => Number(readFileSync(`/proc/${tid}/timerslack_ns`, "utf8").trim()));
}

/** Kills kstate's next SEM_UNDO child (the Kth SIGUSR2) and returns the semaphore's value after its exit. */
async function undoChild(id: string, k: number): Promise<number> {
  process.kill((await taskPid(pc, id))!, "SIGUSR2");
  const line = await waitFor(() => readContainerFile(pc, id, "/tmp/kstate.out")?.split("\n").find((l) => l.startsWith(`undo ${k} `)), { what: `kstate's undo ${k}` });
  return Number(/semval=(\d+)/.exec(line)![1]);
}

test("each thread's CPU affinity, timer slack and I/O priority come back after a restore, as do nice, policy and (cryo's CRIU) the personality; a queued UDP datagram and a child's SEM_UNDO do not", async () => {
  const id = uniqueId("kstate");
  const ref = `localhost/checkpoint/${id}:1`;
  // The second thread is bound to the last CPU the host has: on a one-CPU host the affinity stays the full set.
  const cpu = Number(readFileSync("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "utf8").trim().split(/[,-]/).at(-1));
  try {
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", `type=bind,src=${bin},dst=/bin/kstate,options=rbind:ro`, testImage, id, "/bin/kstate", String(cpu)], { timeoutMs: 60_000 });
    await waitFor(() => readContainerFile(pc, id, "/tmp/kstate.out")?.startsWith("ready"), { what: "kstate ready" });
    // Before any checkpoint, the first child's exit undoes its SEM_UNDO: the semaphore goes back to 0.
    expect(await undoChild(id, 0)).toBe(0);
    const before = await askRound(id, 1);
    const slackBefore = hostTimerSlack((await taskPid(pc, id))!);
    expect(before.get("t0")).toMatchObject({ slack: "123457", ioprio: String((2 << 13) | 3), nice: "3", policy: "0", personality: "0x40000", semvals: "0,1", udp: "6" });
    expect(before.get("t1")).toMatchObject({ cpus: String(cpu), slack: "777777", ioprio: String((2 << 13) | 6), nice: "7", policy: "3" });
    expect(slackBefore).toEqual([123457, 777777]);
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    await removeContainer(pc, id, { stopped: "not-running" });
    const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    // The restored rootfs is a new one (no --rw): its /tmp/kstate.out holds only what the restored process writes.
    const after = await askRound(id, 2);
    const slackAfter = hostTimerSlack((await taskPid(pc, id))!);
    // Carried by cryo (CRIU restores none of them): each thread's own affinity, timer slack and I/O priority.
    // Restored by CRIU: nice, scheduler policy, the semaphores' values, the thread ids.
    for (const t of ["t0", "t1"]) {
      const { personality: _p, udp: _u, ...kept } = before.get(t)!;
      expect(after.get(t)).toMatchObject(kept);
    }
    expect(slackAfter).toEqual(slackBefore);
    // Set again by cryo's CRIU (patch 0011; upstream's records it misread and never sets it): the process's personality,
    // which the second thread, cloned from the first in the restorer, has too.
    expect(after.get("t0")).toMatchObject({ personality: "0x40000" });
    expect(after.get("t1")).toMatchObject({ personality: "0x40000" });
    // Lost, as docs/checkpoint-restore.md says (CRIU does not dump it, and nothing outside the process can queue it with
    // its sender's address): the datagram queued on the UDP socket.
    expect(after.get("t0")).toMatchObject({ udp: String(-11) });
    // And the second child's SEM_UNDO: CRIU dumps no undo list, so its exit leaves the semaphore at 1.
    expect(await undoChild(id, 1)).toBe(1);
    // What the shim's log says: the two threads recorded at the dump and set at the restore, and no personality lost.
    const log = readFileSync(pc.layout.log, "utf8");
    expect(log).toContain(`checkpoint container ${id}: 2 threads with an affinity, timer slack or I/O priority of their own, recorded for the restore`);
    expect(log).toMatch(new RegExp(`restore container ${id} from .*: restored threads given the affinity, timer slack and I/O priority of the checkpoint`));
    expect(log).not.toMatch(new RegExp(`container ${id}.*personality`));
  } finally {
    await removeContainer(pc, id, { stopped: "not-running" });
  }
}, 120_000);

test("a process running under linux32 (PER_LINUX32) is checkpointed and restored under it (cryo's CRIU, patch 0011)", async () => {
  const id = uniqueId("persona");
  const ref = `localhost/checkpoint/${id}:1`;
  try {
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", `type=bind,src=${personaBin},dst=/bin/persona,options=rbind:ro`, testImage, id, "/bin/persona", "0008"], { timeoutMs: 60_000 });
    await waitFor(() => readContainerFile(pc, id, "/tmp/ready") === "ready", { what: "persona ready" });
    expect(hostPersonalities((await taskPid(pc, id))!)).toEqual(["00000008"]);
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    // cryo inspect shows what the checkpoint recorded.
    const extracted = mkdtempSync(join(dir, "persona-images-"));
    expect(Bun.spawnSync(["tar", "-xf", (await checkpointCriuTar(pc, ref)).path, "-C", extracted]).exitCode).toBe(0);
    const inspected = await inspectCheckpoint(extracted);
    expect(inspected.processes.map((p) => [p.pid, p.comm, p.personality])).toEqual([[1, "persona", 8]]);
    expect(renderInspect(inspected)).toContain("1 persona (pgid 1, sid 1, personality 0x00000008)");
    await removeContainer(pc, id, { stopped: "not-running" });
    const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect([r.exitCode, r.stderr]).toEqual([0, ""]);
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    // Before patch 0011 the restored task read 00000000 here (and the checkpoint was refused as losing it).
    expect(hostPersonalities((await taskPid(pc, id))!)).toEqual(["00000008"]);
    expect(readFileSync(pc.layout.log, "utf8")).not.toMatch(new RegExp(`container ${id}.*personality`));
  } finally {
    await removeContainer(pc, id, { stopped: "not-running" });
  }
}, 120_000);

test("a thread under linux32 beside a leader that is not: each comes back with its own personality (cryo's CRIU, patch 0011)", async () => {
  const id = uniqueId("persona-thread");
  const ref = `localhost/checkpoint/${id}:1`;
  try {
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", `type=bind,src=${personaBin},dst=/bin/persona,options=rbind:ro`, testImage, id, "/bin/persona", "0008", "thread"], { timeoutMs: 60_000 });
    await waitFor(() => readContainerFile(pc, id, "/tmp/ready") === "ready", { what: "persona ready" });
    expect(hostPersonalities((await taskPid(pc, id))!)).toEqual(["00000000", "00000008"]);
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    await removeContainer(pc, id, { stopped: "not-running" });
    const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect([r.exitCode, r.stderr]).toEqual([0, ""]);
    // Set in each thread by the restorer (with the leader's value alone, the second thread would inherit 00000000).
    expect(hostPersonalities((await taskPid(pc, id))!)).toEqual(["00000000", "00000008"]);
  } finally {
    await removeContainer(pc, id, { stopped: "not-running" });
  }
}, 120_000);

test("a checkpoint that recorded a linux32 personality is refused with FAILED_PRECONDITION by a CRIU without patch 0011, before anything is made", async () => {
  // A containerd whose shims take their CRIU from CRYO_CRIU: cryo's build through a link, beside a copy of its build
  // record (criu.build), which says what the build carries. The dump sees patch 0011 there; the record is then
  // rewritten without it, as a host with an older build of cryo's CRIU would have it.
  const criuDir = mkdtempSync(join(dir, "criu-"));
  const criu = join(criuDir, "criu");
  Bun.spawnSync(["ln", "-s", "/usr/local/libexec/cryo/criu", criu]);
  const record = readFileSync("/usr/local/libexec/cryo/criu.build", "utf8");
  expect(record).toContain("0011-dump-and-restore-the-personality.patch");
  writeFileSync(join(criuDir, "criu.build"), record);
  const other = await startPrivateContainerd({ namespace: uniqueId("kstate-criu"), env: { CRYO_CRIU: criu } });
  const id = uniqueId("persona-old");
  const ref = `localhost/checkpoint/${id}:1`;
  try {
    await ensureTestImage(other);
    await other.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", `type=bind,src=${personaBin},dst=/bin/persona,options=rbind:ro`, testImage, id, "/bin/persona", "0008"], { timeoutMs: 60_000 });
    await waitFor(() => readContainerFile(other, id, "/tmp/ready") === "ready", { what: "persona ready" });
    await other.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    await removeContainer(other, id, { stopped: "not-running" });
    writeFileSync(join(criuDir, "criu.build"), record.split("\n").filter((l) => !l.startsWith("0011-")).join("\n"));
    const r = await other.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect(r.exitCode).not.toBe(0);
    expect(ctrErrorHasCode(r.stderr, "failed precondition")).toBe(true);
    expect(r.stderr).toMatch(/process 1 of the checkpoint ran with personality 0x00000008 \(PER_LINUX32\), which it depends on while it runs: this host's CRIU does not restore a task's personality/);
    // Refused at Start (the checks run once Create has answered): the task stays CREATED, and nothing was made.
    expect(await taskStatus(other, id)).toBe("CREATED");
    expect(await taskPid(other, id)).toBeUndefined();
    for (const ctl of ["memory", "pids", "freezer", "cpu,cpuacct"]) expect(existsSync(`/sys/fs/cgroup/${ctl}/${other.namespace}/${id}`)).toBe(false);
    expect(existsSync(join("/run/containerd/runc", other.namespace, id))).toBe(false);
    await other.ctrOk(["task", "rm", id]);
    await other.ctrOk(["containers", "rm", id]);
    // With the record saying 0011 again, the same checkpoint restores, under linux32.
    writeFileSync(join(criuDir, "criu.build"), record);
    const again = await other.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect([again.exitCode, again.stderr]).toEqual([0, ""]);
    expect(hostPersonalities((await taskPid(other, id))!)).toEqual(["00000008"]);
  } finally {
    await removeContainer(other, id, { stopped: "not-running", ignoreRmFailure: true });
    await other.ctr(["images", "rm", "--sync", ref]);
    await other.stop();
  }
}, 180_000);

test("a checkpoint naming CPUs this host lacks (its metadata edited as a bigger host's would read) restores: the kernel keeps the CPUs there are, none left keeps the thread where it was, both said in the log", async () => {
  const src = uniqueId("kstate-src");
  const restoredId = uniqueId("kstate-cpus");
  const ref = `localhost/checkpoint/${src}:1`;
  const work = mkdtempSync(join(dir, "cpus-"));
  const cpu = Number(readFileSync("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "utf8").trim().split(/[,-]/).at(-1));
  const cpusOf = (tid: number) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${tid}/status`, "utf8"))![1];
  try {
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", `type=bind,src=${bin},dst=/bin/kstate,options=rbind:ro`, testImage, src, "/bin/kstate", String(cpu)], { timeoutMs: 60_000 });
    await waitFor(() => readContainerFile(pc, src, "/tmp/kstate.out")?.startsWith("ready"), { what: "kstate ready" });
    const before = await askRound(src, 1);
    // The main thread's affinity (every CPU of the container's cpuset), as a cpu list.
    const allCpus = formatCpuList(before.get("t0")!.cpus!.split(",").map(Number));
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", src, ref], { timeoutMs: 120_000 });
    const inputs = await taskApiRestoreInputs(pc, pc.namespace, src, ref, work, `/${pc.namespace}/${restoredId}`);
    // The second thread recorded on its CPU and CPU 100, the main thread on CPUs 200-201 alone (with its timer slack).
    const metaPath = join(inputs.images, METADATA_FILE);
    const meta = parsePreciseJson(readFileSync(metaPath, "utf8")) as { threads: { tid: number; cpus?: string; timerSlackNs?: number }[] };
    const t1 = Number(before.get("t1")!.tid);
    expect(meta.threads.map((t) => t.tid).sort((a, b) => a - b)).toEqual([1, t1]);
    for (const t of meta.threads) t.cpus = t.tid === 1 ? "200-201" : `${cpu},100`;
    writeFileSync(metaPath, stringifyPreciseJson(meta, 2));
    const client = await connect(readFileSync(join(inputs.srcBundle, "address"), "utf8").trim().replace(/^unix:\/\//, ""));
    const call = (m: "create" | "start" | "kill" | "wait" | "delete", req: object, timeoutMs = 60_000) => client.call(TaskV2, m, req as never, { namespace: pc.namespace, timeoutMs });
    try {
      await call("create", { id: restoredId, bundle: inputs.bundle, rootfs: [], terminal: false, stdin: "", stdout: "", stderr: "", checkpoint: inputs.images });
      const { pid } = (await call("start", { id: restoredId }, 120_000)) as { pid: number };
      const tids = readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
      expect(tids.length).toBe(2);
      // The main thread keeps what CRIU gave it (the whole set), with its timer slack; the second is on its CPU.
      expect(tids.map(cpusOf)).toEqual([allCpus, String(cpu)]);
      expect(readFileSync(`/proc/${tids[0]}/timerslack_ns`, "utf8").trim()).toBe("123457");
      expect(readFileSync(`/proc/${tids[1]}/timerslack_ns`, "utf8").trim()).toBe("777777");
      const log = readFileSync(pc.layout.log, "utf8");
      expect(log).toContain(`thread ${t1}: CPUs 100 of its affinity ${cpu},100 may not be used here (the container's cpuset, online): bound to ${cpu}`);
      expect(log).toContain(`thread 1: none of its CPUs 200-201 may be used here (the container's cpuset, online): left on ${allCpus}`);
    } finally {
      await call("kill", { id: restoredId, signal: 9 }).then(() => call("wait", { id: restoredId }, 30_000)).catch(() => {});
      await call("delete", { id: restoredId }).catch(() => {});
      client.close();
    }
  } finally {
    await removeContainer(pc, src, { stopped: "not-running" });
    rmSync(work, { recursive: true, force: true });
  }
}, 120_000);
