/**
 * A path the operator named (a command's FILE or DIR, a flag's value, CRYO_CONFIG), checked before the command reads
 * it, so that every command says the same of one it cannot use: not there NOT_FOUND, a directory where a file is
 * wanted (or the reverse) FAILED_PRECONDITION, not readable by this user PERMISSION_DENIED. All exit 1; exit 2
 * (INVALID_ARGUMENT) stays for what was typed and for content that is malformed (docs/cli.md, exit codes).
 */
import { accessSync, constants, statSync } from "node:fs";
import { failedPrecondition, fsError, permissionDenied, unavailable } from "../errors.ts";
import { unixConnectError } from "../sys/unix-connect.ts";

/** Throws unless path is a kind this user may read (a directory: list and enter). context names it (`config /x`). */
export function checkNamedPath(context: string, path: string, kind: "file" | "directory"): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw fsError(context, err, path);
  }
  if (kind === "file" && st.isDirectory()) throw failedPrecondition(context, { detail: `${path} is a directory, not a file` });
  if (kind === "directory" && !st.isDirectory()) throw failedPrecondition(context, { detail: st.isFile() ? `${path} is a file, not a directory` : `${path} is not a directory` });
  try {
    accessSync(path, kind === "directory" ? constants.R_OK | constants.X_OK : constants.R_OK);
  } catch (err) {
    if ((err as { code?: string }).code !== "EACCES") throw fsError(context, err, path);
    throw permissionDenied(context, { cause: err, detail: `uid ${process.getuid?.() ?? "?"} may not read ${path}` });
  }
}

/**
 * Throws unless path is a unix socket this user may connect to, before ctr is run (ctr waits its 10 s dial timeout
 * to say one is missing, and says "connection refused" of a file). Not there is UNAVAILABLE ("no such socket");
 * a file or directory, or a socket this user may not reach, is said so (existsSync took the latter for a missing
 * one). undone ends the detail: what the command left undone ("nothing was done").
 */
export function checkSocketPath(context: string, path: string, undone: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") throw unavailable(context, { detail: `no such socket; ${undone}` });
    throw fsError(context, err, path);
  }
  if (!st.isSocket()) throw failedPrecondition(context, { detail: `${path} is ${st.isDirectory() ? "a directory" : st.isFile() ? "a file" : "not a socket"}, not a containerd socket; ${undone}` });
  try {
    accessSync(path, constants.W_OK);
  } catch (err) {
    if ((err as { code?: string }).code !== "EACCES") throw fsError(context, err, path);
    throw permissionDenied(context, { cause: err, detail: `uid ${process.getuid?.() ?? "?"} may not connect to ${path}; ${undone}` });
  }
}

/**
 * Throws UNAVAILABLE unless something accepts a connection on the unix socket at path (checkSocketPath first): a
 * socket left by a containerd that died (killed, crashed, its host rebooted without a tmpfs) is still a socket, and
 * ctr's "failed to dial ... connect: connection refused" said that only in gRPC's words, after the command's
 * context (`container c1 at /x.sock: ctr: failed to dial ...`). The connection is closed at once.
 */
export async function checkSocketListens(context: string, path: string, undone: string, timeoutMs = 5000): Promise<void> {
  const code = await unixConnectError(path, timeoutMs);
  if (code === undefined) return;
  if (code === "ECONNREFUSED") {
    throw unavailable(context, { detail: `nothing listens on ${path} (a socket left by a containerd that is no longer running?); ${undone}` });
  }
  if (code === "ETIMEDOUT") throw unavailable(context, { detail: `${path} did not accept a connection in ${timeoutMs / 1000} s; ${undone}` });
  throw unavailable(context, { detail: `cannot connect to ${path} (${code}); ${undone}` });
}
