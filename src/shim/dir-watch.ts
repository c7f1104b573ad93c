/**
 * A directory that goes away while a call works in it. containerd makes a checkpoint's directory
 * (`ctd-checkpoint*`) for the Checkpoint it sends and removes it when that request ends, also when its own
 * caller went away: a ctr killed with Ctrl-C or SIGKILL cancels containerd's request, which returns at once
 * and removes the directory, but ttrpc has no message that tells the shim. The directory's removal is then
 * the one sign the shim gets that nobody waits for the dump any more.
 */
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

/** How often the directory is looked at: a stat a second costs nothing beside a dump. */
export const DIR_WATCH_INTERVAL_MS = 1000;

/** Stops a watch (call it); gone() says at once whether the directory has gone (between two looks of the watch too). */
export interface RemovalWatch {
  (): void;
  gone(): boolean;
}

/**
 * Calls onGone (once) when path no longer names the directory it names now: removed, or replaced by another.
 * Returns the function that stops watching. A path that is not there at the start is not watched (gone() is false).
 */
export function watchRemoval(path: string, onGone: () => void, intervalMs = DIR_WATCH_INTERVAL_MS): RemovalWatch {
  const first = identity(path);
  if (first === undefined) return Object.assign(() => {}, { gone: () => false });
  const timer = setInterval(() => {
    if (identity(path) === first) return;
    clearInterval(timer);
    onGone();
  }, intervalMs);
  return Object.assign(() => clearInterval(timer), { gone: () => identity(path) !== first });
}

function identity(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return st.isDirectory() ? `${st.dev}:${st.ino}` : undefined;
  } catch {
    return undefined;
  }
}

/** CRIU's inventory: in every images directory of a completed dump. */
const INVENTORY = "inventory.img";

/**
 * A removal that raced with the shim's own writes after the dump. containerd's RemoveAll lists the directory,
 * removes what it listed and then fails on the directory itself when the shim wrote a file into it after the
 * listing (a compressed page image, the metadata): the directory stays, holding only the shim's late files. Such a
 * directory is still there but has lost CRIU's inventory; it is removed here. Only for a dump's directory (a
 * pre-dump's may have no inventory). Returns whether it was removed.
 */
export function removeIfEmptied(dumpDir: string): boolean {
  if (!existsSync(dumpDir) || existsSync(join(dumpDir, INVENTORY))) return false;
  rmSync(dumpDir, { recursive: true, force: true });
  return true;
}

/** How long after the dump's end its directory is looked at once more: containerd's removal may still be under way. */
export const LATE_SWEEP_MS = 2000;

/**
 * How long a directory found without its inventory at the late look must stay unchanged before it is taken for a
 * removal that was cut short. containerd also removes the directory after a checkpoint that succeeded, once it has
 * made the image of it: a big one (the images of a tree of 270 processes, here) was still being removed
 * 2 s after the dump's end, its inventory gone already, and was taken for an abandoned one (its page store entry
 * removed with it: the image's restore then found no pages). A removal under way changes the directory or ends it.
 */
export const LATE_SETTLE_MS = 1000;

/** How long the late look waits at most for such a directory to settle. */
const GIVE_UP_MS = 30_000;

/** The names in dir, sorted and joined, or undefined when it is gone. */
function listing(dir: string): string | undefined {
  try {
    return readdirSync(dir).sort().join("\0");
  } catch {
    return undefined;
  }
}

/**
 * removeIfEmptied now and once more after lateMs (an unref'd timer: it holds no daemon up). At the late look, a
 * directory without its inventory is removed only once it has stayed as it is for settleMs (LATE_SETTLE_MS): one
 * that goes meanwhile was a removal under way, containerd's after a checkpoint it took, and is left to it. onRemoved
 * is called for each removal, for the log.
 */
export function sweepEmptied(dumpDir: string, onRemoved: (when: "now" | "late") => void, lateMs = LATE_SWEEP_MS, settleMs = LATE_SETTLE_MS): void {
  try {
    if (removeIfEmptied(dumpDir)) onRemoved("now");
  } catch {
    // a directory that cannot be removed is left as it is: containerd's to clean
  }
  const step = Math.max(1, Math.min(100, Math.floor(settleMs / 5)));
  let last: string | undefined;
  let since = 0;
  let deadline = 0;
  const late = () => {
    try {
      if (!existsSync(dumpDir) || existsSync(join(dumpDir, INVENTORY))) return;
      // A directory that keeps changing for that long is someone's work, not a removal cut short: left to it.
      if (deadline === 0) deadline = performance.now() + GIVE_UP_MS;
      else if (performance.now() > deadline) return;
      const now = listing(dumpDir);
      if (now === undefined) return;
      if (now !== last) {
        last = now;
        since = performance.now();
      } else if (performance.now() - since >= settleMs) {
        if (removeIfEmptied(dumpDir)) onRemoved("late");
        return;
      }
      setTimeout(late, step).unref();
    } catch {
      // as above
    }
  };
  setTimeout(late, lateMs).unref();
}
