/** File descriptor helpers: FIFOs without blocking, O_NONBLOCK, dup, pipes, close. */
import { constants, closeSync, openSync } from "node:fs";
import { CryoError, notFound, unavailable } from "../errors.ts";
import { libc, sysError } from "./libc.ts";

const F_GETFL = 3;
const F_SETFL = 4;
const F_DUPFD_CLOEXEC = 1030;
const O_CLOEXEC = 0o2000000;

/** How to open a FIFO: read side, write side, or both (O_RDWR never blocks and never sees EOF while held). */
export type FifoMode = "r" | "w" | "rw";

/**
 * Opens a FIFO without blocking the event loop: opens with O_NONBLOCK, then clears O_NONBLOCK unless
 * `nonblock` is true. Opening the write side fails with ENXIO while nobody has the read side open
 * (containerd opens its read side first).
 */
export function openFifo(path: string, mode: FifoMode, options: { nonblock?: boolean } = {}): number {
  const access = mode === "r" ? constants.O_RDONLY : mode === "w" ? constants.O_WRONLY : constants.O_RDWR;
  let fd: number;
  try {
    fd = openSync(path, access | constants.O_NONBLOCK | O_CLOEXEC);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ENOENT") throw notFound(`fifo ${path}`, { cause: err });
    if (code === "ENXIO") throw unavailable(`fifo ${path}`, { cause: err, detail: "no reader (ENXIO)" });
    throw CryoError.from(err).wrap(`open fifo ${path}`);
  }
  if (!options.nonblock) {
    try {
      setNonblocking(fd, false);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }
  return fd;
}

/** Sets or clears O_NONBLOCK on a descriptor. */
export function setNonblocking(fd: number, on: boolean): void {
  const flags = libc.fcntl(fd, F_GETFL, 0);
  if (flags < 0) throw sysError(`fcntl(${fd}, F_GETFL)`);
  const next = on ? flags | constants.O_NONBLOCK : flags & ~constants.O_NONBLOCK;
  if (next !== flags && libc.fcntl(fd, F_SETFL, next) < 0) throw sysError(`fcntl(${fd}, F_SETFL)`);
}

/** Tells whether O_NONBLOCK is set on a descriptor. */
export function isNonblocking(fd: number): boolean {
  const flags = libc.fcntl(fd, F_GETFL, 0);
  if (flags < 0) throw sysError(`fcntl(${fd}, F_GETFL)`);
  return (flags & constants.O_NONBLOCK) !== 0;
}

/** Duplicates a descriptor (close-on-exec set on the copy; Bun.spawn's stdio dup2 clears it in the child). */
export function dup(fd: number): number {
  const out = libc.fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (out < 0) throw sysError(`dup(${fd})`);
  return out;
}

/** Creates a pipe with close-on-exec set on both ends; returns [readEnd, writeEnd]. */
export function pipe(): [read: number, write: number] {
  const fds = new Int32Array(2);
  if (libc.pipe2(fds, O_CLOEXEC) !== 0) throw sysError("pipe2");
  return [fds[0] ?? -1, fds[1] ?? -1];
}

/** Closes a descriptor; closing one that is already closed (EBADF) is ignored. */
export function close(fd: number): void {
  if (libc.close(fd) !== 0) {
    const e = sysError(`close(${fd})`);
    if (e.errno !== 9) throw e;
  }
}
