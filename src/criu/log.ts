/**
 * Picking the useful lines out of a CRIU log.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";

/** Error lines CRIU logs on every run on this kind of host without consequence. */
const BENIGN = [/rlimit: Can't setup RLIMIT_NOFILE for self/];

/** At most this many lines are carried in an error. */
const MAX_LINES = 12;

/** The line a failed restore's CRIU ends its own account with (cr-restore.c). */
const RESTORE_FAILED = /\bRestoring FAILED\./;

/**
 * Lines that are no errors but say what the next error is about: the unix socket outside the tree that an "External
 * socket is used" error refuses (its type, stream or datagram, decides what can allow it); the task a seize through
 * the frozen cgroup could not interrupt (EPERM: another process traces it), which CRIU's errors then call a zombie.
 */
const CONTEXT = [/unix:\s+Runaway socket: /, /Unable to interrupt task: \d+ \(/];

/**
 * The error lines of a CRIU log text ("Error (criu/...): ...", "... err ...", CONTEXT), last MAX_LINES of them. A
 * restore's end at its "Restoring FAILED." line: what follows is noise of CRIU's teardown (its cgroup daemon's "cg:
 * cgroupd: recv req error: No such file or directory" once the restore's sockets are gone), which ended the error
 * with a line that says nothing of the cause, and took the place of one that did among the last MAX_LINES.
 */
export function criuLogErrors(text: string): string[] {
  let all = text.split("\n");
  const failed = all.findLastIndex((l) => RESTORE_FAILED.test(l));
  if (failed >= 0) all = all.slice(0, failed + 1);
  const lines = all.filter((l) => (/\bError\b|\berr(no)?\b|\bfailed\b/i.test(l) || CONTEXT.some((c) => c.test(l))) && !BENIGN.some((b) => b.test(l)));
  return lines.slice(-MAX_LINES).map((l) => l.trim());
}

/** Reads a log file and returns its error lines; an unreadable log yields none. */
export function readCriuLogErrors(path: string): string[] {
  try {
    return criuLogErrors(readFileSync(path, "utf8"));
  } catch {
    return [];
  }
}

/**
 * CRIU's version as libcriu numbers it (major * 10000 + minor * 100 + sublevel: 4.2.1 -> 40201) from the
 * "Version: 4.2.1 (gitid ...)" line CRIU logs at its start (log level 3 and up), or undefined without one.
 * Reads only the log's first 4 KiB.
 */
export function criuVersionFromLog(path: string): number | undefined {
  let head: string;
  try {
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.alloc(4096);
      head = buf.toString("utf8", 0, readSync(fd, buf, 0, buf.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const m = /\bVersion: (\d+)\.(\d+)(?:\.(\d+))?/.exec(head);
  if (!m) return undefined;
  return Number(m[1]) * 10000 + Number(m[2]) * 100 + Number(m[3] ?? 0);
}

/** The last non-empty line of a CRIU log (read from its last 4 KiB), or undefined when there is none or it cannot be read. */
export function criuLogLastLine(path: string): string | undefined {
  try {
    const fd = openSync(path, "r");
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(4096, size));
      const n = readSync(fd, buf, 0, buf.length, size - buf.length);
      const lines = buf.toString("utf8", 0, n).split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
      const last = lines.at(-1);
      return last !== undefined && last.length > 200 ? `${last.slice(0, 200)}...` : last;
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}
