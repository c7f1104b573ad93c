/**
 * CRIU's root for a container restore: CRIU wants its root to be a mount point whose parent is not
 * over-mounted, so the new rootfs is bind-mounted (recursively) onto a private directory, as runc
 * does with <state dir>/criu-root. Mount points CRIU will restore into are created first (not those
 * on a tmpfs: CRIU restores tmpfs contents itself).
 *
 * Uses mount(8)/umount(8) until src/sys offers mount(2)/umount2(2).
 */
import { mkdirSync, existsSync, writeFileSync, rmdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { CryoError, Code } from "../errors.ts";
import type { RuncContainer } from "./runc-criu.ts";

/** A bind-mounted restore root; dispose unmounts (lazily) and removes the directory. */
export interface RestoreRoot extends Disposable {
  path: string;
}

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdio: ["ignore", "ignore", "pipe"] });
  if (r.exitCode !== 0) throw new CryoError(Code.INTERNAL, `${cmd.join(" ")}: ${r.stderr.toString().trim()}`);
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

/** Bind-mounts rootfs onto dir (created) and returns it; dispose to unmount. */
export function prepareRestoreRoot(rootfs: string, dir: string): RestoreRoot {
  mkdirSync(dir, { recursive: true });
  run(["mount", "--bind", "--make-private", rootfs, dir]);
  return {
    path: dir,
    [Symbol.dispose]() {
      run(["umount", "-l", dir]);
      rmdirSync(dir);
    },
  };
}
