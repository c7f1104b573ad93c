import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isMountpoint, resolveDestInRoot, resolveInRoot } from "../../../src/checkpoint/restore-root.ts";

let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "cryo-resolve-root-"));
  mkdirSync(join(root, "var/lib"), { recursive: true });
  symlinkSync("/etc", join(root, "abs")); // absolute: means <root>/etc, not the host's /etc
  symlinkSync("var/lib", join(root, "rel"));
  symlinkSync("../../..", join(root, "var/lib/up")); // climbs past the root
  symlinkSync("loop2", join(root, "loop1"));
  symlinkSync("loop1", join(root, "loop2"));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("resolveInRoot: a mount point's host path, never outside the rootfs", () => {
  test("plain and missing paths stay as they are", () => {
    expect(resolveInRoot(root, "/var/lib/data")).toBe(join(root, "var/lib/data"));
    expect(resolveInRoot(root, "/new/deep/dir")).toBe(join(root, "new/deep/dir"));
    expect(resolveInRoot(root, "//var/./lib/")).toBe(join(root, "var/lib"));
  });

  test("an absolute symlink starts again at the rootfs", () => {
    expect(resolveInRoot(root, "/abs/hosts")).toBe(join(root, "etc/hosts"));
  });

  test("a relative symlink resolves from its directory", () => {
    expect(resolveInRoot(root, "/rel/x")).toBe(join(root, "var/lib/x"));
  });

  test("'..' and links that climb stop at the rootfs", () => {
    expect(resolveInRoot(root, "/../../etc")).toBe(join(root, "etc"));
    expect(resolveInRoot(root, "/var/lib/up/etc/shadow")).toBe(join(root, "etc/shadow"));
  });

  test("a symlink loop and '..' after a missing component are refused", () => {
    expect(() => resolveInRoot(root, "/loop1/x")).toThrow("too many symbolic links");
    expect(() => resolveInRoot(root, "/missing/../../x")).toThrow("'..' after a missing component");
  });
});

test("resolveDestInRoot: the container path a mount lands at (Debian's /var/run -> /run)", () => {
  mkdirSync(join(root, "run"), { recursive: true });
  mkdirSync(join(root, "var"), { recursive: true });
  symlinkSync("/run", join(root, "var/run"));
  expect(resolveDestInRoot(root, "/var/run/secrets/kubernetes.io/serviceaccount")).toBe("/run/secrets/kubernetes.io/serviceaccount");
  expect(resolveDestInRoot(`${root}/`, "/rel/x")).toBe("/var/lib/x");
  expect(resolveDestInRoot(root, "/data")).toBe("/data");
  expect(resolveDestInRoot(root, "/")).toBe("/");
  expect(resolveDestInRoot(root, "/var/lib/up")).toBe("/");
});

describe("isMountpoint: from mountinfo, with its escapes", () => {
  const info = [
    "22 1 8:1 / / rw,relatime - ext4 /dev/vda rw",
    "40 22 0:50 / /run/containerd/runc/ns/c1/criu-root rw - overlay overlay rw",
    "41 22 0:51 / /run/with\\040space rw - tmpfs tmpfs rw",
  ].join("\n");
  test("a mount point is one; its parent or a sibling is not", () => {
    expect(isMountpoint("/run/containerd/runc/ns/c1/criu-root", info)).toBe(true);
    expect(isMountpoint("/run/with space", info)).toBe(true);
    expect(isMountpoint("/run/containerd/runc/ns/c1", info)).toBe(false);
    expect(isMountpoint("/run/containerd/runc/ns/c1/criu-root/x", info)).toBe(false);
  });
});
