import { expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeInBackground } from "../../../src/shim/restore-container.ts";

test("removeInBackground removes a directory tree (containerd's extraction of a checkpoint) and resolves once it is gone", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-rm-bg-"));
  mkdirSync(join(dir, "sub"));
  writeFileSync(join(dir, "pages-1.img"), Buffer.alloc(1 << 20, 7));
  writeFileSync(join(dir, "sub", "x"), "x");
  await removeInBackground(dir);
  expect(existsSync(dir)).toBe(false);
});

test("removeInBackground of a directory already gone resolves", async () => {
  const parent = mkdtempSync(join(tmpdir(), "cryo-rm-bg-"));
  try {
    const dir = join(parent, "gone");
    await removeInBackground(dir);
    expect(existsSync(dir)).toBe(false);
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
