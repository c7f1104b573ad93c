import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkRecordedImages, listImages } from "../../../src/checkpoint/images-list.ts";
import { METADATA_FILE } from "../../../src/checkpoint/metadata.ts";
import { ImageMagic } from "../../../src/criu/image-file.ts";
import { PstreeEntrySchema } from "../../../src/gen/criu/pstree_pb.ts";
import { sampleCheckpointMetadata } from "../../harness/checkpoint-metadata.ts";
import { criuImage, encodeEntry } from "../../harness/criu-image.ts";
import { Code } from "../../../src/errors.ts";
import { errorOf } from "../../harness/error-of.ts";

const root = mkdtempSync(join(tmpdir(), "cryo-images-list-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A checkpoint directory: CRIU images, a compressed page image, and files that are not images. */
function checkpoint(): string {
  const dir = mkdtempSync(join(root, "ck-"));
  writeFileSync(join(dir, "pstree.img"), new Uint8Array(24));
  writeFileSync(join(dir, "pipes-data.img"), new Uint8Array(100));
  writeFileSync(join(dir, "pages-1.img.zst"), new Uint8Array(4000));
  writeFileSync(join(dir, "tmpfs-dev-43.tar.gz.img"), new Uint8Array(7));
  writeFileSync(join(dir, "cryo-checkpoint.json"), "{}");
  writeFileSync(join(dir, "dump.log"), "x");
  mkdirSync(join(dir, "sub.img"));
  symlinkSync("pstree.img", join(dir, "link.img"));
  return dir;
}

const refusal = errorOf;

test("listImages: the regular *.img and *.img.zst files, by name, with their sizes; no logs, metadata, directories or links", () => {
  expect(listImages(checkpoint())).toEqual([
    { name: "pages-1.img.zst", bytes: 4000 },
    { name: "pipes-data.img", bytes: 100 },
    { name: "pstree.img", bytes: 24 },
    { name: "tmpfs-dev-43.tar.gz.img", bytes: 7 },
  ]);
});

test("checkRecordedImages: the dump's images as it wrote them pass; files it did not record are left to the other checks", () => {
  const dir = checkpoint();
  const recorded = listImages(dir);
  writeFileSync(join(dir, "extra.img"), "x");
  expect(() => checkRecordedImages(dir, recorded, "restore x")).not.toThrow();
});

test("checkRecordedImages: a missing image is refused, naming it and its size (INVALID_ARGUMENT)", () => {
  const dir = checkpoint();
  const recorded = listImages(dir);
  rmSync(join(dir, "pipes-data.img"));
  const one = refusal(() => checkRecordedImages(dir, recorded, "restore x"));
  expect(one.code).toBe(Code.INVALID_ARGUMENT);
  expect(one.message).toBe("restore x: invalid argument: the checkpoint lacks an image its dump wrote: pipes-data.img (100 bytes): not a whole CRIU dump");
  rmSync(join(dir, "pstree.img"));
  expect(refusal(() => checkRecordedImages(dir, recorded, "restore x")).message).toContain("lacks 2 images its dump wrote: pipes-data.img (100 bytes), pstree.img (24 bytes)");
});

test("checkRecordedImages: an image of another size is refused, naming both sizes", () => {
  const dir = checkpoint();
  const recorded = listImages(dir);
  writeFileSync(join(dir, "pipes-data.img"), new Uint8Array(60));
  const e = refusal(() => checkRecordedImages(dir, recorded, "restore x"));
  expect(e.code).toBe(Code.INVALID_ARGUMENT);
  expect(e.message).toBe("restore x: invalid argument: the checkpoint's images are not as its dump wrote them: pipes-data.img holds 60 bytes, the dump wrote 100");
});

test("checkRecordedImages: a compressed page image an earlier restore decompressed in place stands for the recorded one", () => {
  const dir = checkpoint();
  const recorded = listImages(dir);
  renameSync(join(dir, "pages-1.img.zst"), join(dir, "pages-1.img"));
  writeFileSync(join(dir, "pages-1.img"), new Uint8Array(16384));
  expect(() => checkRecordedImages(dir, recorded, "restore x")).not.toThrow();
  rmSync(join(dir, "pages-1.img"));
  expect(refusal(() => checkRecordedImages(dir, recorded, "restore x")).message).toContain("pages-1.img.zst (4000 bytes)");
});

test("cryo inspect says what differs from the images the dump recorded, with exit code 1", async () => {
  const { inspectCommand } = await import("../../../src/checkpoint/inspect-command.ts");
  const dir = mkdtempSync(join(root, "inspect-"));
  writeFileSync(join(dir, "pstree.img"), criuImage(ImageMagic.pstree, [encodeEntry(PstreeEntrySchema, { pid: 1, ppid: 0, pgid: 1, sid: 1 })]));
  writeFileSync(join(dir, "pipes-data.img"), new Uint8Array(100));
  writeFileSync(join(dir, METADATA_FILE), JSON.stringify({ ...sampleCheckpointMetadata(), imagesDir: ".", images: listImages(dir) }));
  const run = async () => {
    let err = "";
    const code = await inspectCommand.run([dir], { out: () => {}, err: (t) => void (err += t) });
    return { code, err };
  };
  expect((await run()).err).not.toContain("its dump wrote");
  rmSync(join(dir, "pipes-data.img"));
  const r = await run();
  expect(r.code).toBe(1);
  expect(r.err).toContain("the checkpoint lacks an image its dump wrote: pipes-data.img (100 bytes): not a whole CRIU dump");
});
