import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { checkFileEntries } from "../../../src/checkpoint/files-image-check.ts";
import { capabilityNumber, grantedCapabilities } from "../../../src/criu/capabilities.ts";
import { FdTypes, FileEntrySchema } from "../../../src/gen/criu/fdinfo_pb.ts";

const reg = (id: number, name: string, ext = false) => create(FileEntrySchema, { type: FdTypes.REG, id, reg: { id, flags: 0, pos: 0n, name, ext } });
// ctr's default capabilities, which include CAP_NET_RAW.
const ctrCaps = grantedCapabilities({ bounding: ["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"], effective: ["CAP_NET_RAW"] });
const refused = (names: ReturnType<typeof reg>[], granted: ReadonlySet<number> = ctrCaps) => {
  try {
    checkFileEntries(names, "restore container c1 from /ck", granted);
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

test("descriptors CRIU makes as root that a task of the spec could not have made: refused without the capability", () => {
  const fd = (id: number, type: FdTypes, extra: Record<string, unknown> = {}) => create(FileEntrySchema, { type, id, ...extra });
  const raw = fd(3, FdTypes.INETSK, { isk: { id: 3, ino: 1, family: 2, type: 3, proto: 1, state: 7, srcPort: 0, dstPort: 0, flags: 2, backlog: 0 } });
  const tcp = fd(4, FdTypes.INETSK, { isk: { id: 4, ino: 2, family: 2, type: 1, proto: 6, state: 10, srcPort: 80, dstPort: 0, flags: 2, backlog: 128 } });
  expect(refused([raw, tcp, fd(5, FdTypes.PACKETSK)])).toBe("accepted");
  const noRaw = grantedCapabilities({ bounding: ["CHOWN"] });
  expect(refused([tcp], noRaw)).toBe("accepted");
  expect(refused([tcp, raw], noRaw)).toBe("restore container c1 from /ck: invalid argument: files.img: file 3 is a raw inet socket, which takes CAP_NET_RAW, and the spec grants it not");
  expect(refused([fd(5, FdTypes.PACKETSK)], noRaw)).toContain("file 5 is a packet socket, which takes CAP_NET_RAW");
  expect(refused([fd(6, FdTypes.TUNF)])).toContain("file 6 is a tun device, which takes CAP_NET_ADMIN, and the spec grants it not");
  expect(refused([fd(7, FdTypes.FANOTIFY)])).toContain("file 7 is a fanotify group, which takes CAP_SYS_ADMIN");
  expect(refused([fd(8, FdTypes.BPFMAP)])).toContain("file 8 is a BPF map, which takes CAP_BPF or CAP_SYS_ADMIN, and the spec grants neither");
  expect(refused([fd(8, FdTypes.BPFMAP)], new Set([capabilityNumber("CAP_BPF")]))).toBe("accepted");
});

