/**
 * A path the operator named (a command's FILE or DIR, a flag's value, CRYO_CONFIG), checked before the command reads
 * it, so that every command says the same of one it cannot use: not there NOT_FOUND, a directory where a file is
 * wanted (or the reverse) FAILED_PRECONDITION, not readable by this user PERMISSION_DENIED. All exit 1; exit 2
 * (INVALID_ARGUMENT) stays for what was typed and for content that is malformed (docs/cli.md, exit codes).
 */
import { accessSync, constants, statSync } from "node:fs";
import { failedPrecondition, fsError, permissionDenied } from "../errors.ts";

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
