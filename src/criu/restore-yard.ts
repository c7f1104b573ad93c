/**
 * CRIU's restore makes an empty directory `/tmp/.criu.mntns.XXXXXX` (mkdtemp) on the host, mounts its "root yard"
 * there in a mount namespace of its own, and removes the directory when the restore ends, whether it succeeded or
 * failed. A CRIU killed in the middle (a task killed while it restores, a dead shim's `delete`) leaves it behind,
 * one empty directory per killed restore. Its name is in the restore's log (every "Will mount ... @ <yard>/..." line,
 * from the first milliseconds, at log level 4), which is how the restore's own yard is told from another's.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, rmdirSync } from "node:fs";
import { join } from "node:path";

/** How much of a restore log is read for the yard's name: it is named within the first few hundred lines. */
const LOG_HEAD_BYTES = 1 << 20;

/** The yard directory a restore log names, if any. */
export function restoreYardOf(log: string): string | undefined {
  return /\/tmp\/\.criu\.mntns\.[A-Za-z0-9]{6}(?=[/\s]|$)/.exec(log)?.[0];
}

/** The first LOG_HEAD_BYTES of a file, or undefined when it cannot be read. */
function head(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(LOG_HEAD_BYTES);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString("latin1");
  } finally {
    closeSync(fd);
  }
}

/** Whether a live process named criu still has a mount at dir in its mount namespace (its yard is in use). */
export function yardInUse(dir: string, proc = "/proc"): boolean {
  const needle = ` ${dir} `;
  for (const name of readdirSync(proc)) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(join(proc, name, "comm"), "utf8").trim() !== "criu") continue;
      if (readFileSync(join(proc, name, "mountinfo"), "utf8").includes(needle)) return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

/**
 * Removes the yard directory the restore log at logPath names, when it is still there, empty, and no CRIU has it
 * mounted (removing a directory another mount namespace mounts on detaches that mount: a live CRIU would lose its
 * yard). Returns the directory removed, or undefined.
 */
export function removeRestoreYard(logPath: string, proc = "/proc"): string | undefined {
  const log = head(logPath);
  const yard = log === undefined ? undefined : restoreYardOf(log);
  if (yard === undefined || yardInUse(yard, proc)) return undefined;
  try {
    rmdirSync(yard);
    return yard;
  } catch {
    return undefined; // gone (CRIU removed it), not empty, or busy: not a killed restore's leftover
  }
}
