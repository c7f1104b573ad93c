/** Reading a file an operator named (a config file, a plugin) without letting a FIFO or a device hang the reader. No libc. */
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync, type Stats } from "node:fs";
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
    throw failedPrecondition(context, { detail: `${path} is ${st.isDirectory() ? "a directory, not a file" : `${fileKind(st)}, not a regular file`}` });
  } finally {
    closeSync(fd);
  }
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

/** What kind of file st is, for messages: "a regular file", "a directory", "a FIFO", "a socket", "a symbolic link" or "a device". */
export function fileKind(st: Stats): string {
  if (st.isFile()) return "a regular file";
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  if (st.isSymbolicLink()) return "a symbolic link";
  return "a device";
}
