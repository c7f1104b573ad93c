import { describe, expect, test } from "bun:test";
import { argValue, mountsUnderFrom } from "../../../src/containerd/cleanup.ts";

describe("containerd cleanup helpers", () => {
  const mountinfo = [
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
    "90 22 0:50 / /tmp/ctd-a/state/x/rootfs rw - overlay overlay rw",
    "91 90 0:51 / /tmp/ctd-a/state/x/rootfs/proc rw - proc proc rw",
    "92 22 0:52 / /tmp/ctd-ab/rootfs rw - overlay overlay rw",
    "93 22 0:53 / /tmp/ctd-a/with\\040space rw - tmpfs tmpfs rw",
  ].join("\n");

  test("lists mounts below a directory, deepest first, not its siblings", () => {
    expect(mountsUnderFrom(mountinfo, "/tmp/ctd-a")).toEqual([
      "/tmp/ctd-a/state/x/rootfs/proc",
      "/tmp/ctd-a/state/x/rootfs",
      "/tmp/ctd-a/with space",
    ]);
  });

  test("argValue reads the value after a flag", () => {
    expect(argValue(["shim", "-namespace", "n1", "-id", "c1"], "-id")).toBe("c1");
    expect(argValue(["shim"], "-id")).toBeUndefined();
  });
});
