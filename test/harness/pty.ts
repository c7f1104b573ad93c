/** A pseudo-terminal for tests: a client (ctr) run on a terminal the test reads. */
import { constants, openSync } from "node:fs";
import { libc } from "../../src/sys/libc.ts";

const TIOCSPTLCK = 0x40045431n;
const TIOCGPTN = 0x80045430n;

/** A pty master and the path of its slave (unlockpt and ptsname, as ioctls on /dev/ptmx). */
export function openPty(): { master: number; slave: string } {
  const master = openSync("/dev/ptmx", constants.O_RDWR | constants.O_NOCTTY);
  if (libc.ioctl(master, TIOCSPTLCK, new Int32Array([0])) !== 0) throw new Error("ioctl(TIOCSPTLCK) on /dev/ptmx failed");
  const n = new Uint32Array(1);
  if (libc.ioctl(master, TIOCGPTN, n) !== 0) throw new Error("ioctl(TIOCGPTN) on /dev/ptmx failed");
  return { master, slave: `/dev/pts/${n[0]}` };
}
