import { readFileSync } from "node:fs";

/** Reads a host file, trimmed; undefined when absent or empty. */
export function readTrimmed(path: string): string | undefined {
  try {
    const text = readFileSync(path, "utf8").trim();
    return text === "" ? undefined : text;
  } catch {
    return undefined;
  }
}

/** Sends SIGKILL to each pid, ignoring ones already gone (for afterAll clean-ups of processes a test started). */
export function killPids(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}
