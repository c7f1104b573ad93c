/**
 * The CRIU images a dump left in its checkpoint, as the checkpoint's metadata records them (`images`: each file's
 * name and size), and the restore's check of them.
 *
 * CRIU takes many images as optional at restore: without one it restores less and may report success (a helper
 * session: a checkpoint without pipes-data.img or netns-10.img restored RUNNING) or fail naming no file. The dump
 * knows which it wrote; a restore refuses a checkpoint that lacks one or holds one of another size, naming the file,
 * before anything is made. containerd's content store already checks its tar's digest, so what this catches is a
 * checkpoint edited or cut short on disk, or put together from parts (a helper session's damaged images).
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";

/** A CRIU image file's name (pages-N.img.zst: a compressed page image). */
export const CRIU_IMAGE_NAME = /^[^/\0]+\.img(\.zst)?$/;

/** One image a dump wrote, and its size then. */
export interface RecordedImage {
  name: string;
  bytes: number;
}

/** The CRIU images (regular files named *.img or *.img.zst) directly in dir, by name. */
export function listImages(dir: string): RecordedImage[] {
  const out: RecordedImage[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !CRIU_IMAGE_NAME.test(entry.name)) continue;
    out.push({ name: entry.name, bytes: statSync(join(dir, entry.name)).size });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * What differs in dir from the images its dump recorded, in words, one entry per kind (the missing ones, those of
 * another size); none: the images are as the dump wrote them. A compressed page image decompressed in place by an
 * earlier restore (pages-N.img for the recorded pages-N.img.zst) stands for it: its length is checked against its
 * pagemap (pages-check.ts). Files the dump did not record are left to the other checks.
 */
export function recordedImagesProblems(dir: string, recorded: readonly RecordedImage[]): string[] {
  const present = new Map(listImages(dir).map((f) => [f.name, f.bytes]));
  const missing: string[] = [];
  const resized: string[] = [];
  for (const f of recorded) {
    const bytes = present.get(f.name);
    if (bytes === undefined) {
      if (f.name.endsWith(".zst") && present.has(f.name.slice(0, -".zst".length))) continue;
      missing.push(`${f.name} (${f.bytes} bytes)`);
    } else if (bytes !== f.bytes) resized.push(`${f.name} holds ${bytes} bytes, the dump wrote ${f.bytes}`);
  }
  const out: string[] = [];
  if (missing.length > 0) out.push(`the checkpoint lacks ${missing.length === 1 ? "an image" : `${missing.length} images`} its dump wrote: ${missing.join(", ")}: not a whole CRIU dump`);
  if (resized.length > 0) out.push(`the checkpoint's images are not as its dump wrote them: ${resized.join("; ")}`);
  return out;
}

/** Refuses (INVALID_ARGUMENT) a checkpoint in dir whose images differ from those its dump recorded (recordedImagesProblems). */
export function checkRecordedImages(dir: string, recorded: readonly RecordedImage[], where: string): void {
  const [first] = recordedImagesProblems(dir, recorded);
  if (first !== undefined) throw invalidArgument(where, { detail: first });
}
