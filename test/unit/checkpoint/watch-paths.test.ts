import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findWatchedPaths, kernelDev, parseWatches } from "../../../src/checkpoint/watch-paths.ts";

test("parseWatches: inotify and fanotify marks of an fdinfo, nothing from other descriptors", () => {
  const inotify = "pos:\t0\nflags:\t02004000\nmnt_id:\t15\nino:\t1057\ninotify wd:2 ino:1a2b sdev:2a mask:100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:2b1a000000000000\ninotify wd:1 ino:7 sdev:800001 mask:100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0700000000000000\n";
  expect(parseWatches(inotify)).toEqual([
    { ino: 0x1a2bn, sdev: 0x2a },
    { ino: 7n, sdev: 0x800001 },
  ]);
  expect(parseWatches("pos:\t0\nflags:\t02\nfanotify flags:0 event-flags:0\nfanotify ino:ffffffffffff sdev:fd00001 mflags:0 mask:1 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:00\n")).toEqual([{ ino: 0xffffffffffffn, sdev: 0xfd00001 }]);
  expect(parseWatches("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\neventfd-count:    7\n")).toEqual([]);
});

test("kernelDev: glibc's dev_t to the kernel's major << 20 | minor", () => {
  expect(kernelDev(0x2an)).toBe(0x2a); // 0:42, an overlayfs
  expect(kernelDev(0x801n)).toBe((8 << 20) | 1); // 8:1, sda1
  expect(kernelDev(0xfd00n)).toBe(253 << 20); // 253:0
  // A minor above 255 keeps its high bits above the major's.
  expect(kernelDev((0x12n << 8n) | 0x34n | (0x567n << 12n << 8n))).toBe((0x12 << 20) | 0x56734);
});

test("findWatchedPaths: the watched inodes on the root's device, as the container names them; links not followed; the walk bounded", async () => {
  const root = mkdtempSync(join(tmpdir(), "cryo-watch-"));
  try {
    mkdirSync(join(root, "app/config"), { recursive: true });
    writeFileSync(join(root, "app/config/settings"), "x");
    mkdirSync(join(root, "tmp"));
    symlinkSync("/etc", join(root, "etc-link"));
    const st = (p: string) => statSync(join(root, p), { bigint: true });
    const dev = kernelDev(st("").dev);
    const watched = [
      { sdev: dev, ino: st("tmp").ino },
      { sdev: dev, ino: st("app/config/settings").ino },
      // The host's /etc, reachable only by following the link: not looked for there.
      { sdev: kernelDev(statSync("/etc", { bigint: true }).dev), ino: statSync("/etc", { bigint: true }).ino },
      // Another device's inode: not on the rootfs.
      { sdev: dev + 1, ino: st("app").ino },
    ];
    const found = await findWatchedPaths(root, watched);
    expect(found.sort()).toEqual(["/app/config/settings", "/tmp"]);
    expect(await findWatchedPaths(root, [{ sdev: dev, ino: st("").ino }])).toEqual(["/"]);
    // The root given as a link to it on another file system, as /proc/PID/root is (procfs).
    const link = join("/dev/shm", `cryo-watch-link-${process.pid}`);
    expect(statSync("/dev/shm").dev).not.toBe(statSync(root).dev);
    symlinkSync(root, link);
    try {
      expect((await findWatchedPaths(link, watched)).sort()).toEqual(["/app/config/settings", "/tmp"]);
    } finally {
      rmSync(link);
    }
    expect(await findWatchedPaths(root, [])).toEqual([]);
    // Bounded: after 3 entries the walk stops, before app/config/settings.
    expect(await findWatchedPaths(root, watched, 3)).toEqual(["/tmp"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("findWatchedPaths walks without holding the event loop: timers run while it goes through many directories", async () => {
  const root = mkdtempSync(join(tmpdir(), "cryo-watch-"));
  try {
    for (let d = 0; d < 60; d++) {
      mkdirSync(join(root, `d${d}`));
      for (let f = 0; f < 10; f++) writeFileSync(join(root, `d${d}`, `f${f}`), "");
    }
    const dev = kernelDev(statSync(root, { bigint: true }).dev);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    // An inode that is not there: the walk goes through everything.
    const found = await findWatchedPaths(root, [{ sdev: dev, ino: 1n }]);
    clearInterval(timer);
    expect(found).toEqual([]);
    expect(ticks).toBeGreaterThan(5);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
