/**
 * CRIU's root for a container restore: CRIU wants its root to be a mount point whose parent is not
 * over-mounted, so the new rootfs is bind-mounted onto a directory of its own and made private, as
 * runc does with <state dir>/criu-root. Mount points CRIU will restore into are created first (not
 * those on a tmpfs: CRIU restores tmpfs contents itself). mount(2)/umount2(2) through src/sys.
 */
import { mkdirSync, existsSync, writeFileSync, rmdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { CryoError } from "../errors.ts";
import { MNT_DETACH, MS_BIND, MS_PRIVATE, mount, umount2 } from "../sys/index.ts";
import type { RuncContainer } from "./runc-criu.ts";

/** A bind-mounted restore root; dispose unmounts (lazily) and removes the directory. */
export interface RestoreRoot extends Disposable {
  path: string;
}

/** Creates the mount points of c's mounts inside its rootfs that are not on a tmpfs (runc's rule). */
export function createRestoreMountpoints(c: RuncContainer): void {
  const tmpfs = c.config.mounts.filter((m) => m.device === "tmpfs").map((m) => m.destination);
  for (const m of c.config.mounts) {
    if (m.device === "cgroup" || tmpfs.some((t) => m.destination.startsWith(`${t}/`))) continue;
    const target = join(c.config.rootfs, m.destination);
    if (existsSync(target)) continue;
    const isFile = m.device === "bind" && isRegular(m.source);
    if (isFile) {
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, "");
    } else mkdirSync(target, { recursive: true });
  }
}

function isRegular(path: string): boolean {
  try {
    return statSync(path).isFile();
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
