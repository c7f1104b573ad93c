/** Terminal window size through ioctl(2). */
import { libc, sysError } from "./libc.ts";

const TIOCGWINSZ = 0x5413n;
const TIOCSWINSZ = 0x5414n;

/** A terminal size in character cells. */
export interface Winsize {
  rows: number;
  cols: number;
}

/** Sets the window size of a terminal (the pty master received from runc), as ResizePty does. */
export function setWinsize(fd: number, rows: number, cols: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0 || rows > 0xffff || cols > 0xffff) {
    throw sysError(`ioctl(${fd}, TIOCSWINSZ) ${rows}x${cols}`, 22);
  }
  // struct winsize { unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel; }
  const ws = new Uint16Array([rows, cols, 0, 0]);
  if (libc.ioctl(fd, TIOCSWINSZ, ws) !== 0) throw sysError(`ioctl(${fd}, TIOCSWINSZ)`);
}

/** Reads the window size of a terminal. */
export function getWinsize(fd: number): Winsize {
  const ws = new Uint16Array(4);
  if (libc.ioctl(fd, TIOCGWINSZ, ws) !== 0) throw sysError(`ioctl(${fd}, TIOCGWINSZ)`);
  return { rows: ws[0] ?? 0, cols: ws[1] ?? 0 };
}
