import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { detachRestoreLeftovers, removeRestoreImages } from "../../../src/shim/cleanup.ts";
import { readRestoreImages, recordRestoreImages } from "../../../src/shim/orphaned-criu.ts";
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

test("delete removes the page store's images directory a local-pages restore recorded, and nothing outside the store", async () => {
  const store = join(dir, "pages");
  const saved = process.env.CRYO_PAGE_STORE;
  process.env.CRYO_PAGE_STORE = store;
  try {
    const bundle = join(dir, "bundle-pages");
    const images = join(store, ".restore-abc");
    const entry = join(store, "ns-c1-1234");
    for (const d of [bundle, images, entry]) mkdirSync(d, { recursive: true });
    writeFileSync(join(images, "pages-1.img"), "p");
    // What a daemon SIGKILLed mid-restore left (before: kept until `cryo pages prune` found it old enough).
    recordRestoreImages(bundle, images);
    await removeRestoreImages(bundle, log);
    expect(existsSync(images)).toBe(false);
    expect(readRestoreImages(bundle)).toBeUndefined();
    expect(lines.at(-1)).toBe(`removed ${images}: the page store's images directory of a restore whose shim died before it could`);
    // A record naming a page store entry, a directory outside the store or a `.restore-` one below another: left alone.
    const outside = join(dir, ".restore-elsewhere");
    const nested = join(entry, ".restore-x");
    for (const d of [outside, nested]) mkdirSync(d, { recursive: true });
    for (const named of [entry, outside, nested, `${store}/../.restore-elsewhere`]) {
      recordRestoreImages(bundle, named);
      await removeRestoreImages(bundle, log);
      expect(readRestoreImages(bundle)).toBeUndefined();
    }
    for (const d of [entry, outside, nested]) expect(existsSync(d)).toBe(true);
  } finally {
    if (saved === undefined) delete process.env.CRYO_PAGE_STORE;
    else process.env.CRYO_PAGE_STORE = saved;
  }
});
