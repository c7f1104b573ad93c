import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { removeIfEmptied, sweepEmptied, watchRemoval } from "../../../src/shim/dir-watch.ts";
import { waitFor } from "../../harness/wait-for.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync("/tmp/cryo-dir-watch-");
  dirs.push(d);
  return d;
}

/** Resolves with the number of onGone calls: waits for the first, then a few more polls for a second one. */
function gone(path: string, change: () => void): Promise<number> {
  return new Promise((resolve) => {
    let calls = 0;
    const stop = watchRemoval(
      path,
      () => {
        if (calls++ === 0) setTimeout(() => (stop(), resolve(calls)), 30);
      },
      5,
    );
    change();
  });
}

test("a removed directory is reported once", async () => {
  const d = join(tmp(), "images");
  mkdirSync(d);
  writeFileSync(join(d, "ids-1.img"), "x");
  expect(await gone(d, () => rmSync(d, { recursive: true }))).toBe(1);
});

test("a directory replaced by another of the same name is reported", async () => {
  const root = tmp();
  const d = join(root, "images");
  mkdirSync(d);
  expect(
    await gone(d, () => {
      renameSync(d, join(root, "old"));
      mkdirSync(d);
    }),
  ).toBe(1);
});

test("a directory that stays, with files coming and going in it, is not reported", async () => {
  const d = tmp();
  let calls = 0;
  const stop = watchRemoval(d, () => calls++, 5);
  writeFileSync(join(d, "pages-1.img"), "x");
  rmSync(join(d, "pages-1.img"));
  await Bun.sleep(40);
  stop();
  expect(calls).toBe(0);
});

test("stopped before the removal: nothing is reported; a path that is not a directory is not watched", async () => {
  const d = tmp();
  let calls = 0;
  watchRemoval(d, () => calls++, 5)();
  rmSync(d, { recursive: true });
  const f = join(tmp(), "file");
  writeFileSync(f, "");
  watchRemoval(f, () => calls++, 5);
  rmSync(f);
  watchRemoval(join(tmp(), "missing"), () => calls++, 5);
  await Bun.sleep(40);
  expect(calls).toBe(0);
});

test("a dump's directory that lost CRIU's inventory (containerd's removal raced with a late write) is removed", () => {
  const d = join(tmp(), "ctd-checkpoint1");
  mkdirSync(d);
  writeFileSync(join(d, "cryo-checkpoint.json"), "{}");
  expect(removeIfEmptied(d)).toBe(true);
  expect(existsSync(d)).toBe(false);
  // gone already: nothing to do
  expect(removeIfEmptied(d)).toBe(false);
});

test("a dump's directory with its inventory stays", () => {
  const d = tmp();
  writeFileSync(join(d, "inventory.img"), "x");
  writeFileSync(join(d, "pages-1.img"), "x");
  expect(removeIfEmptied(d)).toBe(false);
  expect(existsSync(join(d, "pages-1.img"))).toBe(true);
});

test("the sweep looks again later: a directory emptied after the dump's end goes then", async () => {
  const d = tmp();
  writeFileSync(join(d, "inventory.img"), "x");
  const removed: string[] = [];
  sweepEmptied(d, (when) => removed.push(when), 20, 30);
  expect(removed).toEqual([]);
  // containerd's removal, cut short by a file written after its listing
  rmSync(join(d, "inventory.img"));
  writeFileSync(join(d, "cryo-checkpoint.json"), "{}");
  await waitFor(() => (removed.length > 0 ? true : undefined), { timeoutMs: 2_000, what: "the late sweep" });
  expect(removed).toEqual(["late"]);
  expect(existsSync(d)).toBe(false);
});

test("a removal still under way at the late look (containerd's, after a checkpoint it took) is left to it: nothing is reported removed", async () => {
  const d = tmp();
  writeFileSync(join(d, "inventory.img"), "x");
  for (let i = 0; i < 12; i++) writeFileSync(join(d, `pages-${i}.img`), "x");
  const removed: string[] = [];
  sweepEmptied(d, (when) => removed.push(when), 20, 100);
  // The inventory goes first, the rest one file at a time, faster than the settle time, then the directory.
  rmSync(join(d, "inventory.img"));
  await Bun.sleep(30);
  for (let i = 0; i < 12; i++) {
    rmSync(join(d, `pages-${i}.img`));
    await Bun.sleep(20);
  }
  rmSync(d, { recursive: true });
  await Bun.sleep(200);
  expect(removed).toEqual([]);
});

test("gone() answers at once, between the watch's looks: removed or replaced is gone, a missing start never is", () => {
  const root = tmp();
  const d = join(root, "images");
  mkdirSync(d);
  const watch = watchRemoval(d, () => {}, 60_000);
  expect(watch.gone()).toBe(false);
  renameSync(d, join(root, "old"));
  expect(watch.gone()).toBe(true);
  mkdirSync(d);
  expect(watch.gone()).toBe(true); // another directory under the same name
  watch();
  expect(watchRemoval(join(root, "missing"), () => {}, 60_000).gone()).toBe(false);
});
