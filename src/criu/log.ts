/**
 * Picking the useful lines out of a CRIU log.
 */
import { readFileSync } from "node:fs";

/** Error lines CRIU logs on every run on this kind of host without consequence. */
const BENIGN = [/rlimit: Can't setup RLIMIT_NOFILE for self/];

/** At most this many lines are carried in an error. */
const MAX_LINES = 12;

/** The error lines of a CRIU log text ("Error (criu/...): ...", "... err ..."), last MAX_LINES of them. */
export function criuLogErrors(text: string): string[] {
  const lines = text.split("\n").filter((l) => /\bError\b|\berr(no)?\b|\bfailed\b/i.test(l) && !BENIGN.some((b) => b.test(l)));
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
