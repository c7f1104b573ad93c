import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { StatsEntrySchema } from "../../../src/gen/criu/stats_pb.ts";
import { PstreeEntrySchema } from "../../../src/gen/criu/pstree_pb.ts";
import { decodeStats } from "../../../src/criu/stats.ts";
import { decodeImage, imageEntries, ImageMagic, IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC } from "../../../src/criu/image-file.ts";
import { Code, CryoError } from "../../../src/errors.ts";

/** Builds an image the way CRIU writes one: head magic, type magic, then u32-size-prefixed entries. */
function image(head: number | false, magic: number, entries: Uint8Array[]): Uint8Array {
  const parts: number[] = [];
  const u32 = (v: number) => parts.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  if (head !== false) u32(head);
  u32(magic);
  for (const e of entries) {
    u32(e.length);
    parts.push(...e);
  }
  return new Uint8Array(parts);
}

describe("CRIU image files", () => {
  test("stats-dump decodes into microseconds and page counts", () => {
    const entry = create(StatsEntrySchema, {
      dump: { freezingTime: 2904, frozenTime: 14657, memdumpTime: 1474, memwriteTime: 100, pagesScanned: 22n, pagesSkippedParent: 0n, pagesWritten: 14n, pagesLazy: 0n, pagePipes: 4n },
    });
    const stats = decodeStats(image(IMG_SERVICE_MAGIC, ImageMagic.stats, [toBinary(StatsEntrySchema, entry)]));
    expect(stats.dump).toEqual({
      freezingTimeUs: 2904,
      frozenTimeUs: 14657,
      memdumpTimeUs: 1474,
      memwriteTimeUs: 100,
      pagesScanned: 22,
      pagesSkippedParent: 0,
      pagesWritten: 14,
      pagesLazy: 0,
      pagePipes: 4,
    });
    expect(stats.restore).toBeUndefined();
  });

  test("stats-restore decodes", () => {
    const entry = create(StatsEntrySchema, { restore: { pagesCompared: 0n, pagesSkippedCow: 0n, forkingTime: 4, restoreTime: 5020, pagesRestored: 14n } });
    const stats = decodeStats(image(IMG_SERVICE_MAGIC, ImageMagic.stats, [toBinary(StatsEntrySchema, entry)]));
    expect(stats.restore).toEqual({ pagesCompared: 0, pagesSkippedCow: 0, forkingTimeUs: 4, restoreTimeUs: 5020, pagesRestored: 14 });
  });

  test("field numbers match CRIU's stats.proto (hand-encoded entry)", () => {
    // dump { freezing_time(1)=7, pages_written(7)=9, pages_lazy(9)=0 } as CRIU's protobuf-c writes it.
    const dump = [0x08, 7, 0x10, 0, 0x18, 0, 0x20, 0, 0x28, 0, 0x30, 0, 0x38, 9, 0x48, 0];
    const entry = new Uint8Array([0x0a, dump.length, ...dump]);
    const stats = decodeStats(image(IMG_SERVICE_MAGIC, ImageMagic.stats, [entry]));
    expect(stats.dump?.freezingTimeUs).toBe(7);
    expect(stats.dump?.pagesWritten).toBe(9);
  });

  test("pstree entries decode in order", () => {
    const a = toBinary(PstreeEntrySchema, create(PstreeEntrySchema, { pid: 10, ppid: 0, pgid: 10, sid: 10, threads: [10] }));
    const b = toBinary(PstreeEntrySchema, create(PstreeEntrySchema, { pid: 11, ppid: 10, pgid: 10, sid: 10, threads: [11, 12] }));
    const tree = decodeImage(PstreeEntrySchema, image(IMG_COMMON_MAGIC, ImageMagic.pstree, [a, b]), "pstree.img", ImageMagic.pstree);
    expect(tree.map((t) => [t.pid, t.ppid, [...t.threads]])).toEqual([
      [10, 0, [10]],
      [11, 10, [11, 12]],
    ]);
  });

  test("wrong magic, truncated entries and overruns are DATA_LOSS", () => {
    const bad = (bytes: Uint8Array) => {
      try {
        imageEntries(bytes, "x.img", ImageMagic.pstree);
      } catch (err) {
        return err as CryoError;
      }
      throw new Error("no error");
    };
    expect(bad(image(IMG_COMMON_MAGIC, ImageMagic.core, [])).code).toBe(Code.DATA_LOSS);
    expect(bad(image(IMG_SERVICE_MAGIC, ImageMagic.pstree, [])).message).toContain("head magic");
    const overrun = image(IMG_COMMON_MAGIC, ImageMagic.pstree, [new Uint8Array([1, 2, 3])]).subarray(0, 13);
    expect(bad(overrun).message).toContain("overruns");
    expect(bad(new Uint8Array([0x19, 0x43])).message).toContain("truncated");
  });

  test("inventory has no head magic", () => {
    expect(imageEntries(image(false, ImageMagic.inventory, [new Uint8Array([8, 2])]), "inventory.img", ImageMagic.inventory, false)).toHaveLength(1);
  });
});
