import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { createEntry, DEFAULT_PAGE_STORE, finishEntry, holdPageStoreEntry, listPageStore, pageStoreRoot, restoreImagesDir, type LocalPages } from "../../../src/checkpoint/local-pages.ts";
import { pagesListCommand, pagesRemoveCommand } from "../../../src/checkpoint/pages-command.ts";
import { prunePageStore } from "../../../src/checkpoint/pages-prune.ts";
import { Code, CryoError } from "../../../src/errors.ts";

const base = mkdtempSync(join(tmpdir(), "cryo-local-pages-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/**
 * What a local-pages dump leaves: CRIU's images written into a new entry of the store under root (two
 * page images among other images), then finishEntry moving the rest on to containerd's directory.
 */
function dumped(name: string, root: string, label = name): { local: LocalPages; imagesDir: string; entry: string } {
  const imagesDir = join(base, name);
  mkdirSync(imagesDir);
  const entry = createEntry(root, label);
  writeFileSync(join(entry, "pages-1.img"), "a".repeat(4096));
  writeFileSync(join(entry, "pages-2.img"), "b".repeat(8192));
  writeFileSync(join(entry, "pagemap-1.img"), "map");
  writeFileSync(join(entry, "core-1.img"), "core");
  return { local: finishEntry(entry, imagesDir), imagesDir, entry };
}

async function run(cmd: typeof pagesListCommand, args: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await cmd.run(args, { out: (t) => void (out += `${t}\n`), err: (t) => void (out += `${t}\n`) });
  return { code, out };
}

describe("page store", () => {
  test("the store comes from CRYO_PAGE_STORE when absolute, else the default", () => {
    expect(pageStoreRoot({ CRYO_PAGE_STORE: "/srv/pages" })).toBe("/srv/pages");
    expect(pageStoreRoot({ CRYO_PAGE_STORE: "relative" })).toBe(DEFAULT_PAGE_STORE);
    expect(pageStoreRoot({})).toBe("/var/lib/cryo/pages");
  });

  test("after the dump only the page images stay in the entry; a restore's images directory links them, and the entry stays whole", () => {
    const root = join(base, "store");
    const { local, imagesDir: dir, entry } = dumped("one", root, "ns/ctr 1");
    expect(readdirSync(dir).sort()).toEqual(["core-1.img", "pagemap-1.img"]);
    expect(local.dir).toBe(entry);
    expect(local.dir.startsWith(join(root, "ns_ctr_1-"))).toBe(true);
    expect(local.files).toEqual([
      { name: "pages-1.img", bytes: 4096, mtimeNs: String(statSync(join(entry, "pages-1.img"), { bigint: true }).mtimeNs) },
      { name: "pages-2.img", bytes: 8192, mtimeNs: String(statSync(join(entry, "pages-2.img"), { bigint: true }).mtimeNs) },
    ]);
    expect(lstatSync(local.dir).mode & 0o777).toBe(0o700);

    // The restore's images directory: inside the store, the other images copied, the pages hard-linked.
    let restoreDir = "";
    {
      using r = restoreImagesDir(dir, local, root);
      expect(r.copied).toBe(false);
      expect(r.dir.startsWith(join(root, ".restore-"))).toBe(true);
      expect(readdirSync(r.dir).sort()).toEqual(["core-1.img", "pagemap-1.img", "pages-1.img", "pages-2.img"]);
      expect(statSync(join(r.dir, "pages-2.img")).ino).toBe(statSync(join(local.dir, "pages-2.img")).ino);
      expect(readFileSync(join(r.dir, "pages-1.img"), "utf8")).toBe("a".repeat(4096));
      expect(readFileSync(join(r.dir, "core-1.img"), "utf8")).toBe("core");
      expect(statSync(join(r.dir, "core-1.img")).ino).toBe(statSync(join(dir, "core-1.img")).ino); // one file system: linked, not copied
      expect(listPageStore(root).map((e) => e.dir)).toEqual([local.dir]); // not an entry
      restoreDir = r.dir;
    }
    expect(existsSync(restoreDir)).toBe(false); // disposed
    expect(readdirSync(dir).sort()).toEqual(["core-1.img", "pagemap-1.img"]); // containerd's directory untouched
    expect(readdirSync(local.dir).sort()).toEqual(["entry.json", "pages-1.img", "pages-2.img"]);
    expect(local.token).toMatch(/^[0-9a-f]{32}$/);

    const listed = listPageStore(root);
    expect(listed.map((e) => [e.dir, e.files, e.bytes])).toEqual([[local.dir, 2, 12288]]);
  });

  test("a page image written to since the dump, though of the same size, is FAILED_PRECONDITION; one recorded without its time (an older checkpoint) is not checked for it", () => {
    const root = join(base, "store-mtime");
    const { local, imagesDir: dir } = dumped("mtime", root, "c");
    const path = join(local.dir, "pages-1.img");
    const recorded = statSync(path, { bigint: true }).mtimeNs;
    // The same number of bytes, other pages: only the time tells. (Wait for the clock to move past the recorded time.)
    while (BigInt(Date.now()) * 1_000_000n <= recorded + 1_000_000n) Bun.sleepSync(1);
    writeFileSync(path, "b".repeat(4096));
    let err: CryoError | undefined;
    try {
      restoreImagesDir(dir, local, root);
    } catch (e) {
      err = e as CryoError;
    }
    expect(err?.code).toBe(Code.FAILED_PRECONDITION);
    expect(err?.message).toContain(`${path} was modified since the checkpoint (modified 20`);
    expect(err?.message).toContain("its pages may not be the checkpoint's");
    expect(readdirSync(root).filter((n) => n.startsWith(".restore-"))).toEqual([]); // nothing made
    // A record from before the time was kept: size only, as before.
    const older = { ...local, files: local.files.map(({ name, bytes }) => ({ name, bytes })) };
    using r = restoreImagesDir(dir, older, root);
    expect(readFileSync(join(r.dir, "pages-1.img"), "utf8")).toBe("b".repeat(4096));
  });

  test("a missing entry or a file of another size is FAILED_PRECONDITION naming the host and the file", () => {
    const root = join(base, "store2");
    const { local, imagesDir: dir } = dumped("two", root, "c");
    writeFileSync(join(local.dir, "pages-2.img"), "short");
    const e1 = (() => {
      try {
        restoreImagesDir(dir, local, root);
      } catch (e) {
        return e as CryoError;
      }
      throw new Error("no error");
    })();
    expect(e1.code).toBe(Code.FAILED_PRECONDITION);
    expect(e1.message).toContain("has 5 bytes, the checkpoint recorded 8192");
    rmSync(local.dir, { recursive: true });
    try {
      restoreImagesDir(dir, local, root);
      throw new Error("no error");
    } catch (e) {
      expect((e as CryoError).code).toBe(Code.FAILED_PRECONDITION);
      expect((e as CryoError).message).toContain(`host ${local.hostname}`);
      // Taken on this host: not sent to "restore on" this very host, but told the entry was removed.
      expect((e as CryoError).message).not.toContain(`restore on ${local.hostname}`);
      expect((e as CryoError).message).toContain(`${local.dir} is missing: this host took the checkpoint, and its page store entry was removed since`);
    }
    // Taken on another host: restore it there.
    try {
      restoreImagesDir(dir, { ...local, hostname: "elsewhere" }, root);
      throw new Error("no error");
    } catch (e) {
      expect((e as CryoError).code).toBe(Code.FAILED_PRECONDITION);
      expect((e as CryoError).message).toContain(`${local.dir} is missing here: restore on elsewhere`);
    }
  });

  test("a checkpoint's metadata cannot point outside the store, at another checkpoint's entry, or through a symlink (PERMISSION_DENIED)", () => {
    const root = join(base, "store5");
    const mine = dumped("five", root, "mine").local;
    const theirs = dumped("six", root, "theirs").local;
    const target = join(base, "five-restore");
    mkdirSync(target);
    const code = (fn: () => unknown): [number, string] => {
      try {
        fn();
      } catch (e) {
        return [(e as CryoError).code, (e as CryoError).message];
      }
      throw new Error("no error");
    };
    // Another checkpoint's entry: its token differs.
    const [c1, m1] = code(() => restoreImagesDir(target, { ...mine, dir: theirs.dir }, root));
    expect(c1).toBe(Code.PERMISSION_DENIED);
    expect(m1).toContain("does not belong to this checkpoint");
    // A directory outside this host's store, even one holding a matching entry.json.
    const outside = join(base, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, "entry.json"), JSON.stringify({ token: mine.token }));
    writeFileSync(join(outside, "pages-1.img"), "x".repeat(4096));
    const [c2, m2] = code(() => restoreImagesDir(target, { ...mine, dir: outside, files: [{ name: "pages-1.img", bytes: 4096 }] }, root));
    expect(c2).toBe(Code.PERMISSION_DENIED);
    expect(m2).toContain(`is not an entry of this host's page store ${root}`);
    // A symlink where a page image should be.
    rmSync(join(mine.dir, "pages-1.img"));
    symlinkSync(join(outside, "pages-1.img"), join(mine.dir, "pages-1.img"));
    const [c3, m3] = code(() => restoreImagesDir(target, mine, root));
    expect(c3).toBe(Code.PERMISSION_DENIED);
    expect(m3).toContain("is not a regular file");
    expect(readdirSync(root).filter((n) => n.startsWith("."))).toEqual([]); // refused before any restore directory was made
  });

  test("an entry named outside the store is PERMISSION_DENIED whether it exists or not, before anything is read or made", () => {
    const root = join(base, "store5b");
    const mine = dumped("five-b", root, "mine").local;
    const target = join(base, "five-b-restore");
    mkdirSync(target);
    const refusal = (dir: string): [number, string] => {
      try {
        restoreImagesDir(target, { ...mine, dir }, root);
      } catch (e) {
        return [(e as CryoError).code, (e as CryoError).message];
      }
      throw new Error(`no error for ${dir}`);
    };
    // Missing directories elsewhere on the host (before: FAILED_PRECONDITION, "missing here: restore on <host>"), one
    // that climbs out of the store by name, the store itself, a restore's own directory, a name spelt with "." parts.
    for (const dir of [join(base, "nowhere"), "/etc/nonexistent-cryo-entry", `${root}/../outside-entry`, `${root}/../../etc`, root, `${root}/`, join(root, ".restore-abc"), `${root}/./${mine.dir.split("/").pop()}`, `${root}//${mine.dir.split("/").pop()}`]) {
      const [code, message] = refusal(dir);
      expect([dir, code]).toEqual([dir, Code.PERMISSION_DENIED]);
      expect(message).toContain(`${dir} is not an entry of this host's page store ${root}`);
    }
    expect(readdirSync(root).filter((n) => n.startsWith("."))).toEqual([]);
    // Another host's checkpoint whose store is elsewhere: restore it there (FAILED_PRECONDITION), nothing read here.
    const [otherCode, otherMessage] = (() => {
      try {
        restoreImagesDir(target, { ...mine, hostname: `not-${hostname()}`, dir: "/srv/other-store/entry" }, root);
      } catch (e) {
        return [(e as CryoError).code, (e as CryoError).message] as const;
      }
      throw new Error("no error for another host's entry");
    })();
    expect(otherCode).toBe(Code.FAILED_PRECONDITION);
    expect(otherMessage).toContain(`the checkpoint was taken on not-${hostname()}: restore it there`);
    // A missing entry right inside the store is still the other case: the entry was removed (FAILED_PRECONDITION).
    expect(refusal(join(root, "removed-entry"))[0]).toBe(Code.FAILED_PRECONDITION);
    // The checkpoint's own entry passes.
    using r = restoreImagesDir(target, mine, root);
    expect(existsSync(join(r.dir, "pages-1.img"))).toBe(true);
  });

  test("prunePageStore: referenced and young entries stay, the rest (and old restore directories) go; a dry run removes nothing", () => {
    const root = join(base, "store6");
    const a = dumped("seven", root, "a").local;
    const b = dumped("eight", root, "b").local;
    const restoreLeft = join(root, ".restore-x");
    mkdirSync(restoreLeft);
    const refs = [{ address: "/run/c.sock", namespace: "ns", image: "img:1", dir: a.dir }];
    const later = Date.now() + 2 * 3_600_000;
    expect(prunePageStore(root, refs, 3_600_000).removed).toEqual([]); // all young
    const dry = prunePageStore(root, refs, 3_600_000, { dryRun: true, now: later });
    expect(dry.removed.sort()).toEqual([".restore-x", b.dir.split("/").pop()!].sort());
    expect(existsSync(b.dir)).toBe(true);
    const r = prunePageStore(root, refs, 3_600_000, { now: later });
    expect(r.kept).toEqual([{ name: a.dir.split("/").pop()!, why: "referenced by img:1 (namespace ns)" }]);
    expect([existsSync(a.dir), existsSync(b.dir), existsSync(restoreLeft)]).toEqual([true, false, false]);
    expect(prunePageStore(join(base, "no-store"), [], 0)).toEqual({ removed: [], kept: [] });
  });

  test("prunePageStore keeps an entry made for a containerd it was not told to look in (entry.json names it)", () => {
    const root = join(base, "store7");
    const mkEntry = (name: string, containerd?: string) => {
      const imagesDir = join(base, name);
      mkdirSync(imagesDir);
      const entry = createEntry(root, name);
      writeFileSync(join(entry, "pages-1.img"), "a".repeat(4096));
      return finishEntry(entry, imagesDir, containerd);
    };
    const other = mkEntry("nine", "/run/other/containerd.sock");
    const mine = mkEntry("ten", "unix:///run/c.sock");
    const unknown = mkEntry("eleven"); // from a shim before entries named their containerd
    expect(JSON.parse(readFileSync(join(other.dir, "entry.json"), "utf8")).containerd).toBe("/run/other/containerd.sock");
    const later = Date.now() + 2 * 3_600_000;
    const r = prunePageStore(root, [], 3_600_000, { now: later, addresses: ["/run/c.sock"] });
    expect(r.removed.sort()).toEqual([mine.dir, unknown.dir].map((d) => d.split("/").pop()!).sort());
    expect(r.kept).toEqual([
      { name: other.dir.split("/").pop()!, why: "made for the containerd at /run/other/containerd.sock, whose images this prune did not look at (name it with --address, or remove the entry with cryo pages rm)" },
    ]);
    expect(existsSync(other.dir)).toBe(true);
    // Named too: it goes.
    expect(prunePageStore(root, [], 3_600_000, { now: later, addresses: ["/run/c.sock", "unix:///run/other/containerd.sock"] }).removed).toEqual([other.dir.split("/").pop()!]);
  });

  test("cryo pages ls and rm", async () => {
    const root = join(base, "store4");
    const a = dumped("four", root, "a").local;
    const ls = await run(pagesListCommand, ["--store", root]);
    expect(ls.code).toBe(0);
    const name = a.dir.split("/").pop()!;
    expect(ls.out).toContain(`page store ${root}: 1 entry, 0.0 MiB`);
    expect(ls.out).toContain(`${name}\t2 file(s)`);
    await expect(run(pagesRemoveCommand, ["--store", root, "nope"])).rejects.toMatchObject({ code: Code.NOT_FOUND });
    await expect(run(pagesRemoveCommand, ["--store", root, "../x"])).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT });
    await expect(run(pagesRemoveCommand, ["--store", "rel", name])).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT });
    expect((await run(pagesRemoveCommand, ["--store", root, name])).out).toContain(`removed ${name}`);
    expect(existsSync(a.dir)).toBe(false);
    expect((await run(pagesListCommand, ["--store", root])).out).toContain("0 entries");
  });

  test("a file in the store's place is said so by ls, rm and prune: not an empty store, not a missing entry", async () => {
    const file = join(base, "store-file");
    writeFileSync(file, "x");
    const notDir = `page store ${file}: failed precondition: ${file} is a file, not a directory`;
    // Before: node's `ENOTDIR: not a directory, scandir`; rm said "no entry e1"; prune removed nothing and said so, exit 0.
    await expect(run(pagesListCommand, ["--store", file])).rejects.toMatchObject({ code: Code.FAILED_PRECONDITION, message: notDir });
    await expect(run(pagesRemoveCommand, ["--store", file, "e1"])).rejects.toMatchObject({ code: Code.FAILED_PRECONDITION, message: notDir });
    expect(() => prunePageStore(file, [], 0)).toThrow(notDir);
  });

  test("holdPageStoreEntry: one holder at a time per entry; a second waits (told once) until the first lets go, or its signal aborts", async () => {
    const { entry } = dumped("held", join(base, "store-held"));
    const first = await holdPageStoreEntry(entry);
    let waits = 0;
    let got = false;
    const second = holdPageStoreEntry(entry, { pollMs: 5, onWait: () => waits++ }).then((h) => {
      got = true;
      return h;
    });
    await Bun.sleep(40);
    expect(got).toBe(false);
    expect(waits).toBe(1);
    first.release();
    first.release(); // once only
    const held = await second;
    expect(waits).toBe(1);
    // A third, aborted while it waits: rejected with the signal's reason, and holds nothing.
    const abort = new AbortController();
    const third = holdPageStoreEntry(entry, { pollMs: 5, signal: abort.signal });
    await Bun.sleep(20);
    abort.abort(new Error("task deleted"));
    await expect(third).rejects.toThrow("task deleted");
    held.release();
    (await holdPageStoreEntry(entry)).release();
    // A missing entry is an error, not a wait.
    await expect(holdPageStoreEntry(join(base, "nowhere"))).rejects.toThrow("ENOENT");
  });
});
