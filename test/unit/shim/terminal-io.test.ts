// The IO of a terminal process (src/shim/stdio.ts terminalIo) on real ptys of this machine.
import { expect, test } from "bun:test";
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getWinsize } from "../../../src/sys/index.ts";
import { terminalIo } from "../../../src/shim/stdio.ts";
import { libc } from "../../../src/sys/libc.ts";

const silent = { debug() {}, info() {}, warn() {}, error() {} } as never;

const TIOCSPTLCK = 0x40045431n;
const TIOCGPTN = 0x80045430n;

/** A pty master and the path of its slave (unlockpt and ptsname, as ioctls on /dev/ptmx). */
function openPty(): { master: number; slave: string } {
  const master = openSync("/dev/ptmx", constants.O_RDWR | constants.O_NOCTTY);
  expect(libc.ioctl(master, TIOCSPTLCK, new Int32Array([0]))).toBe(0);
  const n = new Uint32Array(1);
  expect(libc.ioctl(master, TIOCGPTN, n)).toBe(0);
  return { master, slave: `/dev/pts/${n[0]}` };
}

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
