import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { checkFileEntries } from "../../../src/checkpoint/files-image-check.ts";
import { FdTypes, FileEntrySchema } from "../../../src/gen/criu/fdinfo_pb.ts";

const reg = (id: number, name: string, ext = false) => create(FileEntrySchema, { type: FdTypes.REG, id, reg: { id, flags: 0, pos: 0n, name, ext } });
const refused = (names: ReturnType<typeof reg>[]) => {
  try {
    checkFileEntries(names, "restore container c1 from /ck");
  } catch (err) {
    return (err as Error).message;
  }
  return "accepted";
};

test("regular files named as the kernel names them, and external ones, are accepted", () => {
  expect(refused([reg(1, "/bin/busybox"), reg(2, "/"), reg(3, "/tmp/a file (x)"), reg(4, "file[1b:ff0106]", true)])).toBe("accepted");
});

test("a name that climbs, is relative or has an empty component is refused, naming the file", () => {
  expect(refused([reg(1, "/bin/busybox"), reg(7, "/tmp/../../../usr/local/bin/x")])).toBe(
    'restore container c1 from /ck: invalid argument: files.img: regular file 7 is named "/tmp/../../../usr/local/bin/x", not an absolute path without empty, "." or ".." components',
  );
  expect(refused([reg(2, "tmp/x")])).toContain("regular file 2");
  expect(refused([reg(3, "/tmp//x")])).toContain("regular file 3");
  expect(refused([reg(4, "/tmp/./x")])).toContain("regular file 4");
});
