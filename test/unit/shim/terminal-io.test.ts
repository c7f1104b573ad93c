// The IO of a terminal process (src/shim/stdio.ts terminalIo) on real ptys of this machine.
import { expect, test } from "bun:test";
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getWinsize } from "../../../src/sys/index.ts";
import { terminalIo } from "../../../src/shim/stdio.ts";
import { openPty } from "../../harness/pty.ts";

const silent = { debug() {}, info() {}, warn() {}, error() {} } as never;

test("ResizePty reaches the terminal", () => {
  const { master, slave } = openPty();
  const slaveFd = openSync(slave, constants.O_RDWR | constants.O_NOCTTY);
  const io = terminalIo(master, { terminal: true, stdin: "", stdout: "", stderr: "" }, silent);
  try {
    io.resize(100, 30);
    expect(getWinsize(slaveFd)).toEqual({ rows: 30, cols: 100 });
    io.resize(120, 40);
    expect(getWinsize(slaveFd)).toEqual({ rows: 40, cols: 120 });
  } finally {
    io.close();
    closeSync(slaveFd);
  }
});

test("silent terminals hold none of Bun's thread-pool threads: file operations of the daemon go on; output and EOF still come", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-tty-"));
  const ptys = [0, 1, 2, 3, 4].map(() => openPty());
  const slaves = ptys.map((p) => openSync(p.slave, constants.O_RDWR | constants.O_NOCTTY));
  const fifos = ptys.map((_, i) => join(dir, `out${i}`));
  for (const f of fifos) expect(Bun.spawnSync(["mkfifo", f]).exitCode).toBe(0);
  const readers = fifos.map((f) => Bun.spawn(["cat", f], { stdout: "pipe" }));
  const ios = ptys.map((p, i) => terminalIo(p.master, { terminal: true, stdin: "", stdout: fifos[i]!, stderr: "" }, silent));
  try {
    await Bun.sleep(100);
    // Before (node:tty's ReadStream on a blocking master): each terminal's read sat in one of the pool's threads (two
    // on this machine), and this read of a file never came back.
    expect(await Promise.race([readFile("/proc/self/status", "utf8").then(() => "read"), Bun.sleep(3000).then(() => "no answer within 3 s")])).toBe("read");
    for (const [i, s] of slaves.entries()) writeSync(s, `hello ${i}\n`);
    for (const s of slaves) closeSync(s);
    const outs = await Promise.all(readers.map((r) => Promise.race([new Response(r.stdout).text(), Bun.sleep(5000).then(() => "no EOF within 5 s")])));
    expect(outs).toEqual(ptys.map((_, i) => `hello ${i}\r\n`));
    await Promise.all(ios.map((io) => io.drained()));
  } finally {
    for (const io of ios) io.close();
    for (const r of readers) r.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A FIFO opened by the test for reading (nonblocking), before the terminal's IO opens its end. */
function fifoReader(dir: string): { path: string; fd: number } {
  const path = join(dir, "out");
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  return { path, fd: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK) };
}

test("handedOn: resolves once a slow reader has read everything the process wrote before its terminal closed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-tty-"));
  const { master, slave } = openPty();
  const slaveFd = openSync(slave, constants.O_RDWR | constants.O_NOCTTY);
  Bun.spawnSync(["stty", "-F", slave, "raw"]);
  const out = fifoReader(dir);
  const io = terminalIo(master, { terminal: true, stdin: "", stdout: out.path, stderr: "" }, silent);
  let read = 0;
  let handedOn = false;
  let stop = false;
  let reading: Promise<void> | undefined;
  try {
    // 200 KiB: more than the FIFO (64 KiB) and the terminal hold; the writer leaves once the copy has taken the rest.
    const data = Buffer.alloc(200 * 1024, 0x6f);
    const writer = Bun.spawn(["sh", "-c", `head -c ${data.length} /dev/zero | tr '\\000' o > ${slave}`]);
    const buf = Buffer.alloc(4096);
    reading = (async () => {
      // 4 KiB every 2 ms: slower than the copy, never stalled.
      while (!stop) {
        try {
          const n = readSync(out.fd, buf);
          if (n === 0) return;
          read += n;
        } catch (err) {
          if ((err as { code?: string }).code !== "EAGAIN") throw err;
        }
        await Bun.sleep(2);
      }
    })();
    expect(await writer.exited).toBe(0);
    closeSync(slaveFd);
    await io.handedOn!();
    handedOn = true;
    // Before, with no handedOn, the exit was reported at this point with most of the output not yet read.
    expect(read).toBe(data.length);
  } finally {
    stop = true;
    await reading;
    if (!handedOn) closeSync(slaveFd);
    io.close();
    closeSync(out.fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("handedOn: resolves when the reader does not read, and when a process left behind holds the terminal", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-tty-"));
  const unread = openPty();
  const held = openPty();
  const unreadSlave = openSync(unread.slave, constants.O_RDWR | constants.O_NOCTTY);
  const heldSlave = openSync(held.slave, constants.O_RDWR | constants.O_NOCTTY);
  const out = fifoReader(dir);
  const ios = [terminalIo(unread.master, { terminal: true, stdin: "", stdout: out.path, stderr: "" }, silent), terminalIo(held.master, { terminal: true, stdin: "", stdout: "", stderr: "" }, silent)];
  try {
    writeSync(unreadSlave, "never read\n");
    closeSync(unreadSlave);
    const settled = await Promise.race([Promise.all(ios.map((io) => io.handedOn!())).then(() => "resolved"), Bun.sleep(10_000).then(() => "still waiting after 10 s")]);
    expect(settled).toBe("resolved");
  } finally {
    for (const io of ios) io.close();
    closeSync(heldSlave);
    closeSync(out.fd);
    rmSync(dir, { recursive: true, force: true });
  }
});
