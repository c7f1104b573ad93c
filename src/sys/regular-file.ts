/** Reading a file an operator named (a config file, a plugin) without letting a FIFO or a device hang the reader. No libc. */
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync } from "node:fs";
import { failedPrecondition } from "../errors.ts";

/**
 * Reads the whole of path, which must be a regular file, or /dev/null (read as empty: a way to say "no config").
 * It is opened O_NONBLOCK and looked at before any read: a FIFO would block the process until a writer came (a
 * shim daemon, and every container it serves), and a device such as /dev/zero never ends. Any other kind is
 * FAILED_PRECONDITION naming it (`<context>: failed precondition: /x is a FIFO, not a regular file`; context: the
 * path); an error of open(2) is node's, for the caller's fsError.
 */
export function readRegularFile(path: string, context = path): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
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
