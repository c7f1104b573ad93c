/** Reading a file an operator named (a config file, a plugin) without letting a FIFO or a device hang the reader. No libc. */
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, statSync } from "node:fs";
import { failedPrecondition } from "../errors.ts";

/**
 * Reads the whole of path, which must be a regular file, or /dev/null (read as empty: a way to say "no config").
 * It is opened O_NONBLOCK and looked at before any read: a FIFO would block the process until a writer came (a
 * shim daemon, and every container it serves), and a device such as /dev/zero never ends. Any other kind is
 * FAILED_PRECONDITION naming it (`<context>: failed precondition: /x is a FIFO, not a regular file`; context: the
 * path), also a socket (whose open fails, ENXIO); any other error of open(2) is node's, for the caller's fsError.
 * O_NOCTTY: a shim daemon has no controlling terminal, and a terminal named here must not become its own.
 */
export function readRegularFile(path: string, context = path): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    if ((err as { code?: string }).code === "ENXIO" && isSocket(path)) throw failedPrecondition(context, { cause: err, detail: `${path} is a socket, not a regular file` });
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (st.isFile()) return readFileSync(fd);
    if (st.isCharacterDevice() && st.rdev === statSync("/dev/null").rdev) return Buffer.alloc(0);
    const kind = st.isDirectory() ? "a directory, not a file" : `${st.isFIFO() ? "a FIFO" : st.isSocket() ? "a socket" : "a device"}, not a regular file`;
    throw failedPrecondition(context, { detail: `${path} is ${kind}` });
  } finally {
    closeSync(fd);
  }
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket() || lstatSync(path).isSocket();
  } catch {
    return false;
  }
}
