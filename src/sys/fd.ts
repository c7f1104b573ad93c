/** File descriptor helpers: FIFOs without blocking, O_NONBLOCK, close-on-exec, dup, pipes, close. */
import { constants, closeSync, fstatSync, openSync, statSync, type Stats } from "node:fs";
import { CryoError, fsError, invalidArgument, notFound, unavailable } from "../errors.ts";
import { libc, sysError } from "./libc.ts";
import { fileKind } from "./regular-file.ts";

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const F_GETFL = 3;
const F_SETFL = 4;
const F_DUPFD_CLOEXEC = 1030;
/** open(2)'s O_CLOEXEC (node:fs's constants lack it). */
export const O_CLOEXEC = 0o2000000;

/** How to open a FIFO: read side, write side, or both (O_RDWR never blocks and never sees EOF while held). */
export type FifoMode = "r" | "w" | "rw";

/**
 * Opens a FIFO without blocking the event loop: opens with O_NONBLOCK, then clears O_NONBLOCK unless
 * `nonblock` is true. Opening the write side fails with ENXIO while nobody has the read side open
 * (containerd opens its read side first). Anything but a FIFO is INVALID_ARGUMENT (`fifo /x: invalid argument: /x is a
 * regular file, not a FIFO`), refused before it is opened and checked again on the descriptor, as containerd's fifo
 * package refuses it ("file /x is not fifo"): a stdio path naming a host file had the container's output written
 * over the file's start (O_RDWR), its input read from it.
 */
export function openFifo(path: string, mode: FifoMode, options: { nonblock?: boolean } = {}): number {
  const access = mode === "r" ? constants.O_RDONLY : mode === "w" ? constants.O_WRONLY : constants.O_RDWR;
  let fd: number;
  try {
    notFifo(path, statSync(path));
    fd = openSync(path, access | constants.O_NONBLOCK | constants.O_NOCTTY | O_CLOEXEC);
    try {
      notFifo(path, fstatSync(fd));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  } catch (err) {
    if (err instanceof CryoError) throw err;
    const code = (err as { code?: string }).code;
    if (code === "ENOENT") throw notFound(`fifo ${path}`, { cause: err });
    if (code === "ENXIO") throw unavailable(`fifo ${path}`, { cause: err, detail: "no reader (ENXIO)" });
    throw fsError(`fifo ${path}`, err, path); // a path too long, a part of it a file, no permission: in words
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

/** Throws INVALID_ARGUMENT unless st is a FIFO's (see openFifo). */
function notFifo(path: string, st: Stats): void {
  if (st.isFIFO()) return;
  throw invalidArgument(`fifo ${path}`, { detail: `${path} is ${fileKind(st)}, not a FIFO` });
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

/**
 * Duplicates a descriptor, with close-on-exec set on the copy. Handed to Bun.spawn as stdio, the child
 * gets it without close-on-exec (Bun dup2s it into place); but a child that is itself a Bun program
 * finds its inherited fds 4, 5, ... marked close-on-exec again by Bun's startup (see clearCloexec).
 */
export function dup(fd: number): number {
  const out = libc.fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (out < 0) throw sysError(`dup(${fd})`);
  return out;
}

/** dup2(2): makes `target` a copy of `fd` (closing what `target` was), without close-on-exec. */
export function dup2(fd: number, target: number): void {
  if (libc.dup2(fd, target) < 0) throw sysError(`dup2(${fd}, ${target})`);
}

/** Tells whether close-on-exec (FD_CLOEXEC) is set on a descriptor. */
export function isCloexec(fd: number): boolean {
  const flags = libc.fcntl(fd, F_GETFD, 0);
  if (flags < 0) throw sysError(`fcntl(${fd}, F_GETFD)`);
  return (flags & FD_CLOEXEC) !== 0;
}

/** Sets or clears close-on-exec (FD_CLOEXEC) on a descriptor. */
export function setCloexec(fd: number, on: boolean): void {
  const flags = libc.fcntl(fd, F_GETFD, 0);
  if (flags < 0) throw sysError(`fcntl(${fd}, F_GETFD)`);
  const next = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  if (next !== flags && libc.fcntl(fd, F_SETFD, next) < 0) throw sysError(`fcntl(${fd}, F_SETFD)`);
}

/**
 * Clears close-on-exec on a descriptor, so that the next exec (or fork+exec) keeps it.
 *
 * The Bun trap this exists for (measured on Bun 1.4.5): Bun.spawn hands every extra stdio fd to the
 * child without close-on-exec (a bash child sees fds 3, 4, 5 with flags 01), but when the child is a
 * Bun program, Bun's startup marks its inherited fds 4, 5, ... O_CLOEXEC (fdinfo flags 02000001; fd
 * 3 stays clear). A Bun child that must pass inherited fds on to a program it execs (the CRIU helper
 * to `criu swrk` for --inherit-fd) calls clearCloexec on each of them first, in the child. Programs
 * that are not Bun (runc with --preserve-fds, ...) are not affected.
 */
export function clearCloexec(fd: number): void {
  setCloexec(fd, false);
}

/** Creates a pipe with close-on-exec set on both ends; returns [readEnd, writeEnd]. */
export function pipe(): [read: number, write: number] {
  const fds = new Int32Array(2);
  if (libc.pipe2(fds, O_CLOEXEC) !== 0) throw sysError("pipe2");
  return [fds[0] ?? -1, fds[1] ?? -1];
}

const FIONREAD = 0x541bn;

/**
 * The bytes waiting to be read in a pipe, FIFO or terminal (FIONREAD). For a pipe or FIFO either end answers, so a
 * writer can see whether its reader has taken what was written.
 */
export function unreadBytes(fd: number): number {
  const n = new Int32Array(1);
  if (libc.ioctl(fd, FIONREAD, n) !== 0) throw sysError(`ioctl(${fd}, FIONREAD)`);
  return n[0] ?? 0;
}

/** Closes a descriptor; closing one that is already closed (EBADF) is ignored. */
export function close(fd: number): void {
  if (libc.close(fd) !== 0) {
    const e = sysError(`close(${fd})`);
    if (e.errno !== 9) throw e;
  }
}
