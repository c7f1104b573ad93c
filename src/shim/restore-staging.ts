/**
 * The mounts a restore stages in its work directory for CRIU to bind into the restored container: a read-only tmpfs
 * for the masked directories, a new tmpfs for each empty tmpfs mount the checkpoint recorded, and, for a container
 * with a user namespace of its own, a bind of each external mount's source. Every staged mount is pushed on the
 * caller's list as soon as it is mounted, and detached by detachStaged once CRIU is done (the container's own mount
 * keeps it) or the restore fails. Used by restore-container.ts.
 */
import { chmodSync, chownSync, closeSync, lchownSync, lutimesSync, mkdirSync, openSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CheckpointMetadata } from "../checkpoint/metadata.ts";
import type { TmpfsEntry, TmpfsRoot } from "../checkpoint/runc-criu.ts";
import { CryoError, invalidArgument } from "../errors.ts";
import { mknod, S_IFBLK, S_IFCHR } from "../sys/mknod.ts";
import { MNT_DETACH, mount, MS_BIND, MS_REMOUNT, umount2 } from "../sys/mount.ts";
import { MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY } from "../sys/mount-flags.ts";

/** An external mount as CRIU's options name it: its key and its source on this host. */
export interface ExternalMount {
  key: string;
  value: string;
}

/** Detaches the staged mounts (the list is emptied); a failure is reported to warn and the rest are still detached. */
export function detachStaged(staged: string[], warn: (dir: string, err: unknown) => void): void {
  for (const d of staged.splice(0)) {
    try {
      umount2(d, MNT_DETACH);
    } catch (e) {
      warn(d, e);
    }
  }
}

/**
 * The masked directories (dumped as external, MASKED_DIR_KEY): a new empty tmpfs, read-only down to its superblock,
 * mounted at <workDir>/masked-dir. CRIU binds it over each masked directory; whatever mount flags CRIU then gives a
 * bind, nothing can be written through it. (Before, the source was a host directory, /run/cryo/masked-dir: a
 * container restored twice got it read-write at /sys/firmware, wrote into that host directory, and could not be
 * restored a third time.) A container restored so is checkpointed again with the same images as one runc made: its
 * masks are read-only tmpfs mounts. Undefined when the container masks nothing.
 */
export function stageMaskedDir(workDir: string, maskPaths: readonly string[], staged: string[], label: string): string | undefined {
  if (maskPaths.length === 0) return undefined;
  const dir = join(workDir, "masked-dir");
  mkdirSync(dir);
  try {
    mount("tmpfs", dir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=555,size=4k");
  } catch (err) {
    throw CryoError.from(err).wrap(`${label}: a read-only tmpfs for the masked directories`);
  }
  staged.push(dir);
  return dir;
}

/**
 * The checkpoint's empty tmpfs mounts (dumped as external): a new tmpfs each at <workDir>/tmpfs-<i>, with the recorded
 * options and mount flags (`flags`, external key -> flags) and the recorded entries made in it (makeTmpfsEntries).
 */
export function stageEmptyTmpfs(
  workDir: string,
  emptyTmpfs: CheckpointMetadata["emptyTmpfs"],
  flags: ReadonlyMap<string, number> | undefined,
  staged: string[],
  label: string,
): { key: string; source: string }[] {
  return (emptyTmpfs ?? []).map((t, i) => {
    const dir = join(workDir, `tmpfs-${i}`);
    mkdirSync(dir);
    try {
      mount(t.source, dir, "tmpfs", flags?.get(t.key) ?? 0, t.options === "" ? null : t.options);
    } catch (err) {
      throw CryoError.from(err).wrap(`${label}: a new tmpfs for ${t.mountpoint} (${t.options})`);
    }
    staged.push(dir);
    try {
      makeTmpfsEntries(dir, t.entries ?? [], t.root);
    } catch (err) {
      throw CryoError.from(err).wrap(`${label}: the contents of ${t.mountpoint} in its new tmpfs`);
    }
    return { key: t.key, source: dir };
  });
}

/**
 * For a container with a user namespace of its own: CRIU's root task opens every external mount's source itself
 * (open_tree), in that namespace, as its root, for whom a source below a directory of the host's root alone (the
 * masked directory in /run/cryo, a volume below /var/lib/kubelet) is out of reach. Each external mount but the
 * staged tmpfs ones (`skip`) is bound into the work dir (<workDir>/ext-<i>), which that root can reach (containerd
 * makes the bundle searchable by its group), with the flags CRIU gives it: in the namespace CRIU's own remount may not
 * change a mount's access-time mode. Returns the external mounts with their new sources.
 */
export function bindExternalsForUserns(
  extMounts: readonly ExternalMount[],
  skip: ReadonlySet<string>,
  workDir: string,
  flags: ReadonlyMap<string, number> | undefined,
  staged: string[],
  label: string,
): ExternalMount[] {
  return extMounts.map((m, i) => {
    if (skip.has(m.key)) return m;
    const at = join(workDir, `ext-${i}`);
    try {
      if (statSync(m.value).isDirectory()) mkdirSync(at);
      else writeFileSync(at, "", { flag: "wx" });
      mount(m.value, at, null, MS_BIND);
      staged.push(at);
      mount(null, at, null, MS_BIND | MS_REMOUNT | (flags?.get(m.key) ?? 0));
    } catch (err) {
      throw CryoError.from(err).wrap(`${label}: ${m.value} bound in for ${m.key}, for the container's user namespace`);
    }
    return { key: m.key, value: at };
  });
}

/**
 * Makes a tmpfs's recorded entries (runc-criu.ts tmpfsEntries, parents before children) in dir, each with
 * its owner and mode: what CRIU's tar would have extracted, without the tar.
 */
export function makeTmpfsEntries(dir: string, entries: readonly TmpfsEntry[], root?: TmpfsRoot): void {
  // Every entry's parent is the root or a directory made before it (never a symlink): nothing lands outside dir.
  const dirs = new Set([""]);
  for (const e of entries) {
    const parent = e.path.includes("/") ? e.path.slice(0, e.path.lastIndexOf("/")) : "";
    if (!dirs.has(parent)) throw invalidArgument(`tmpfs entry ${e.path}`, { detail: "its parent is not a directory made before it" });
    if (e.type === "dir") dirs.add(e.path);
    const p = join(dir, e.path);
    if (e.type === "dir") mkdirSync(p);
    else if (e.type === "file") closeSync(openSync(p, "wx"));
    else if (e.type === "symlink") symlinkSync(e.target!, p);
    else mknod(p, e.type === "char" ? S_IFCHR : S_IFBLK, e.mode, e.major!, e.minor!);
    lchownSync(p, e.uid, e.gid);
    if (e.type !== "symlink") chmodSync(p, e.mode); // after chown, which clears set-id bits; exact, whatever the umask
  }
  // Times last, children before their directories (making a child sets its directory's), the root at the end.
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.atimeMs !== undefined && e.mtimeMs !== undefined) lutimesSync(join(dir, e.path), e.atimeMs / 1000, e.mtimeMs / 1000);
  }
  if (root) {
    chownSync(dir, root.uid, root.gid);
    chmodSync(dir, root.mode);
    if (root.atimeMs !== undefined && root.mtimeMs !== undefined) utimesSync(dir, root.atimeMs / 1000, root.mtimeMs / 1000);
  }
}
