/**
 * A directory that goes away while a call works in it. containerd makes a checkpoint's directory
 * (`ctd-checkpoint*`) for the Checkpoint it sends and removes it when that request ends, also when its own
 * caller went away: a ctr killed with Ctrl-C or SIGKILL cancels containerd's request, which returns at once
 * and removes the directory, but ttrpc has no message that tells the shim. The directory's removal is then
 * the one sign the shim gets that nobody waits for the dump any more.
 */
import { statSync } from "node:fs";

/** How often the directory is looked at: a stat a second costs nothing beside a dump. */
export const DIR_WATCH_INTERVAL_MS = 1000;

/**
 * Calls onGone (once) when path no longer names the directory it names now: removed, or replaced by another.
 * Returns the function that stops watching. A path that is not there at the start is not watched.
 */
export function watchRemoval(path: string, onGone: () => void, intervalMs = DIR_WATCH_INTERVAL_MS): () => void {
  const first = identity(path);
  if (first === undefined) return () => {};
  const timer = setInterval(() => {
    if (identity(path) === first) return;
    clearInterval(timer);
    onGone();
  }, intervalMs);
  return () => clearInterval(timer);
}

function identity(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return st.isDirectory() ? `${st.dev}:${st.ino}` : undefined;
  } catch {
    return undefined;
  }
}
