/** The file side of `cryo install`: atomic config writes with a backup, and binaries copied into place. */
import { chmodSync, chownSync, closeSync, copyFileSync, existsSync, mkdirSync, fsyncSync, openSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { CryoError, notFound, unavailable } from "../errors.ts";

/** What happened to one file. */
export type FileOutcome = "installed" | "updated" | "unchanged" | "removed" | "absent";

function fail(what: string, err: unknown): CryoError {
  const code = (err as { code?: string }).code;
  if (code === "ENOENT") return notFound(what, { cause: err });
  return unavailable(what, { cause: err, detail: err instanceof Error ? err.message : String(err) });
}

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
    throw fail(`write ${path}`, err);
  }
}

/**
 * Replaces a config file's text atomically (temp file + fsync + rename), keeping its mode and owner; the
 * previous content goes to `<path>.bak` first. A file that did not exist is created with mode 0644.
 */
export function writeConfigAtomic(given: string, text: string): { backup?: string } {
  if (!existsSync(given)) {
    replaceFile(given, text, 0o644);
    return {};
  }
  // A symlinked config (a host's managed /etc/containerd/config.toml) stays a link: its target is replaced.
  const path = realpathSync(given);
  const st = statSync(path);
  const backup = `${path}.bak`;
  try {
    copyFileSync(path, backup);
  } catch (err) {
    throw fail(`back up ${path} to ${backup}`, err);
  }
  replaceFile(path, text, st.mode & 0o7777, { uid: st.uid, gid: st.gid });
  return { backup };
}

/** Reads a config file; "" with exists=false when there is none. */
export function readConfig(path: string): { text: string; exists: boolean } {
  try {
    return { text: readFileSync(path, "utf8"), exists: true };
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return { text: "", exists: false };
    throw fail(`read ${path}`, err);
  }
}

/** Copies source to dir/name (mode 0755) through a temp file and rename, unless it is already identical. */
export function installBinary(source: string, dir: string, name: string, dryRun: boolean): FileOutcome {
  const target = join(dir, name);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(source);
  } catch (err) {
    throw fail(`binary ${source}`, err);
  }
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
      throw fail(`bin dir ${dir}`, err);
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
      throw fail(`remove ${target}`, err);
    }
  }
  return "removed";
}
