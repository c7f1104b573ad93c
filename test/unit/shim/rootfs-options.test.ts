import { describe, expect, test } from "bun:test";
import { parseMountOptions } from "../../../src/shim/rootfs.ts";

const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;
const MS_BIND = 4096;
const MS_REC = 16384;
const MS_PRIVATE = 1 << 18;
const MS_SHARED = 1 << 20;

describe("parseMountOptions (containerd's rootfs mount options for mount(2))", () => {
  test("an overlay's options are all data; no flags", () => {
    const o = parseMountOptions(["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"]);
    expect(o).toEqual({ flags: 0, propagation: 0, data: "index=off,workdir=/w,upperdir=/u,lowerdir=/l1:/l2", needsMountCommand: false });
  });

  test("a read-only recursive bind (a snapshot view) is flags only", () => {
    expect(parseMountOptions(["rbind", "ro"])).toEqual({ flags: MS_BIND | MS_REC | MS_RDONLY, propagation: 0, data: "", needsMountCommand: false });
  });

  test("words that clear a flag undo an earlier word, in order", () => {
    expect(parseMountOptions(["ro", "nosuid", "nodev", "rw", "suid"]).flags).toBe(MS_NODEV);
    expect(parseMountOptions(["rw", "ro"]).flags).toBe(MS_RDONLY);
    expect(parseMountOptions(["defaults", "nosuid"]).flags).toBe(MS_NOSUID);
  });

  test("propagation words are kept apart for a second call", () => {
    const o = parseMountOptions(["bind", "rprivate"]);
    expect(o.flags).toBe(MS_BIND);
    expect(o.propagation).toBe(MS_PRIVATE | MS_REC);
    expect(parseMountOptions(["shared"]).propagation).toBe(MS_SHARED);
  });

  test("loop devices and data longer than a page go to mount(8)", () => {
    expect(parseMountOptions(["loop", "ro"]).needsMountCommand).toBe(true);
    const many = Array.from({ length: 200 }, (_, i) => `/var/lib/containerd/snapshots/${i}/fs`).join(":");
    expect(parseMountOptions([`lowerdir=${many}`]).needsMountCommand).toBe(true);
    expect(parseMountOptions([`lowerdir=/a:/b`]).needsMountCommand).toBe(false);
  });
});
