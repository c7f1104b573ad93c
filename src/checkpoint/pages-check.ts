/**
 * Whether every page image a checkpoint's pagemaps place in its directory is there and long enough.
 *
 * Each pagemap-<pid>.img names its pages image in its head (pages-<pages_id>.img) and, in its entries, the runs of
 * pages; the runs flagged PE_PRESENT are in that image, one after the other (PE_PARENT ones in the parent's images,
 * lazy ones without PE_PRESENT on a page server). CRIU reads a missing pages image as an empty one and fails deep in
 * the restore with "Can't read async pr bytes (-1 / N read, ...)", which names no file (a helper session, with
 * pages-1.img removed from a checkpoint image); a short one fails later still. Both are refused before anything is
 * made, naming the file and the bytes its pagemap places there.
 *
 * A compressed image (pages-N.img.zst) is checked once the restore has decompressed it (checkDecompressedPageImages),
 * to the byte: a .zst decompresses to whatever its author chose, whatever the metadata says of it.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { decodePagemap, PE_PRESENT } from "../criu/pagemap.ts";
import { PstreeEntrySchema } from "../gen/criu/pstree_pb.ts";
import { readCheckpointImage } from "./image-paths.ts";

const PAGE_SIZE = 4096n;

/**
 * Refuses (INVALID_ARGUMENT) a checkpoint in imagesDir whose pagemaps place pages in a pages image that is missing,
 * or shorter than those pages. A compressed image (pages-N.img.zst) stands for its plain one; its length is checked
 * when it is decompressed. A task without a pagemap image (a zombie) has no pages.
 */
export function checkPageImages(imagesDir: string, where: string): void {
  const pstree = decodeImage(PstreeEntrySchema, readCheckpointImage(imagesDir, "pstree.img"), "pstree.img", ImageMagic.pstree);
  for (const p of pstree) {
    const name = `pagemap-${p.pid}.img`;
    if (!existsSync(join(imagesDir, name))) continue;
    const pagemap = decodePagemap(readCheckpointImage(imagesDir, name), name);
    let bytes = 0n;
    for (const r of pagemap.runs) if ((r.flags & PE_PRESENT) !== 0) bytes += r.pages * PAGE_SIZE;
    if (bytes === 0n) continue;
    const pages = `pages-${pagemap.pagesId}.img`;
    if (existsSync(join(imagesDir, `${pages}.zst`))) continue;
    if (!existsSync(join(imagesDir, pages))) {
      throw invalidArgument(where, { detail: `the checkpoint has no ${pages}, where ${name} places ${bytes} bytes of pages of process ${p.pid}: not a whole CRIU dump` });
    }
    const size = BigInt(statSync(join(imagesDir, pages)).size);
    if (size < bytes) {
      throw invalidArgument(where, { detail: `the checkpoint's ${pages} holds ${size} bytes, but ${name} places ${bytes} bytes of pages of process ${p.pid} there: the image is cut short` });
    }
  }
}

/** A pages image a pagemap names: the pagemap, the bytes it places there, and the process (none for shared memory). */
interface PagesUse {
  pagemap: string;
  bytes: bigint;
  pid?: number;
}

/** Every pages image the checkpoint's pagemaps name (the tasks' and shared memory's, pagemap-shmem-<id>.img), with the bytes each places there. */
function pagesUses(imagesDir: string): Map<string, PagesUse> {
  const uses = new Map<string, PagesUse>();
  const add = (name: string, pid: number | undefined) => {
    const pagemap = decodePagemap(readCheckpointImage(imagesDir, name), name);
    if (pagemap.runs.length === 0 && pagemap.pagesId === 0) return;
    let bytes = 0n;
    for (const r of pagemap.runs) if ((r.flags & PE_PRESENT) !== 0) bytes += r.pages * PAGE_SIZE;
    uses.set(`pages-${pagemap.pagesId}.img`, { pagemap: name, bytes, ...(pid === undefined ? {} : { pid }) });
  };
  const pstree = decodeImage(PstreeEntrySchema, readCheckpointImage(imagesDir, "pstree.img"), "pstree.img", ImageMagic.pstree);
  for (const p of pstree) if (existsSync(join(imagesDir, `pagemap-${p.pid}.img`))) add(`pagemap-${p.pid}.img`, p.pid);
  for (const name of readdirSync(imagesDir).sort()) if (/^pagemap-shmem-\d+\.img$/.test(name)) add(name, undefined);
  return uses;
}

/**
 * Refuses (INVALID_ARGUMENT) a pages image the restore decompressed (decompressed: the plain images' names and sizes,
 * decompressImages' report) whose size is not the bytes its pagemap places there: CRIU reads the runs one after the
 * other, so a short one restores a task with memory missing or fails deep in the restore, and a long one is not what
 * the dump wrote. An image no pagemap names is not read by CRIU, and left (its bytes counted in the decompression's
 * limit all the same).
 */
export function checkDecompressedPageImages(imagesDir: string, decompressed: readonly { name: string; bytes: number }[], where: string): void {
  if (decompressed.length === 0) return;
  const uses = pagesUses(imagesDir);
  for (const f of decompressed) {
    const use = uses.get(f.name);
    if (!use || BigInt(f.bytes) === use.bytes) continue;
    const whose = use.pid === undefined ? "shared memory" : `process ${use.pid}`;
    const why = BigInt(f.bytes) < use.bytes ? "the image is cut short" : "the image is longer than its pages";
    throw invalidArgument(where, { detail: `the checkpoint's ${f.name}.zst decompressed to ${f.bytes} bytes, but ${use.pagemap} places ${use.bytes} bytes of pages of ${whose} there: ${why}` });
  }
}
