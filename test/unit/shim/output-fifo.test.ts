/**
 * An exec's output copied into containerd's FIFO when the reader opens it late: after the process has written
 * everything and ended. containerd's reader opens the FIFO blocking; CRI's ExecSync never answered when the shim had
 * already written and closed it (a helper's churn: 1 in ~3500 execs; every time with the reader's opens delayed).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nullLogger } from "../../../src/shim/logger.ts";
import { prepareIo, READER_WAIT_MS } from "../../../src/shim/stdio.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cryo-outfifo-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("an exec's whole output reaches a reader that opens the FIFO only after the process ended", async () => {
  const stdout = join(dir, "stdout");
  expect(Bun.spawnSync(["mkfifo", stdout]).exitCode).toBe(0);
  const io = await prepareIo({ stdin: "", stdout, stderr: "", terminal: false }, { id: "c", namespace: "ns", log: nullLogger, copyOutput: true });
  const w = io.stdio[1];
  expect(typeof w).toBe("number");
  // The process: writes and ends before anyone reads (its write end is the only one once launched() closed the shim's).
  writeSync(w as number, "hello from the exec\n");
  const proc = await io.launched();
  await Bun.sleep(200);
  // The reader comes now, and opens blocking, as containerd's does.
  await using reader = Bun.spawn(["cat", stdout], { stdout: "pipe" });
  const got = await Promise.race([new Response(reader.stdout).text(), Bun.sleep(5_000).then(() => "no EOF within 5 s")]);
  expect(got).toBe("hello from the exec\n");
  await proc.close();
});

test("a reader that goes away does not stop the copy: the process's pipe is still drained, and the process ends", async () => {
  const stdout = join(dir, "stdout2");
  expect(Bun.spawnSync(["mkfifo", stdout]).exitCode).toBe(0);
  // A reader that reads one line and leaves.
  await using reader = Bun.spawn(["head", "-n", "1", stdout], { stdout: "pipe" });
  const io = await prepareIo({ stdin: "", stdout, stderr: "", terminal: false }, { id: "c", namespace: "ns", log: nullLogger, copyOutput: true });
  // The process: a line, then (once the reader has gone) 1 MiB, more than any pipe holds.
  await using proc = Bun.spawn(["sh", "-c", "echo first; sleep 0.5; head -c 1048576 /dev/zero"], { stdio: ["ignore", io.stdio[1] as number, "ignore"] });
  const launched = await io.launched();
  expect(await new Response(reader.stdout).text()).toBe("first\n");
  // Without the drain it would block on the full pipe for ever (or die of SIGPIPE).
  expect(await Promise.race([proc.exited, Bun.sleep(5_000).then(() => "still running after 5 s")])).toBe(0);
  await launched.close();
});

/** Makes the FIFO `name`, starts prepareIo for it as stdout while no one reads it, and gives it 200 ms: whether it has answered, and its promise. */
async function prepareWithoutReader(name: string, terminal: boolean) {
  const stdout = join(dir, name);
  expect(Bun.spawnSync(["mkfifo", stdout]).exitCode).toBe(0);
  let done = false;
  const preparing = prepareIo({ stdin: "", stdout, stderr: "", terminal }, { id: "c", namespace: "ns", log: nullLogger }).then((io) => ((done = true), io));
  await Bun.sleep(200);
  return { stdout, preparing, prepared: () => done };
}

test("an init's output FIFO is handed to the process once its reader is there: Create waits for a reader that opens late, and nothing written is lost", async () => {
  const { stdout, preparing, prepared } = await prepareWithoutReader("stdout3", false);
  // Before: the FIFO was opened at once; a process that wrote and ended before the reader's open lost its output.
  expect(prepared()).toBe(false);
  // The reader opens blocking, as containerd's does.
  await using reader = Bun.spawn(["cat", stdout], { stdout: "pipe" });
  const io = await preparing;
  // The process: writes and ends; launched() closes the shim's copy of its descriptor.
  writeSync(io.stdio[1] as number, "hello from the init\n");
  const proc = await io.launched();
  const got = await Promise.race([new Response(reader.stdout).text(), Bun.sleep(5_000).then(() => "no EOF within 5 s")]);
  expect(got).toBe("hello from the init\n");
  await proc.drained();
  await proc.close();
});

test("an init's output FIFOs that no reader opens are opened anyway after READER_WAIT_MS (waited once, for stdout), and the FIFO holds what is written", async () => {
  const stdout = join(dir, "stdout4");
  const stderr = join(dir, "stderr4");
  expect(Bun.spawnSync(["mkfifo", stdout, stderr]).exitCode).toBe(0);
  const warned: string[] = [];
  const log = { ...nullLogger, warn: (m: string) => void warned.push(m) };
  const io = await prepareIo({ stdin: "", stdout, stderr, terminal: false }, { id: "c", namespace: "ns", log });
  // The client is not reading (it went away): stderr was not waited for again.
  expect(warned).toEqual([`output FIFO ${stdout}: no reader after ${READER_WAIT_MS} ms; opened without one`, `output FIFO ${stderr}: no reader after 0 ms; opened without one`]);
  writeSync(io.stdio[1] as number, "x\n");
  await using reader = Bun.spawn(["head", "-n", "1", stdout], { stdout: "pipe" });
  expect(await new Response(reader.stdout).text()).toBe("x\n");
  const proc = await io.launched();
  await proc.close();
});

test("a terminal process is started once its output FIFO's reader is there (the console socket comes after it)", async () => {
  const { stdout, preparing, prepared } = await prepareWithoutReader("stdout5", true);
  // Before: the process started at once, and the exit was published while the reader's open was still pending, which
  // the client then cancelled: what the process wrote was copied into a FIFO no one read, and lost.
  expect(prepared()).toBe(false);
  await using reader = Bun.spawn(["cat", stdout], { stdout: "pipe" });
  const io = await preparing;
  expect(io.consoleSocket).toBeDefined();
  io.abort();
  reader.kill();
});
