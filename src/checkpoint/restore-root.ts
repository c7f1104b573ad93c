/**
 * CRIU's root for a container restore: CRIU wants its root to be a mount point whose parent is not
 * over-mounted, so the new rootfs is bind-mounted onto a directory of its own and made private, as
 * runc does with <state dir>/criu-root. Mount points CRIU will restore into are created first (not
 * those on a tmpfs: CRIU restores tmpfs contents itself), with bind mounts temporarily in place so that
 * nested mount points land in the bind's source, as runc's prepareCriuRestoreMounts does.
 * mount(2)/umount2(2) through src/sys.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { CryoError, invalidArgument } from "../errors.ts";
import { parseMountinfo } from "../cgroups/mountinfo.ts";
import { MNT_DETACH, MS_BIND, MS_PRIVATE, MS_REC, mount, umount2 } from "../sys/index.ts";
import type { RuncContainer } from "./runc-criu.ts";

/** A bind-mounted restore root; dispose unmounts (lazily) and removes the directory. */
export interface RestoreRoot extends Disposable {
  path: string;
}

/** How many symlinks resolveInRoot follows before it gives up (ELOOP), as the kernel's limit. */
const MAX_SYMLINKS = 40;

/**
 * The host path of `path` inside `root`, with every symlink on the way resolved as if `root` were
 * `/` (an absolute link target starts again at root, `..` never climbs above it), so that a rootfs
 * from an image cannot point a mount point outside itself. The last components may not exist yet.
 */
export function resolveInRoot(root: string, path: string): string {
  const pending = path.split("/").filter((c) => c !== "" && c !== ".");
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === "..") {
      resolved.pop();
      continue;
    }
    const here = join(root, ...resolved, c);
    let st;
    try {
      st = lstatSync(here);
    } catch {
      // Missing from here on: the rest is created as plain directories under what is resolved.
      if (pending.includes("..")) throw invalidArgument(`mount point ${path} in ${root}`, { detail: "'..' after a missing component" });
      resolved.push(c, ...pending);
      break;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw invalidArgument(`mount point ${path} in ${root}`, { detail: "too many symbolic links" });
      const target = readlinkSync(here);
      if (target.startsWith("/")) resolved.length = 0;
      pending.unshift(...target.split("/").filter((p) => p !== "" && p !== "."));
      continue;
    }
    resolved.push(c);
  }
  return join(root, ...resolved);
}

/**
 * A container path with the symbolic links of root on its way resolved inside root (resolveInRoot), as a
 * container path again: where a mount at dest lands, as runc mounts it and as the container's mount table
 * names it (a bind at /var/run/x in an image whose /var/run is a link to /run is at /run/x).
 */
export function resolveDestInRoot(root: string, dest: string): string {
  const rel = resolveInRoot(root, dest).slice(join(root).replace(/\/+$/, "").length);
  return rel === "" ? "/" : rel;
}

/**
 * Creates the mount points of c's mounts inside its rootfs that are not on a tmpfs (runc's rule: CRIU
 * restores a tmpfs's contents itself). As runc does before a restore, each bind mount is bind-mounted
 * onto its mount point while the later mount points are made, so that a mount point nested in a bind
 * mount (a bind at /data and another at /data/cache) is created inside the bind's source, where CRIU
 * will look for it; those temporary binds are undone (lazily, in reverse) before this returns: CRIU's
 * root (prepareRestoreRoot) is a non-recursive bind of the rootfs and never sees them.
 * Every path is resolved inside the rootfs (resolveInRoot).
 */
export function createRestoreMountpoints(c: RuncContainer): void {
  const tmpfs = c.config.mounts.filter((m) => m.device === "tmpfs").map((m) => m.destination);
  const bound: string[] = [];
  try {
    for (const m of c.config.mounts) {
      if (m.device === "cgroup" || tmpfs.some((t) => m.destination.startsWith(`${t}/`))) continue;
      const target = resolveInRoot(c.config.rootfs, m.destination);
      // Any source that is no directory (a file, a unix socket, a FIFO, a device node) is bound onto a file, as runc's
      // prepareBindMount makes it: a directory there fails the bind (ENOTDIR), and CRIU's restore with it.
      const isFile = m.device === "bind" && isNonDirectory(m.source);
      if (!existsSync(target)) {
        if (isFile) {
          mkdirSync(dirname(target), { recursive: true });
          writeFileSync(target, "");
        } else mkdirSync(target, { recursive: true });
      }
      if (m.device === "bind" && !isFile && existsSync(m.source)) {
        try {
          mount(m.source, target, null, MS_BIND | MS_REC);
        } catch (err) {
          throw CryoError.from(err).wrap(`restore mount point ${m.destination}`);
        }
        bound.push(target);
      }
    }
  } finally {
    for (const t of bound.reverse()) {
      try {
        umount2(t, MNT_DETACH);
      } catch {
        // already gone
      }
    }
  }
}

/** Whether path exists and is no directory (after symbolic links, as mount(2) follows them). */
function isNonDirectory(path: string): boolean {
  try {
    return !statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Bind-mounts rootfs onto dir (created) and makes it private; dispose to unmount (lazily) and remove dir. */
export function prepareRestoreRoot(rootfs: string, dir: string): RestoreRoot {
  mkdirSync(dir, { recursive: true });
  try {
    mount(rootfs, dir, null, MS_BIND);
  } catch (err) {
    throw CryoError.from(err).wrap(`restore root ${dir}`);
  }
  try {
    mount(null, dir, null, MS_PRIVATE);
  } catch (err) {
    umount2(dir, MNT_DETACH);
    throw CryoError.from(err).wrap(`restore root ${dir}`);
  }
  return {
    path: dir,
    [Symbol.dispose]() {
      umount2(dir, MNT_DETACH);
      rmdirSync(dir);
    },
  };
}

/** Whether path is a mount point of this process's mount namespace (/proc/self/mountinfo). */
export function isMountpoint(path: string, mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): boolean {
  return parseMountinfo(mountinfo).some((m) => m.mountPoint === path);
}
