/**
 * Per-thread kernel state that CRIU's images do not hold, carried by cryo across `ctr containers checkpoint --task`
 * and `ctr containers restore --live`: CPU affinity, timer slack and I/O priority of each thread (kstate-fixture.ts
 * sets them on two threads, with different values, and reads them back itself). What CRIU keeps by itself (nice,
 * scheduler policy, semaphore values) is asserted as well, and what neither keeps (the personality, a datagram queued
 * on a UDP socket, a child's SEM_UNDO) is asserted as lost, as docs/checkpoint-restore.md says. A personality the
 * running task depends on (linux32) fails the checkpoint with FAILED_PRECONDITION (src/checkpoint/personality-check.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { METADATA_FILE } from "../../src/checkpoint/index.ts";
import { formatCpuList } from "../../src/checkpoint/thread-state.ts";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { parsePreciseJson, stringifyPreciseJson } from "../../src/sys/precise-json.ts";
import { connect } from "../../src/ttrpc/index.ts";
import { compileStaticC, ctrErrorHasCode, ensureTestImage, readContainerFile, removeContainer, startPrivateContainerd, taskApiRestoreInputs, taskPid, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";
import { KSTATE_C } from "./kstate-fixture.ts";

/** persona HEX: takes personality(0xHEX), writes /tmp/ready, and waits. */
const PERSONA_C = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <sys/personality.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 2 || personality(strtoul(argv[1], NULL, 16)) < 0) { perror("personality"); return 1; }
  FILE *f = fopen("/tmp/ready", "w");
  if (f) fputs("ready\n", f), fclose(f);
  for (;;) pause();
}
`;

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

test("each thread's CPU affinity, timer slack and I/O priority come back after a restore, as do nice and policy; personality, a queued UDP datagram and a child's SEM_UNDO do not", async () => {
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
    // Lost, as docs/checkpoint-restore.md says (CRIU restores neither, and nothing outside the process can): the
    // personality (CRIU records it, misread, and never sets it) and the datagram queued on the UDP socket.
    expect(after.get("t0")).toMatchObject({ personality: "0x0", udp: String(-11) });
    // And the second child's SEM_UNDO: CRIU dumps no undo list, so its exit leaves the semaphore at 1.
    expect(await undoChild(id, 1)).toBe(1);
    // What the shim's log says: the two threads recorded at the dump and set at the restore, and the personality lost.
    const log = readFileSync(pc.layout.log, "utf8");
    expect(log).toContain(`checkpoint container ${id}: 2 threads with an affinity, timer slack or I/O priority of their own, recorded for the restore`);
    expect(log).toMatch(new RegExp(`restore container ${id} from .*: restored threads given the affinity, timer slack and I/O priority of the checkpoint`));
    expect(log).toMatch(new RegExp(`checkpoint container ${id}: tasks with a personality the restore loses .*0x00040000 \\(ADDR_NO_RANDOMIZE\\)`));
  } finally {
    await removeContainer(pc, id, { stopped: "not-running" });
  }
}, 120_000);

test("a process running under linux32 (PER_LINUX32), which a restore would lose, fails the checkpoint with FAILED_PRECONDITION naming it; it runs on, thawed", async () => {
  const id = uniqueId("persona");
  try {
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", `type=bind,src=${personaBin},dst=/bin/persona,options=rbind:ro`, testImage, id, "/bin/persona", "0008"], { timeoutMs: 60_000 });
    await waitFor(() => readContainerFile(pc, id, "/tmp/ready") === "ready", { what: "persona ready" });
    const r = await pc.ctr(["task", "checkpoint", id], { timeoutMs: 120_000 });
    expect(r.exitCode).not.toBe(0);
    expect(ctrErrorHasCode(r.stderr, "failed precondition")).toBe(true);
    expect(r.stderr).toMatch(/process 1 of the container runs with personality 0x00000008 \(PER_LINUX32\), which a restore would lose while the task depends on it/);
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    expect(readFileSync(`/sys/fs/cgroup/freezer/${pc.namespace}/${id}/freezer.state`, "utf8").trim()).toBe("THAWED");
  } finally {
    await removeContainer(pc, id, { stopped: "not-running" });
  }
}, 60_000);

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
