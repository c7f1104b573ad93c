import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILTIN_CHECKPOINT_PLAN, METADATA_FILE, readCheckpointMetadata, renderMetadata, writeCheckpointMetadata, type CheckpointMetadata } from "../../../src/checkpoint/index.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { EMPTY_TMPFS_MAX } from "../../../src/checkpoint/metadata.ts";
import { criuVersionText } from "../../../src/checkpoint/inspect-command.ts";
import { sampleCheckpointMetadata } from "../../harness/checkpoint-metadata.ts";

const dir = mkdtempSync("/tmp/cryo-meta-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const meta: CheckpointMetadata = sampleCheckpointMetadata();

describe("checkpoint metadata", () => {
  test("a real checkpoint's metadata from before the latest options (a user-namespaced container, thirteenth session's cryo) still reads", async () => {
    const older = mkdtempSync("/tmp/cryo-meta-old-");
    try {
      writeFileSync(join(older, METADATA_FILE), readFileSync(join(import.meta.dir, "data/metadata-before-ghost-limit.json")));
      const m = await readCheckpointMetadata(older);
      expect(m.containerId).toBe("u1");
      expect(m.options.ghostLimit).toBe(0);
      expect(m.options.networkLock).toBe("skip"); // as recorded: only loopback, no TCP socket
    } finally {
      rmSync(older, { recursive: true, force: true });
    }
  });

  test("round-trips through cryo-checkpoint.json", async () => {
    await writeCheckpointMetadata(dir, meta);
    expect(await readCheckpointMetadata(dir)).toEqual(meta);
  });

  test("the spec's 64-bit integers round-trip exactly: an rlimit of RLIM_INFINITY was written as 18446744073709552000", async () => {
    const d = mkdtempSync("/tmp/cryo-meta-rlimit-");
    try {
      const spec = { ...meta.spec, process: { rlimits: [{ type: "RLIMIT_CORE", hard: 18446744073709551615n, soft: 18446744073709551615n }] } };
      await writeCheckpointMetadata(d, { ...meta, spec });
      expect(readFileSync(join(d, METADATA_FILE), "utf8")).toContain('"hard": 18446744073709551615,');
      expect((await readCheckpointMetadata(d)).spec).toEqual(spec);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test("local pages round-trip; metadata written before localPages existed reads as local pages off", async () => {
    const local = { ...meta, options: { ...BUILTIN_CHECKPOINT_PLAN, localPages: true }, localPages: { dir: "/var/lib/cryo/pages/x", hostname: "h", token: "0123456789abcdef0123456789abcdef", files: [{ name: "pages-1.img", bytes: 4096 }] } };
    const d1 = mkdtempSync(join(dir, "l-"));
    await writeCheckpointMetadata(d1, local);
    expect(await readCheckpointMetadata(d1)).toEqual(local);
    const { localPages: _, networkLock: __, ghostLimit: ___, ...olderOptions } = BUILTIN_CHECKPOINT_PLAN;
    writeFileSync(join(d1, METADATA_FILE), JSON.stringify({ ...meta, options: olderOptions }));
    expect((await readCheckpointMetadata(d1)).options.localPages).toBe(false);
    // Dumped before cryo chose the network lock: CRIU's default then, iptables, unlocks it at restore.
    expect((await readCheckpointMetadata(d1)).options.networkLock).toBe("iptables");
    // Dumped before the ghost-file limit was an option: CRIU's default.
    expect((await readCheckpointMetadata(d1)).options.ghostLimit).toBe(0);
    expect(renderMetadata(local)).toContain("Page images kept on h in /var/lib/cryo/pages/x: 1 file(s), 4096 bytes (not in this directory)");
    expect(renderMetadata(meta)).not.toContain("kept on");
    // The machine as uname -m names it; the version once "cryo", whether recorded bare or with the word.
    expect(renderMetadata(meta)).toContain("on h (kernel 6.18.0, x86_64, CRIU 4.2.1, cryo 0.1.0)");
    expect(criuVersionText(40201)).toBe("4.2.1");
    expect(criuVersionText(31700)).toBe("3.17.0");
    expect(renderMetadata({ ...meta, paused: true })).toContain("root pid 4242, paused when dumped\n");
    expect(renderMetadata({ ...meta, host: { ...meta.host, cryoVersion: "cryo 0.1.0" } })).toContain(", cryo 0.1.0)");
    // zstd asked and the images left plain (they did not compress): not shown as if compression had never been asked.
    expect(renderMetadata(meta)).toContain("Pages zstd-compressed (level 3)");
    expect(renderMetadata({ ...meta, compressed: false })).toContain("Pages uncompressed\n");
    expect(renderMetadata({ ...meta, compressed: false, options: { ...BUILTIN_CHECKPOINT_PLAN, compression: "zstd" } })).toContain(
      "Pages uncompressed (zstd was asked: the page images did not compress and were left plain, or were decompressed for a restore)",
    );
    writeFileSync(join(d1, METADATA_FILE), JSON.stringify({ ...local, localPages: { ...local.localPages, files: [{ name: "../etc/passwd", bytes: 1 }] } }));
    expect(((await readCheckpointMetadata(d1).catch((x) => x)) as CryoError).code).toBe(Code.INVALID_ARGUMENT);
  });

  test("empty tmpfs mounts round-trip; options or a source a mount(2) should not get are INVALID_ARGUMENT", async () => {
    const withTmpfs = { ...meta, emptyTmpfs: [{ key: "cryo-empty-tmpfs/run", mountpoint: "/run", options: "size=65536k,mode=755", source: "tmpfs" }] };
    const d = mkdtempSync(join(dir, "t-"));
    await writeCheckpointMetadata(d, withTmpfs);
    expect(await readCheckpointMetadata(d)).toEqual(withTmpfs);
    expect(renderMetadata(withTmpfs)).toContain("Empty tmpfs mounts made anew at restore: /run (size=65536k,mode=755)");
    const postCopy = { ...meta, options: { ...BUILTIN_CHECKPOINT_PLAN, lazyPages: true, leaveRunning: false, pageServer: { address: "::1", port: 27000 } } };
    expect(renderMetadata(postCopy)).toContain("Post-copy: the memory is not in this directory; the source on h serves it on [::1]:27000");
    for (const bad of [{ options: "size=1k bad" }, { options: 'mode="7"' }, { source: "a b" }, { key: "other/run" }, { mountpoint: "run" }, { options: "mode=755,size=0" }, { options: "nr_inodes=0,size=1m" }, { options: "size=00k" }, { options: "size=0x0" }, { options: "size=0t" }, { options: "nr_inodes=0x00" }, { options: "size=0%" }]) {
      writeFileSync(join(d, METADATA_FILE), JSON.stringify({ ...withTmpfs, emptyTmpfs: [{ ...withTmpfs.emptyTmpfs[0], ...bad }] }));
      expect(((await readCheckpointMetadata(d).catch((x) => x)) as CryoError).code).toBe(Code.INVALID_ARGUMENT);
    }
    // The images directory stays inside the checkpoint directory.
    for (const imagesDir of ["/etc", "../other", "criu/../../x"]) {
      writeFileSync(join(d, METADATA_FILE), JSON.stringify({ ...withTmpfs, imagesDir }));
      expect(((await readCheckpointMetadata(d).catch((x) => x)) as CryoError).message).toContain("imagesDir");
    }
    // At most EMPTY_TMPFS_MAX of them.
    const many = Array.from({ length: EMPTY_TMPFS_MAX + 1 }, (_, i) => ({ ...withTmpfs.emptyTmpfs[0]!, key: `cryo-empty-tmpfs/t${i}`, mountpoint: `/t${i}` }));
    writeFileSync(join(d, METADATA_FILE), JSON.stringify({ ...withTmpfs, emptyTmpfs: many }));
    expect(((await readCheckpointMetadata(d).catch((x) => x)) as CryoError).message).toContain("emptyTmpfs");
    writeFileSync(join(d, METADATA_FILE), JSON.stringify({ ...withTmpfs, emptyTmpfs: many.slice(1) }));
    expect((await readCheckpointMetadata(d)).emptyTmpfs).toHaveLength(EMPTY_TMPFS_MAX);
  });

  test("the dump's images round-trip; a name that is no CRIU image's in the directory, or a size not a whole number of bytes, is INVALID_ARGUMENT", async () => {
    const withImages = { ...meta, images: [{ name: "pages-1.img.zst", bytes: 4000 }, { name: "pstree.img", bytes: 24 }] };
    const d = mkdtempSync(join(dir, "i-"));
    await writeCheckpointMetadata(d, withImages);
    expect(await readCheckpointMetadata(d)).toEqual(withImages);
    for (const bad of [{ name: "../x.img", bytes: 1 }, { name: "sub/x.img", bytes: 1 }, { name: "dump.log", bytes: 1 }, { name: "a.img", bytes: -1 }, { name: "a.img", bytes: 1.5 }]) {
      writeFileSync(join(d, METADATA_FILE), JSON.stringify({ ...withImages, images: [bad] }));
      expect(((await readCheckpointMetadata(d).catch((x) => x)) as CryoError).message).toContain("images.0.");
    }
  });

  test("a tmpfs's entries round-trip; paths out of the tmpfs, parents that are no directory made before, misplaced device numbers or targets are INVALID_ARGUMENT", async () => {
    const entries = [
      { path: "null", type: "char", mode: 0o666, uid: 0, gid: 0, major: 1, minor: 3 },
      { path: "fd", type: "symlink", mode: 0o777, uid: 0, gid: 0, target: "/proc/self/fd" },
      { path: "pts", type: "dir", mode: 0o755, uid: 0, gid: 0 },
      { path: "pts/x", type: "file", mode: 0o600, uid: 0, gid: 5 },
    ] as const;
    const dev = { key: "cryo-empty-tmpfs/dev", mountpoint: "/dev", options: "size=65536k,mode=755", source: "tmpfs", entries: [...entries] };
    const d = mkdtempSync(join(dir, "e-"));
    await writeCheckpointMetadata(d, { ...meta, emptyTmpfs: [dev] });
    expect((await readCheckpointMetadata(d)).emptyTmpfs).toEqual([dev]);
    expect(renderMetadata({ ...meta, emptyTmpfs: [dev] })).toContain("/dev (size=65536k,mode=755; 4 entries, no file data)");
    const bads: unknown[][] = [
      [{ ...entries[2], path: "../etc" }],
      [{ ...entries[2], path: "/etc" }],
      [{ ...entries[2], path: "a//b" }],
      [{ ...entries[2], path: "pts/." }],
      // A symlink as a parent would lead out of the tmpfs: fd -> /proc/self/fd, then fd/x.
      [entries[1], { ...entries[3], path: "fd/x" }],
      // A child before its parent, or a path twice.
      [entries[3], entries[2]],
      [entries[2], entries[2]],
      [{ ...entries[0], major: undefined }],
      [{ ...entries[2], major: 1, minor: 3 }],
      [{ ...entries[1], target: undefined }],
      [{ ...entries[2], target: "/x" }],
      [{ ...entries[2], mode: 0o10000 }],
      [{ ...entries[2], type: "fifo" }],
    ];
    for (const bad of bads) {
      writeFileSync(join(d, METADATA_FILE), JSON.stringify({ ...meta, emptyTmpfs: [{ ...dev, entries: bad }] }));
      expect(((await readCheckpointMetadata(d).catch((x) => x)) as CryoError).code).toBe(Code.INVALID_ARGUMENT);
    }
  });

  test("a missing file is NOT_FOUND, a malformed one INVALID_ARGUMENT with the field path", async () => {
    const empty = mkdtempSync(join(dir, "e-"));
    expect(((await readCheckpointMetadata(empty).catch((e) => e)) as CryoError).code).toBe(Code.NOT_FOUND);
    writeFileSync(join(empty, METADATA_FILE), JSON.stringify({ ...meta, pid: -1 }));
    const e = (await readCheckpointMetadata(empty).catch((x) => x)) as CryoError;
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("pid");
    writeFileSync(join(empty, METADATA_FILE), "{not json");
    expect(((await readCheckpointMetadata(empty).catch((x) => x)) as CryoError).message).toContain("not JSON");
  });
});
