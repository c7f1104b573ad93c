import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { detachRestoreLeftovers } from "../../../src/shim/cleanup.ts";
import { MS_BIND, mount, umount2, MNT_DETACH } from "../../../src/sys/index.ts";

const dir = mkdtempSync("/tmp/cryo-leftovers-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const lines: string[] = [];
const log = { warn: (m: string) => void lines.push(m), info() {}, debug() {}, error() {} } as unknown as Parameters<typeof detachRestoreLeftovers>[1];
const mounted = (p: string) => readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4] === p);

test("delete detaches what a restore its shim did not finish left mounted: CRIU's root and the staged tmpfs", async () => {
  const rootfs = join(dir, "rootfs");
  const criuRoot = join(dir, "runc", "c1", "criu-root");
  const staged = join(dir, "bundle", "criu-restore-work", "tmpfs-0");
  for (const d of [rootfs, criuRoot, staged]) mkdirSync(d, { recursive: true });
  writeFileSync(join(rootfs, "precious"), "x");
  mount(rootfs, criuRoot, null, MS_BIND);
  mount("tmpfs", staged, "tmpfs", 0, "size=1m");
  try {
    const done = await detachRestoreLeftovers([criuRoot, join(dir, "bundle", "criu-restore-work")], log);
    expect(done.sort()).toEqual([criuRoot, staged].sort());
    expect(mounted(criuRoot)).toBe(false);
    expect(mounted(staged)).toBe(false);
    expect(lines.some((l) => l.includes(`detached ${criuRoot}`))).toBe(true);
    // So removing the state directory no longer reaches into the rootfs.
    rmSync(join(dir, "runc"), { recursive: true, force: true });
    expect(readFileSync(join(rootfs, "precious"), "utf8")).toBe("x");
  } finally {
    for (const p of [criuRoot, staged]) if (mounted(p)) umount2(p, MNT_DETACH);
  }
  // Nothing there: nothing done.
  expect(await detachRestoreLeftovers([join(dir, "none")], log)).toEqual([]);
});
