/**
 * Whether a path lies on /proc or /sys once its links are resolved: a checkpoint's images or CRIU's work directory
 * there is never one. `/sys/fs/cgroup` is a tmpfs on a cgroup v1 host, so a directory check passes, and a Checkpoint
 * with that path wrote CRIU's images among the host's cgroup hierarchies (found by bench/ttrpc-fuzz.ts).
 */
import { existsSync, realpathSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

/** The pseudo file system (/proc or /sys) a path is on once its links are resolved (its nearest existing ancestor's), or undefined. */
export function pseudoFsOf(path: string): string | undefined {
  let head = resolve(path);
  let tail = "";
  while (!existsSync(head) && head !== "/") {
    tail = join(basename(head), tail);
    head = dirname(head);
  }
  let real: string;
  try {
    real = join(realpathSync(head), tail);
  } catch {
    real = resolve(path);
  }
  return ["/proc", "/sys"].find((fs) => real === fs || real.startsWith(`${fs}/`));
}
