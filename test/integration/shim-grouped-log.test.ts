/**
 * A daemon shared by several containers keeps its log reaching containerd after the container that
 * launched it is deleted (containerd reads a container's `log` FIFO only while that container's task
 * connection lives): the daemon's later lines, here the exit of the second container at debug level,
 * show up in containerd's own log.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ensureTestImage, removeContainer, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

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
