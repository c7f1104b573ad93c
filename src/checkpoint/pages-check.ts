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
