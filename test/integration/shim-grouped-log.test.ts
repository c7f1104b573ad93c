/**
 * A daemon shared by several containers outlives the container that launched it: its log keeps reaching
 * containerd after that container is deleted (containerd reads a container's `log` FIFO only while that
 * container's task connection lives): the daemon's later lines, here the exit of the second container at
 * debug level, show up in containerd's own log. And it keeps launching its helpers (CRIU's) once that
 * container's bundle, where it was started, is gone; and it checkpoints and restores several of its
 * containers at once.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, readlinkSync } from "node:fs";
import { ensureTestImage, readContainerFile, readCounter, removeContainer, shimDaemonPids, startPrivateContainerd, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;

beforeAll(async () => {
  pc = await startPrivateContainerd({ namespace: uniqueId("grplog"), logLevel: "debug" });
  await ensureTestImage(pc);
}, 120_000);

afterAll(async () => {
  await pc?.stop();
}, 60_000);

/** containerd's log lines that came from a cryo shim daemon (containerd adds runtime=...). */
function shimLines(): string[] {
  return readFileSync(pc.layout.log, "utf8")
    .split("\n")
    .filter((l) => l.includes("runtime=io.containerd.cryo.v2"));
}

test("after the launching container is deleted, the shared daemon's lines still reach containerd's log", async () => {
  const first = uniqueId("first");
  const second = uniqueId("second");
  const run = (id: string) =>
    pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--annotation", "io.cryo.shim.grouping=per-namespace", testImage, id, "sleep", "100"], { timeoutMs: 60_000 });
  await run(first);
  await run(second);
  const address = (id: string) => readFileSync(`${pc.layout.state}/io.containerd.runtime.v2.task/${pc.namespace}/${id}/address`, "utf8");
  expect(address(second)).toBe(address(first)); // one daemon for both
  // While the first container lives, the daemon's lines arrive through its FIFO.
  await pc.ctrOk(["task", "kill", "-s", "KILL", first]);
  await waitFor(() => shimLines().some((l) => l.includes(`msg="container ${first} exited"`)), { timeoutMs: 10_000, what: `the line about ${first}'s exit` });

  await removeContainer(pc, first, { stopped: "not-running" });
  await pc.ctrOk(["task", "kill", "-s", "KILL", second]);
  // The daemon logs the exit at debug level; with the first container gone it must come through the second's FIFO.
  await waitFor(() => shimLines().some((l) => l.includes(`msg="container ${second} exited"`)), {
    timeoutMs: 10_000,
    what: `containerd's log to show the shared daemon's line about ${second}'s exit`,
  });
  await removeContainer(pc, second, { stopped: "not-running" });
}, 120_000);

test("after the launching container and its bundle are gone, the shared daemon still checkpoints and restores the others", async () => {
  const first = uniqueId("launcher");
  const other = uniqueId("other");
  const run = (id: string, args: string[]) =>
    pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--annotation", "io.cryo.shim.grouping=per-namespace", testImage, id, ...args], { timeoutMs: 60_000 });
  await run(first, ["sleep", "100"]);
  await run(other, ["/bin/memhog", "0", "/tmp/counter"]);
  // The daemon serving both (launched for the first, or for an earlier test's container of this namespace).
  const socket = readFileSync(`${pc.layout.state}/io.containerd.runtime.v2.task/${pc.namespace}/${first}/address`, "utf8").replace(/^unix:\/\//, "");
  const daemonPid = shimDaemonPids(pc.address, socket)[0];
  expect(daemonPid).toBeDefined();
  // The daemon works from / (it was started in its launching container's bundle, which containerd removes with it).
  expect(readlinkSync(`/proc/${daemonPid!}/cwd`)).toBe("/");
  await removeContainer(pc, first, { stopped: "not-running" });
  await waitFor(() => readCounter(pc, other), { what: "counter" });
  // Before, Bun refused to start the CRIU helper ("The current working directory was deleted"), failing both.
  const ref = `localhost/checkpoint/${other}:1`;
  await pc.ctrOk(["containers", "checkpoint", "--task", other, ref], { timeoutMs: 120_000 });
  await removeContainer(pc, other, { stopped: "not-running" });
  const r = await pc.ctr(["containers", "restore", "--live", other, ref], { timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(await taskStatus(pc, other)).toBe("RUNNING");
  await removeContainer(pc, other, { stopped: "not-running" });
  await pc.ctr(["images", "rm", "--sync", ref]);
}, 180_000);

test("three containers of one shared daemon, checkpointed at once and restored at once: each comes back with its memory", async () => {
  const ids = [1, 2, 3].map((i) => uniqueId(`conc${i}`));
  const refs = ids.map((id) => `localhost/checkpoint/${id}:1`);
  for (const id of ids) await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--annotation", "io.cryo.shim.grouping=per-namespace", testImage, id, "/bin/memhog", "32", "/tmp/counter"], { timeoutMs: 60_000 });
  const address = (id: string) => readFileSync(`${pc.layout.state}/io.containerd.runtime.v2.task/${pc.namespace}/${id}/address`, "utf8");
  expect(new Set(ids.map(address)).size).toBe(1);
  for (const id of ids) await waitFor(() => readCounter(pc, id), { what: `${id} filled` });
  // Each CRIU call with its own options (libcriu's criu_local_* handles), the three dumps at the same time.
  await Promise.all(ids.map((id, i) => pc.ctrOk(["containers", "checkpoint", "--task", id, refs[i]!], { timeoutMs: 120_000 })));
  for (const id of ids) await removeContainer(pc, id, { stopped: "not-running" });
  const restored = await Promise.all(ids.map((id, i) => pc.ctr(["containers", "restore", "--live", id, refs[i]!], { timeoutMs: 120_000 })));
  for (const r of restored) {
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
  }
  for (const id of ids) {
    await pc.ctrOk(["task", "kill", "-s", "USR1", id]);
    expect(await waitFor(() => readContainerFile(pc, id, "/tmp/counter.verify"), { what: `${id}'s verification` })).toMatch(/^ok \d+$/);
  }
  for (const id of ids) await removeContainer(pc, id, { stopped: "not-running" });
  for (const ref of refs) await pc.ctr(["images", "rm", "--sync", ref]);
}, 180_000);

