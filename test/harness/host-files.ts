import { existsSync, readFileSync, rmdirSync } from "node:fs";
import { waitFor } from "./wait-for.ts";

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

/** Removes test cgroup directories, each retried for up to 10 s while killed processes leave; what stays is left (afterAll). */
export async function removeCgroupDirs(dirs: Iterable<string>): Promise<void> {
  for (const d of dirs) {
    await waitFor(() => {
      try {
        if (existsSync(d)) rmdirSync(d);
        return true;
      } catch {
        return undefined;
      }
    }, { what: `rmdir ${d}`, timeoutMs: 10_000 }).catch(() => {});
  }
}
