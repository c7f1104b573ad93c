// The IO of a terminal process (src/shim/stdio.ts terminalIo) on a real pty of this machine.
import { expect, test } from "bun:test";
import { closeSync, constants, openSync } from "node:fs";
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

test("ResizePty never goes through the master's own descriptor, which the read stream may close by itself", () => {
  const { master, slave } = openPty();
  const slaveFd = openSync(slave, constants.O_RDWR | constants.O_NOCTTY);
  const io = terminalIo(master, { terminal: true, stdin: "", stdout: "", stderr: "" }, silent);
  try {
    io.resize(100, 30);
    expect(getWinsize(slaveFd)).toEqual({ rows: 30, cols: 100 });
    // As the ReadStream does when a read fails (EIO), a tick before its "error" and "close": the master's number
    // is closed under terminalIo. A resize in that window still reaches the terminal, not whatever file that
    // number names next (before: EBADF, or another file's ioctl).
    closeSync(master);
    io.resize(120, 40);
    expect(getWinsize(slaveFd)).toEqual({ rows: 40, cols: 120 });
  } finally {
    closeSync(slaveFd);
  }
});
