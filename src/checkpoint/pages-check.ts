/**
 * Whether every page image a checkpoint's pagemaps place in its directory is there and long enough.
 *
 * Each pagemap-<pid>.img names its pages image in its head (pages-<pages_id>.img) and, in its entries, the runs of
 * pages; the runs flagged PE_PRESENT are in that image, one after the other (PE_PARENT ones in the parent's images,
 * lazy ones without PE_PRESENT on a page server). CRIU reads a missing pages image as an empty one and fails deep in
 * the restore with "Can't read async pr bytes (-1 / N read, ...)", which names no file (a helper session, with
 * pages-1.img removed from a checkpoint image); a short one fails later still. Both are refused before anything is
 * made, naming the file and the bytes its pagemap places there.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";
import { decodeEntry, decodeImage, imageEntries, ImageMagic } from "../criu/image-file.ts";
import { PagemapEntrySchema, PagemapHeadSchema } from "../gen/criu/pagemap_pb.ts";
import { PstreeEntrySchema } from "../gen/criu/pstree_pb.ts";
import { readCheckpointImage } from "./image-paths.ts";

const PAGE_SIZE = 4096n;
/** CRIU's pagemap entry flag (criu/include/pagemap.h): the run's pages are in this checkpoint's pages image. */
const PE_PRESENT = 1 << 2;
const PE_PARENT = 1 << 0;

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
    const entries = imageEntries(readCheckpointImage(imagesDir, name), name, ImageMagic.pagemap);
    if (entries.length === 0) continue;
    const head = decodeEntry(PagemapHeadSchema, entries[0]!, `${name} head`);
    let bytes = 0n;
    for (const [i, raw] of entries.slice(1).entries()) {
      const e = decodeEntry(PagemapEntrySchema, raw, `${name} entry ${i + 1}`);
      const flags = e.flags !== 0 ? e.flags : e.inParent ? PE_PARENT : PE_PRESENT;
      if ((flags & PE_PRESENT) === 0) continue;
      bytes += (e.nrPages > 0n ? e.nrPages : BigInt(e.compatNrPages)) * PAGE_SIZE;
    }
    if (bytes === 0n) continue;
    const pages = `pages-${head.pagesId}.img`;
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
