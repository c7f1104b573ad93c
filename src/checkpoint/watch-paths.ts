/**
 * Paths for CRIU to find the files an inotify or fanotify watch is on, where it cannot open them by handle.
 *
 * CRIU dumps a watch by the file handle of the watched inode, and resolves it to a path so that the restore can
 * watch the same file again. On overlayfs (every container's rootfs) the handle does not open, and CRIU then
 * looks for the inode by walking a few directories it knows (/etc, /var/spool, ...) and the `irmap-scan-path`s
 * it is given, below the dumped tree's root; where it finds none the dump fails: `fsnotify: Can't dump that
 * handle` (runc's checkpoint fails the same way). So before the dump cryo reads which inodes the container's
 * watches are on (/proc/PID/fdinfo: `inotify wd:.. ino:<hex> sdev:<hex>`, `fanotify ino:<hex> sdev:<hex>`), looks
 * for those on the rootfs's device by walking the container's root breadth first (other file systems are not
 * entered; at most WALK_MAX entries), and gives CRIU each path found: its scan then stats that path first and
 * matches it at once. The restore watches the path again in the new rootfs.
 */
import { readFileSync } from "node:fs";
import { lstat, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fdTargets } from "../sys/proc.ts";

/** At most this many directory entries are looked at in one walk. */
export const WALK_MAX = 200_000;

/** An inode a watch is on: its device as the kernel numbers it in fdinfo (major << 20 | minor), and its number. */
export interface WatchedInode {
  sdev: number;
  ino: bigint;
}

/** The watched inodes of one fdinfo file's text (none for a descriptor that is no inotify or fanotify group). */
export function parseWatches(fdinfo: string): WatchedInode[] {
  const out: WatchedInode[] = [];
  for (const line of fdinfo.split("\n")) {
    const m = /^(?:inotify wd:\S+|fanotify) ino:([0-9a-f]+) sdev:([0-9a-f]+)\b/.exec(line);
    if (m) out.push({ ino: BigInt(`0x${m[1]}`), sdev: Number.parseInt(m[2]!, 16) });
  }
  return out;
}

/** The inodes the watches of the processes in pids are on, each once. Processes or descriptors gone meanwhile are skipped. */
export function watchedInodes(pids: readonly number[]): WatchedInode[] {
  const seen = new Map<string, WatchedInode>();
  for (const pid of pids) {
    for (const { fd, target } of fdTargets(pid)) {
      if (target !== "anon_inode:inotify" && target !== "anon_inode:[fanotify]") continue;
      try {
        for (const w of parseWatches(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"))) seen.set(`${w.sdev}:${w.ino}`, w);
      } catch {
        // gone
      }
    }
  }
  return [...seen.values()];
}

/** The kernel's device number (fdinfo's sdev) of a stat's dev_t as glibc encodes it. */
export function kernelDev(dev: bigint): number {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return major * 2 ** 20 + minor;
}

/**
 * Paths below root (the container's root, /proc/PID/root) of the watched inodes on root's own device, as the
 * container names them ("/tmp"). Breadth first, on that device only, at most `max` entries; what is not found is
 * left out (CRIU then fails the dump as it would have, naming the handle). Asynchronous, one directory at a time,
 * so that a daemon serving other containers goes on answering them during a long walk.
 */
export async function findWatchedPaths(root: string, watched: readonly WatchedInode[], max = WALK_MAX): Promise<string[]> {
  // Followed: root is a link to the container's root (/proc/PID/root).
  const rootStat = await stat(root, { bigint: true });
  const dev = kernelDev(rootStat.dev);
  const wanted = new Set(watched.filter((w) => w.sdev === dev).map((w) => w.ino));
  const found: string[] = [];
  if (wanted.size === 0) return found;
  if (wanted.delete(rootStat.ino)) found.push("/");
  const queue: string[] = [""];
  let looked = 0;
  for (let next = 0; next < queue.length && wanted.size > 0 && looked < max; next++) {
    const rel = queue[next]!;
    let names: string[];
    try {
      names = await readdir(join(root, rel));
    } catch {
      continue;
    }
    names = names.slice(0, max - looked);
    looked += names.length;
    // Never followed: a link's absolute target would resolve on the host, not in the container.
    const stats = await Promise.all(names.map((name) => lstat(join(root, rel, name), { bigint: true }).catch(() => undefined)));
    names.forEach((name, i) => {
      const st = stats[i];
      if (!st || st.dev !== rootStat.dev) return;
      const path = `${rel}/${name}`;
      if (wanted.delete(st.ino)) found.push(path);
      if (st.isDirectory()) queue.push(path);
    });
  }
  return found;
}
