/**
 * Async access to cgroupfs files with errors classified once: every read and write goes through the
 * thread pool (node:fs/promises), never blocking the event loop, and failures name the file.
 */
import { constants } from "node:fs";
import { open, readFile, readdir, rmdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Code, CryoError, failedPrecondition, notFound, unknown } from "../errors.ts";

/** The errno name of a Node-style error (ENOENT, EBUSY...), if any. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Classifies a failed cgroupfs write: the kernel refused the value (FAILED_PRECONDITION) or the file is missing. */
export function writeError(file: string, value: string, err: unknown): CryoError {
  const errno = errnoOf(err);
  const detail = `writing ${JSON.stringify(value)}: ${errno ?? String(err)}`;
  if (errno === "ENOENT") return notFound(`cgroup file ${file}`, { cause: err, detail });
  if (errno && ["EINVAL", "EBUSY", "EPERM", "EACCES", "EOPNOTSUPP", "ENOSPC", "ERANGE", "EEXIST"].includes(errno)) {
    return failedPrecondition(`cgroup file ${file}`, { cause: err, detail });
  }
  return unknown(`cgroup file ${file}`, { cause: err, detail });
}

/**
 * Why cgroup v1 refused a memory limit (EBUSY on memory.limit_in_bytes): the cgroup uses more than it. Said as runc
 * says it ("unable to set memory limit to N (current usage: U, peak usage: P)"), so that a refused `kubectl` resize
 * or `ctr` update reads the same with either shim.
 */
async function memoryInUse(file: string, value: string): Promise<string> {
  const read = (f: string) => readFile(join(dirname(file), f), "utf8").then((t) => t.trim(), () => "?");
  const [usage, peak] = await Promise.all([read("memory.usage_in_bytes"), read("memory.max_usage_in_bytes")]);
  return `unable to set memory limit to ${value} (current usage: ${usage}, peak usage: ${peak})`;
}

/** Reads a cgroupfs file as text; NOT_FOUND when it does not exist. */
export async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if (errnoOf(err) === "ENOENT") throw notFound(`cgroup file ${file}`, { cause: err });
    throw unknown(`cgroup file ${file}`, { cause: err, detail: `reading: ${errnoOf(err) ?? String(err)}` });
  }
}

/** Reads a file, or undefined when it does not exist (a controller that is not there is skipped, not fatal). */
export async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === "ENOENT" || errno === "ENODEV" || errno === "EOPNOTSUPP" || errno === "ENOTDIR") return undefined;
    throw unknown(`cgroup file ${file}`, { cause: err, detail: `reading: ${errno ?? String(err)}` });
  }
}

/**
 * Writes a value to an existing cgroupfs file with one write() call (O_WRONLY, never O_CREAT or
 * O_TRUNC: cgroupfs takes one value per write and never creates files).
 */
export async function writeValue(file: string, value: string): Promise<void> {
  let fh;
  try {
    fh = await open(file, constants.O_WRONLY);
  } catch (err) {
    throw writeError(file, value, err);
  }
  try {
    await fh.write(value);
  } catch (err) {
    const e = writeError(file, value, err);
    if (errnoOf(err) === "EBUSY" && basename(file) === "memory.limit_in_bytes") {
      throw new CryoError(e.code, `${e.message}: ${await memoryInUse(file, value)}`, { cause: err });
    }
    throw e;
  } finally {
    await fh.close();
  }
}

/** True when a path exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Names of entries in a directory, or [] when it does not exist. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return [];
    throw unknown(`cgroup directory ${dir}`, { cause: err, detail: `listing: ${errnoOf(err) ?? String(err)}` });
  }
}

/** Child cgroup directories of a cgroup directory (subdirectories only). */
export async function childCgroups(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return [];
    throw unknown(`cgroup directory ${dir}`, { cause: err, detail: `listing: ${errnoOf(err) ?? String(err)}` });
  }
}

/** Promise-based sleep (only for retry back-off while waiting on the kernel). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Removes a cgroup directory tree leaf-first. A directory that is busy (tasks still draining) is
 * retried with back-off until `timeoutMs`; a missing directory is fine.
 */
export async function removeCgroupTree(dir: string, timeoutMs = 5000): Promise<void> {
  for (const child of await childCgroups(dir)) await removeCgroupTree(child, timeoutMs);
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === "ENOENT") return;
      if (errno === "EBUSY" && Date.now() < deadline) {
        await sleep(delay);
        delay = Math.min(delay * 2, 50);
        continue;
      }
      if (errno === "EBUSY") {
        throw failedPrecondition(`cgroup ${dir}`, { cause: err, detail: `still busy after ${timeoutMs} ms` });
      }
      throw new CryoError(Code.UNKNOWN, `cgroup ${dir}: rmdir: ${errno ?? String(err)}`, { cause: err });
    }
  }
}
