import { expect, test } from "bun:test";
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { grantImages, unprivilegedUserfaultfd } from "../../../src/shim/restore-container.ts";

const owner = (p: string) => {
  const st = statSync(p);
  return { uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) };
};

test("grantImages: the images become root's with the namespace's root group, searchable and readable by it; revoke puts back what was there, a hard link's store file too", () => {
  const top = mkdtempSync(join(tmpdir(), "cryo-grant-"));
  try {
    const dir = join(top, "images");
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o700);
    writeFileSync(join(dir, "core-1.img"), "c", { mode: 0o600 });
    chmodSync(join(dir, "core-1.img"), 0o600);
    // A page image hard-linked from a page store, owned by someone else and setgid (never kept while granted).
    const store = join(top, "store-pages-1.img");
    writeFileSync(store, "p");
    chownSync(store, 1234, 5678);
    chmodSync(store, 0o2604);
    linkSync(store, join(dir, "pages-1.img"));
    mkdirSync(join(dir, "sub"), { mode: 0o700 });

    const granted = grantImages(dir, 100000);
    expect(owner(dir)).toEqual({ uid: 0, gid: 100000, mode: "710" });
    expect(owner(join(dir, "core-1.img"))).toEqual({ uid: 0, gid: 100000, mode: "640" });
    expect(owner(store)).toEqual({ uid: 0, gid: 100000, mode: "644" });
    // Only the directory's own files: nothing below a subdirectory is CRIU's.
    expect(owner(join(dir, "sub"))).toEqual({ uid: 0, gid: 0, mode: "700" });

    granted.revoke();
    expect(owner(dir)).toEqual({ uid: 0, gid: 0, mode: "700" });
    expect(owner(join(dir, "core-1.img"))).toEqual({ uid: 0, gid: 0, mode: "600" });
    expect(owner(store)).toEqual({ uid: 1234, gid: 5678, mode: "2604" });
    // Once only: a second revoke (the restore's undo after its success path) changes nothing.
    chmodSync(dir, 0o755);
    granted.revoke();
    expect(owner(dir).mode).toBe("755");
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

test("grantImages: a directory it cannot reach is an error naming it", () => {
  expect(() => grantImages("/nonexistent-cryo-images", 100000)).toThrow("the images in /nonexistent-cryo-images, for the container's user namespace");
});

test("unprivilegedUserfaultfd: the sysctl's 0 refuses, anything else or no such sysctl allows", () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-uffd-"));
  try {
    writeFileSync(join(dir, "zero"), "0\n");
    writeFileSync(join(dir, "one"), "1\n");
    expect(unprivilegedUserfaultfd(join(dir, "zero"))).toBe(false);
    expect(unprivilegedUserfaultfd(join(dir, "one"))).toBe(true);
    expect(unprivilegedUserfaultfd(join(dir, "absent"))).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
