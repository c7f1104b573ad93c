import { describe, expect, test } from "bun:test";
import { parseMountOptions } from "../../../src/shim/rootfs.ts";
import { MS_BIND, MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_SHARED } from "../../../src/sys/mount-flags.ts";

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
