/**
 * CRIU's pagemap images (pagemap-<pid>.img): a head naming the task's pages image (pages-<pages_id>.img), then runs
 * of pages, each flagged where its pages are (criu/include/pagemap.h).
 */
import { decodeEntry, imageEntries, ImageMagic } from "./image-file.ts";
import { PagemapEntrySchema, PagemapHeadSchema } from "../gen/criu/pagemap_pb.ts";

/** In the parent checkpoint's images (an incremental dump). */
export const PE_PARENT = 1 << 0;
/** Served after the tree runs: by a lazy-pages daemon from this checkpoint's images, or alone by a page server. */
export const PE_LAZY = 1 << 1;
/** In this checkpoint's pages image, the runs one after the other. */
export const PE_PRESENT = 1 << 2;

/** One run of pages: its first address, its length in pages, its flags. */
export interface PagemapRun {
  vaddr: bigint;
  pages: bigint;
  flags: number;
}

/** A decoded pagemap image. */
export interface Pagemap {
  /** Its pages image is pages-<pagesId>.img. */
  pagesId: number;
  runs: PagemapRun[];
}

/**
 * Decodes the bytes of a pagemap image named name (for errors). CRIU before 3.x wrote in_parent and no flags: such a
 * run reads as PE_PARENT or PE_PRESENT; one with no page count of 64 bits has its 32-bit one. An image without a head
 * (none written) has no runs.
 */
export function decodePagemap(bytes: Uint8Array, name: string): Pagemap {
  const entries = imageEntries(bytes, name, ImageMagic.pagemap);
  if (entries.length === 0) return { pagesId: 0, runs: [] };
  const head = decodeEntry(PagemapHeadSchema, entries[0]!, `${name} head`);
  const runs = entries.slice(1).map((raw, i) => {
    const e = decodeEntry(PagemapEntrySchema, raw, `${name} entry ${i + 1}`);
    return { vaddr: e.vaddr, pages: e.nrPages > 0n ? e.nrPages : BigInt(e.compatNrPages), flags: e.flags !== 0 ? e.flags : e.inParent ? PE_PARENT : PE_PRESENT };
  });
  return { pagesId: head.pagesId, runs };
}
