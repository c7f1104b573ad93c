/** The file side of `cryo install`: atomic config writes with a backup, and binaries copied into place. */
import { chmodSync, chownSync, closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, fsyncSync, openSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
// Failed file operations are said in words (fsError: which path, what is wrong with it); before, UNAVAILABLE with
// node's EISDIR/EACCES/EEXIST text.
import { failedPrecondition, fsError } from "../errors.ts";
import { readRegularFile } from "../sys/regular-file.ts";

/** What happened to one file. */
export type FileOutcome = "installed" | "updated" | "unchanged" | "removed" | "absent";

/** Writes bytes to a temp file next to path, fsyncs it, gives it mode (and owner), and renames it over path. */
function replaceFile(path: string, data: Uint8Array | string, mode: number, owner?: { uid: number; gid: number }): void {
  const tmp = join(dirname(path), `.${path.split("/").pop()}.cryo-${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, "w", mode);
    try {
      writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, mode);
    if (owner) chownSync(tmp, owner.uid, owner.gid);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw fsError(`write ${path}`, err);
  }
}

/**
 * Replaces a config file's text atomically (temp file + fsync + rename), keeping its mode and owner; the
 * previous content goes to `<path>.bak` first. A file that did not exist is created with mode 0644.
 */
export function writeConfigAtomic(given: string, text: string): { backup?: string } {
  if (!existsSync(given)) {
    // A link to a config not made yet stays a link too: the file is made where it points.
    replaceFile(configTarget(given), text, 0o644);
    return {};
  }
  // A symlinked config (a host's managed /etc/containerd/config.toml) stays a link: its target is replaced.
  const path = realpathSync(given);
  const st = statSync(path);
  const backup = `${path}.bak`;
  try {
    copyFileSync(path, backup);
  } catch (err) {
    throw fsError(`back up ${path} to ${backup}`, err);
  }
  replaceFile(path, text, st.mode & 0o7777, { uid: st.uid, gid: st.gid });
  return { backup };
}

/**
 * The file a config path stands for: the path, or the end of its symbolic links, which need not exist yet (a host's
 * /etc/containerd/config.toml may link to a file its configuration management has not written). Before, the link to
 * a missing file was replaced by a regular file.
 */
export function configTarget(given: string): string {
  let path = resolve(given);
  for (let hops = 0; hops < 40; hops++) {
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return path;
    }
    if (!st.isSymbolicLink()) return path;
    path = resolve(dirname(path), readlinkSync(path));
  }
  throw failedPrecondition(`containerd config ${given}`, { detail: `${given}: too many levels of symbolic links` });
}

/**
 * Reads a config file; "" with exists=false when there is none. Anything but a regular file is refused unread, before
 * any binary is copied: a FIFO's read hung, and /dev/null read as an empty config that the edit was then to replace
 * (its backup failed first, "ENOTSUP ... copyfile", after the binaries had been installed).
 */
export function readConfig(path: string): { text: string; exists: boolean } {
  try {
    const context = `containerd config ${path}`;
    if (statSync(path).isCharacterDevice()) throw failedPrecondition(context, { detail: `${path} is a device, not a regular file` });
    return { text: readRegularFile(path, context).toString("utf8"), exists: true };
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return { text: "", exists: false };
    throw fsError(`containerd config ${path}`, err, path);
  }
}

/** Copies source to dir/name (mode 0755) through a temp file and rename, unless it is already identical. */
export function installBinary(source: string, dir: string, name: string, dryRun: boolean): FileOutcome {
  const target = join(dir, name);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(source);
  } catch (err) {
    throw fsError(`binary ${source}`, err, source);
  }
  // A --bin-dir that is a file (or below one) fails the real run at its mkdir: the dry run says so too.
  let st;
  try {
    st = statSync(dir);
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw fsError(`bin dir ${dir}`, err, dir);
  }
  if (st !== undefined && !st.isDirectory()) throw failedPrecondition(`bin dir ${dir}`, { detail: st.isFile() ? `${dir} is a file, not a directory` : `${dir} is not a directory` });
  if (resolve(source) === resolve(target)) return "unchanged";
  let old: Uint8Array | undefined;
  try {
    old = readFileSync(target);
  } catch {
    old = undefined;
  }
  if (old !== undefined && Buffer.compare(old, bytes) === 0 && (statSync(target).mode & 0o111) !== 0) return "unchanged";
  if (!dryRun) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw fsError(`bin dir ${dir}`, err);
    }
    // A running shim keeps its old inode: replacing by rename never disturbs it (no ETXTBSY).
    replaceFile(target, bytes, 0o755);
  }
  return old === undefined ? "installed" : "updated";
}

/** Removes dir/name when it exists. */
export function removeBinary(dir: string, name: string, dryRun: boolean): FileOutcome {
  const target = join(dir, name);
  if (!existsSync(target)) return "absent";
  if (!dryRun) {
    try {
      rmSync(target);
    } catch (err) {
      throw fsError(`remove ${target}`, err);
    }
  }
  return "removed";
}
