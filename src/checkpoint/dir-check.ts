/**
 * What a checkpoint directory may hold before a restore touches it.
 *
 * The directory is what containerd extracted from a checkpoint image, which may come from another host or
 * a registry: its content is not to be trusted. The restore runs as root: it reads the metadata and
 * descriptors.json, writes decompressed page images and the metadata back into the directory, copies page
 * images, and hands the directory to CRIU. A symbolic link among the entries would send any of those reads
 * or writes to another file of the host (a planted `pages-1.img.tmp` or `cryo-checkpoint.json.tmp` pointing
 * at a file under /etc, an image pointing at /etc/shadow). A FIFO would block the shim's synchronous reads,
 * and a device (or a link to /dev/zero) would feed them without end. So every entry must be a regular file
 * or a directory, before anything else reads the directory.
 */
import { lstatSync, readdirSync, type Stats } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";

/** More entries than a checkpoint has (CRIU writes tens of images per process). */
export const MAX_CHECKPOINT_ENTRIES = 100_000;

function kind(st: Stats): string {
  if (st.isSymbolicLink()) return "a symbolic link";
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  return "not a regular file";
}

/**
 * Throws INVALID_ARGUMENT unless dir is a directory (not a link to one) whose entries, at any depth, are
 * regular files and directories only, at most MAX_CHECKPOINT_ENTRIES of them.
 */
export function checkCheckpointEntries(dir: string): void {
  const refuse = (path: string, what: string) =>
    invalidArgument(`checkpoint ${dir}`, { detail: `${path} is ${what}: a checkpoint holds only regular files and directories` });
  const top = lstatSync(dir);
  if (!top.isDirectory()) throw refuse(dir, top.isSymbolicLink() ? "a symbolic link" : "not a directory");
  let count = 0;
  const pending = [dir];
  for (let d = pending.pop(); d !== undefined; d = pending.pop()) {
    for (const name of readdirSync(d)) {
      if (++count > MAX_CHECKPOINT_ENTRIES) throw invalidArgument(`checkpoint ${dir}`, { detail: `more than ${MAX_CHECKPOINT_ENTRIES} entries` });
      const path = join(d, name);
      const st = lstatSync(path);
      if (st.isDirectory()) pending.push(path);
      else if (!st.isFile()) throw refuse(path, kind(st));
    }
  }
}
