import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkTaskImages } from "../../../src/checkpoint/task-images-check.ts";
import { Code } from "../../../src/errors.ts";
import { IMG_COMMON_MAGIC, ImageMagic } from "../../../src/criu/image-file.ts";
import { TaskKobjIdsEntrySchema } from "../../../src/gen/criu/core_pb.ts";

const root = mkdtempSync(join(tmpdir(), "cryo-task-images-check-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A CRIU image file of one entry: the two magics, the entry's size, the entry. */
function image(magic: number, entry: Uint8Array): Uint8Array {
  return Buffer.concat([new Uint8Array(new Uint32Array([IMG_COMMON_MAGIC, magic, entry.length]).buffer), entry]);
}

/** Images of tasks 1 and 8 (8 sharing 1's descriptor table, files id 2) and of a zombie, 9, which has none of them. */
function images(): string {
  const dir = mkdtempSync(join(root, "img-"));
  for (const pid of [1, 8]) {
    writeFileSync(join(dir, `ids-${pid}.img`), image(ImageMagic.ids, toBinary(TaskKobjIdsEntrySchema, create(TaskKobjIdsEntrySchema, { vmId: pid, filesId: 2, fsId: pid, sighandId: pid }))));
    writeFileSync(join(dir, `mm-${pid}.img`), new Uint8Array(8));
    writeFileSync(join(dir, `pagemap-${pid}.img`), new Uint8Array(8));
  }
  writeFileSync(join(dir, "fdinfo-2.img"), new Uint8Array(8));
  return dir;
}

function refusal(dir: string, live = [1, 8]): { code: Code; message: string } | undefined {
  try {
    checkTaskImages(dir, live, "restore container c1 from X");
    return undefined;
  } catch (err) {
    return { code: (err as { code: Code }).code, message: (err as Error).message };
  }
}

test("live tasks with their mm, pagemap and fdinfo images pass; a shared descriptor table is one image; a zombie needs none", () => {
  expect(refusal(images())).toBeUndefined();
  expect(refusal(images(), [1, 8, 9])).toEqual({
    code: Code.INVALID_ARGUMENT,
    message: "restore container c1 from X: invalid argument: the checkpoint has no mm-9.img, pagemap-9.img for its live task 9: not a whole CRIU dump",
  });
});

test("a missing descriptor table, memory map or pagemap is refused, naming the task and the images", () => {
  for (const [name, task] of [["fdinfo-2.img", 1], ["mm-8.img", 8], ["pagemap-1.img", 1]] as const) {
    const dir = images();
    rmSync(join(dir, name));
    expect(refusal(dir)).toEqual({ code: Code.INVALID_ARGUMENT, message: `restore container c1 from X: invalid argument: the checkpoint has no ${name} for its live task ${task}: not a whole CRIU dump` });
  }
});
