import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkDecompressedPageImages, checkPageImages } from "../../../src/checkpoint/pages-check.ts";
import { Code } from "../../../src/errors.ts";
import { ImageMagic } from "../../../src/criu/image-file.ts";
import { criuImage, encodeEntry } from "../../harness/criu-image.ts";
import { PagemapEntrySchema, PagemapHeadSchema } from "../../../src/gen/criu/pagemap_pb.ts";
import { PstreeEntrySchema } from "../../../src/gen/criu/pstree_pb.ts";

const root = mkdtempSync(join(tmpdir(), "cryo-pages-check-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const image = criuImage;
const enc = encodeEntry;

const PE_PARENT = 1 << 0;
const PE_LAZY = 1 << 1;
const PE_PRESENT = 1 << 2;

/** Images of a tree of two tasks: pid 1 with pages image 1 (3 + 2 pages present), pid 8 with pages image 2 (1 page present; 4 in the parent, 6 lazy on a page server). */
function images(): string {
  const dir = mkdtempSync(join(root, "img-"));
  writeFileSync(join(dir, "pstree.img"), image(ImageMagic.pstree, [1, 8].map((pid) => enc(PstreeEntrySchema, { pid, ppid: pid === 1 ? 0 : 1, pgid: 1, sid: 1 }))));
  const pagemap = (pagesId: number, runs: [number, number][]) =>
    image(ImageMagic.pagemap, [enc(PagemapHeadSchema, { pagesId }), ...runs.map(([n, flags], i) => enc(PagemapEntrySchema, { vaddr: BigInt(0x400000 + i * 0x100000), compatNrPages: n, nrPages: BigInt(n), flags }))]);
  writeFileSync(join(dir, "pagemap-1.img"), pagemap(1, [[3, PE_PRESENT], [2, PE_PRESENT | PE_LAZY]]));
  writeFileSync(join(dir, "pagemap-8.img"), pagemap(2, [[1, PE_PRESENT], [4, PE_PARENT], [6, PE_LAZY]]));
  writeFileSync(join(dir, "pages-1.img"), new Uint8Array(5 * 4096));
  writeFileSync(join(dir, "pages-2.img"), new Uint8Array(4096));
  return dir;
}

function refusal(dir: string): { code: Code; message: string } | undefined {
  try {
    checkPageImages(dir, "restore container c1 from X");
    return undefined;
  } catch (err) {
    return { code: (err as { code: Code }).code, message: (err as Error).message };
  }
}

test("a checkpoint whose pages images hold every page its pagemaps place there passes; parent and page-server runs need none", () => {
  expect(refusal(images())).toBeUndefined();
});

test("a missing pages image is refused, naming it and its pagemap", () => {
  const dir = images();
  rmSync(join(dir, "pages-2.img"));
  expect(refusal(dir)).toEqual({
    code: Code.INVALID_ARGUMENT,
    message: "restore container c1 from X: invalid argument: the checkpoint has no pages-2.img, where pagemap-8.img places 4096 bytes of pages of process 8: not a whole CRIU dump",
  });
});

test("a pages image cut short is refused, naming both sizes", () => {
  const dir = images();
  writeFileSync(join(dir, "pages-1.img"), new Uint8Array(5 * 4096 - 1));
  expect(refusal(dir)).toEqual({
    code: Code.INVALID_ARGUMENT,
    message: "restore container c1 from X: invalid argument: the checkpoint's pages-1.img holds 20479 bytes, but pagemap-1.img places 20480 bytes of pages of process 1 there: the image is cut short",
  });
});

test("a compressed pages image stands for its plain one (its length is checked when it is decompressed)", () => {
  const dir = images();
  rmSync(join(dir, "pages-1.img"));
  writeFileSync(join(dir, "pages-1.img.zst"), new Uint8Array(16));
  expect(refusal(dir)).toBeUndefined();
});

test("a decompressed pages image must hold exactly the bytes its pagemap places there: short or long is refused, naming the .zst", () => {
  const dir = images();
  // Shared memory's pages: a pagemap of its own, pagemap-shmem-<id>.img, naming pages image 3 (2 pages).
  writeFileSync(join(dir, "pagemap-shmem-77.img"), image(ImageMagic.pagemap, [enc(PagemapHeadSchema, { pagesId: 3 }), enc(PagemapEntrySchema, { vaddr: 0n, compatNrPages: 2, nrPages: 2n, flags: PE_PRESENT })]));
  const check = (files: { name: string; bytes: number }[]) => {
    try {
      checkDecompressedPageImages(dir, files, "restore container c1 from X");
      return undefined;
    } catch (err) {
      return { code: (err as { code: Code }).code, message: (err as Error).message };
    }
  };
  expect(check([{ name: "pages-1.img", bytes: 5 * 4096 }, { name: "pages-2.img", bytes: 4096 }, { name: "pages-3.img", bytes: 2 * 4096 }])).toBeUndefined();
  expect(check([{ name: "pages-2.img", bytes: 4095 }])).toEqual({
    code: Code.INVALID_ARGUMENT,
    message: "restore container c1 from X: invalid argument: the checkpoint's pages-2.img.zst decompressed to 4095 bytes, but pagemap-8.img places 4096 bytes of pages of process 8 there: the image is cut short",
  });
  expect(check([{ name: "pages-1.img", bytes: 6 * 4096 }])).toEqual({
    code: Code.INVALID_ARGUMENT,
    message: "restore container c1 from X: invalid argument: the checkpoint's pages-1.img.zst decompressed to 24576 bytes, but pagemap-1.img places 20480 bytes of pages of process 1 there: the image is longer than its pages",
  });
  expect(check([{ name: "pages-3.img", bytes: 4096 }])?.message).toContain("pagemap-shmem-77.img places 8192 bytes of pages of shared memory there: the image is cut short");
  // An image no pagemap names is not read by CRIU.
  expect(check([{ name: "pages-9.img", bytes: 123 }])).toBeUndefined();
});
