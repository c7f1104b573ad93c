/**
 * An upgrade of cryo while containers run: the shim binary at containerd's path is replaced (an installer's copy to a
 * temporary name, renamed over it). With per-namespace grouping, a container started afterwards goes to a daemon of
 * the new binary; the old daemon goes on serving the containers it has (a checkpoint of one among them too, restored
 * on the new daemon) and exits after its last one. Before, the namespace's one daemon (the old binary) took every new
 * container for as long as anything ran in the namespace.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readlinkSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultBinDir } from "../../src/containerd/private-containerd.ts";
import { ensureTestImage, parentPid, processAlive, readCounter, removeContainer, startPrivateContainerd, taskPid, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const SHIM = "containerd-shim-cryo-v2";
const isRoot = process.getuid?.() === 0;
let pc: PrivateContainerd;
let binDir: string;

beforeAll(async () => {
  if (!isRoot) return;
  // A copy of the build's shim in a directory of this test's own, so that replacing it touches no other test's binary.
  binDir = mkdtempSync(join(tmpdir(), "cryo-upgrade-bin-"));
  copyFileSync(join(defaultBinDir()!, SHIM), join(binDir, SHIM));
  pc = await startPrivateContainerd({ namespace: uniqueId("upgrade"), binDir, env: { CRYO_SHIM_GROUPING: "per-namespace", CRYO_SHIM_STANDBY_MS: "0", CRYO_SHIM_LINGER_MS: "500" } });
  await ensureTestImage(pc);
}, 120_000);

afterAll(async () => {
  await pc?.stop();
  if (binDir !== undefined) rmSync(binDir, { recursive: true, force: true });
}, 120_000);

const exeOf = (pid: number) => readlinkSync(`/proc/${pid}/exe`);

async function runCounter(id: string): Promise<number> {
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => readCounter(pc, id), { what: `${id}'s counter` });
  return parentPid((await taskPid(pc, id))!);
}

test.skipIf(!isRoot)("per-namespace: after the shim binary is replaced, a new container gets a daemon of the new binary; the old one serves its containers to the end, then exits", async () => {
  const a = uniqueId("old-a");
  const b = uniqueId("old-b");
  const oldDaemon = await runCounter(a);
  expect(await runCounter(b)).toBe(oldDaemon); // one daemon for the namespace
  expect(exeOf(oldDaemon)).toBe(join(binDir, SHIM));

  // The upgrade: the same bytes under a new inode, as an installer's rename leaves it.
  copyFileSync(join(binDir, SHIM), join(binDir, `${SHIM}.new`));
  renameSync(join(binDir, `${SHIM}.new`), join(binDir, SHIM));
  expect(exeOf(oldDaemon)).toBe(`${join(binDir, SHIM)} (deleted)`);

  const c = uniqueId("new-c");
  const d = uniqueId("new-d");
  const newDaemon = await runCounter(c);
  expect(newDaemon).not.toBe(oldDaemon);
  expect(exeOf(newDaemon)).toBe(join(binDir, SHIM));
  expect(await runCounter(d)).toBe(newDaemon); // the new binary's namespace daemon takes the next ones

  // The old daemon still serves the containers it has.
  const exec = await pc.ctrOk(["task", "exec", "--exec-id", "e", a, "cat", "/tmp/counter"], { timeoutMs: 60_000 });
  expect(Number(exec.trim())).toBeGreaterThan(0);
  await pc.ctrOk(["task", "pause", b]);
  expect(await taskStatus(pc, b)).toBe("PAUSED");
  await pc.ctrOk(["task", "resume", b]);
  expect(await taskStatus(pc, b)).toBe("RUNNING");

  // A checkpoint on the old daemon (its CRIU helper is its own executable, deleted from the disk by now), restored
  // under a new name on the new binary's daemon, counting on.
  const ref = `localhost/upgrade/${a}:1`;
  const beforeCheckpoint = readCounter(pc, a)!;
  await pc.ctrOk(["containers", "checkpoint", "--task", a, ref], { timeoutMs: 120_000 });
  const r = await pc.ctr(["containers", "restore", "--live", `${a}-r`, ref], { timeoutMs: 120_000 });
  expect({ code: r.exitCode, err: r.stderr }).toEqual({ code: 0, err: "" });
  expect(parentPid((await taskPid(pc, `${a}-r`))!)).toBe(newDaemon);
  await waitFor(() => (readCounter(pc, `${a}-r`) ?? 0) > beforeCheckpoint, { what: "the restored counter to go on from the checkpoint" });
  await removeContainer(pc, `${a}-r`, { stopped: "not-running" });
  await pc.ctrOk(["images", "rm", "--sync", ref]);

  await removeContainer(pc, a, { stopped: "not-running" });
  expect(processAlive(oldDaemon)).toBe(true);
  await removeContainer(pc, b, { stopped: "not-running" });
  await waitFor(() => !processAlive(oldDaemon), { what: "the old daemon to exit after its last container", timeoutMs: 30_000 });
  expect([await taskStatus(pc, c), await taskStatus(pc, d)]).toEqual(["RUNNING", "RUNNING"]);
  expect(processAlive(newDaemon)).toBe(true);

  await removeContainer(pc, c, { stopped: "not-running" });
  await removeContainer(pc, d, { stopped: "not-running" });
  await waitFor(() => !processAlive(newDaemon), { what: "the new daemon to exit after its last container", timeoutMs: 30_000 });
}, 180_000);
