import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkRestoreMemory, describeRoom, memoryRoom, oomKills, restoredMemoryFloor } from "../../../src/checkpoint/memory-check.ts";
import { parseLinuxResources } from "../../../src/cgroups/resources.ts";
import { ImageMagic } from "../../../src/criu/image-file.ts";
import { criuImage, encodeEntry } from "../../harness/criu-image.ts";
import { MmEntrySchema } from "../../../src/gen/criu/mm_pb.ts";
import { PagemapEntrySchema, PagemapHeadSchema } from "../../../src/gen/criu/pagemap_pb.ts";
import { PstreeEntrySchema } from "../../../src/gen/criu/pstree_pb.ts";

const root = mkdtempSync(join(tmpdir(), "cryo-memory-check-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const image = criuImage;
const enc = encodeEntry;

const MiB = 1n << 20n;
const REGULAR_ANON_PRIVATE = (1 << 0) | (1 << 9);
const PE_PRESENT = 1 << 2;
const PE_PARENT = 1 << 0;
const PE_LAZY = 1 << 1;
const MAP_HUGETLB = 0x40000;

/** Images of a tree: each task its areas and its runs of pages (vaddr, pages, flags). */
function images(tasks: { pid: number; ppid: number; vmas: { start: bigint; end: bigint; status?: number; flags?: number }[]; runs: [bigint, number, number?][] }[]): string {
  const dir = mkdtempSync(join(root, "img-"));
  writeFileSync(join(dir, "pstree.img"), image(ImageMagic.pstree, tasks.map((t) => enc(PstreeEntrySchema, { pid: t.pid, ppid: t.ppid, pgid: 1, sid: 1 }))));
  for (const t of tasks) {
    const vmas = t.vmas.map((v) => ({ start: v.start, end: v.end, pgoff: 0n, shmid: 0n, prot: 3, flags: v.flags ?? 0x22, status: v.status ?? REGULAR_ANON_PRIVATE }));
    writeFileSync(join(dir, `mm-${t.pid}.img`), image(0x57492820, [enc(MmEntrySchema, { vmas })]));
    const runs = t.runs.map(([vaddr, n, flags]) => enc(PagemapEntrySchema, { vaddr, compatNrPages: n, nrPages: BigInt(n), flags: flags ?? PE_PRESENT }));
    writeFileSync(join(dir, `pagemap-${t.pid}.img`), image(ImageMagic.pagemap, [enc(PagemapHeadSchema, { pagesId: 1 }), ...runs]));
  }
  return dir;
}

test("the floor: pages in private areas, in this image or the parent's; not a child's in areas it may share with its parent, nor hugetlb, nor lazy ones but for a lazy restore", () => {
  const base = 0x7f0000000000n;
  const dir = images([
    {
      pid: 1,
      ppid: 0,
      vmas: [
        { start: base, end: base + 64n * MiB },
        { start: base + 64n * MiB, end: base + 66n * MiB, flags: 0x22 | MAP_HUGETLB },
        { start: base + 80n * MiB, end: base + 81n * MiB, status: (1 << 0) | (1 << 8) }, // shared anonymous
      ],
      // 16 MiB present, 8 MiB in the parent images, 4 MiB lazy; a run crossing into the hugetlb area counts up to it.
      runs: [
        [base, 4096, PE_PRESENT],
        [base + 16n * MiB, 2048, PE_PARENT],
        [base + 24n * MiB, 1024, PE_LAZY],
        [base + 63n * MiB, 512, PE_PRESENT],
        [base + 80n * MiB, 256, PE_PRESENT],
      ],
    },
    // The child's copy of the parent's area (same start and end): not counted; its own area: counted.
    { pid: 2, ppid: 1, vmas: [{ start: base, end: base + 64n * MiB }, { start: base + 128n * MiB, end: base + 130n * MiB }], runs: [[base, 16384], [base + 128n * MiB, 512]] },
    // A zombie: no images of its memory.
    { pid: 3, ppid: 1, vmas: [], runs: [] },
  ]);
  rmSync(join(dir, "mm-3.img"));
  rmSync(join(dir, "pagemap-3.img"));
  expect(restoredMemoryFloor(dir)).toEqual({ bytes: (16n + 8n + 1n + 2n) * MiB, processes: 2, lazy: false });
  // A lazy restore's floor counts the lazy run too: the lazy-pages daemon brings every page back soon after Start.
  expect(restoredMemoryFloor(dir, { lazy: true })).toEqual({ bytes: (16n + 8n + 4n + 1n + 2n) * MiB, processes: 2, lazy: true });
});

/** A fake memory hierarchy: dir -> files. */
function hierarchy(files: Record<string, Record<string, string>>): string {
  const mount = mkdtempSync(join(root, "cg-"));
  for (const [d, fs] of Object.entries(files)) {
    mkdirSync(join(mount, d), { recursive: true });
    for (const [f, v] of Object.entries(fs)) writeFileSync(join(mount, d, f), v);
  }
  return mount;
}

const UNLIMITED = "9223372036854771712";

test("the room: the tightest limit on the way up, the spec's for a cgroup not made yet, swap added as far as the host has it", () => {
  const mount = hierarchy({ a: { "memory.limit_in_bytes": String(128n * MiB), "memory.use_hierarchy": "1" }, "a/b": { "memory.limit_in_bytes": UNLIMITED, "memory.use_hierarchy": "1" } });
  const cg = { version: 1 as const, dir: join(mount, "a/b/c"), mount };
  const room = memoryRoom(cg, undefined, 0n);
  expect(room.bytes).toBe(128n * MiB);
  expect(describeRoom(room)).toBe(`134217728 bytes (128 MiB) (memory.limit_in_bytes of ${mount}/a; no swap on this host)`);
  // The spec's limit, lower, stands for the container's own cgroup.
  const spec = parseLinuxResources({ memory: { limit: 32 * 2 ** 20 } });
  expect(describeRoom(memoryRoom(cg, spec, 0n))).toBe("33554432 bytes (32 MiB) (the spec's linux.resources.memory.limit; no swap on this host)");
  // Swap: up to the host's, and v1's memory+swap limit bounds both.
  expect(memoryRoom(cg, spec, 16n * MiB).bytes).toBe(48n * MiB);
  expect(memoryRoom(cg, parseLinuxResources({ memory: { limit: 32 * 2 ** 20, swap: 40 * 2 ** 20 } }), 16n * MiB).bytes).toBe(40n * MiB);
  // A cgroup with use_hierarchy 0 is not charged for its children's memory, nor is any above it.
  const flat = hierarchy({ a: { "memory.limit_in_bytes": String(8n * MiB), "memory.use_hierarchy": "1" }, "a/b": { "memory.limit_in_bytes": String(16n * MiB), "memory.use_hierarchy": "0" } });
  expect(memoryRoom({ version: 1, dir: join(flat, "a/c"), mount: flat }, undefined, 0n).bytes).toBe(8n * MiB);
  expect(memoryRoom({ version: 1, dir: join(flat, "a/b/c"), mount: flat }, undefined, 0n).bytes).toBeUndefined();
  expect(memoryRoom({ version: 1, dir: join(flat, "a/b/x/c"), mount: flat }, undefined, 0n).bytes).toBeUndefined();
  // v2: memory.max and memory.swap.max.
  const v2 = hierarchy({ p: { "memory.max": String(64n * MiB), "memory.swap.max": String(8n * MiB) }, "p/c": { "memory.max": "max", "memory.swap.max": "max" } });
  expect(memoryRoom({ version: 2, dir: join(v2, "p/c"), mount: v2 }, undefined, 1024n * MiB).bytes).toBe(72n * MiB);
  expect(memoryRoom({ version: 2, dir: join(v2, "p/c"), mount: v2 }, undefined, 0n).bytes).toBe(64n * MiB);
});

test("a floor above the room is refused (FAILED_PRECONDITION) naming both; none without a limit", () => {
  const room = { bytes: 128n * MiB, memory: { bytes: 128n * MiB, where: "memory.limit_in_bytes of /sys/fs/cgroup/memory/a" }, hostSwap: 0n, version: 1 as const };
  expect(() => checkRestoreMemory({ bytes: 256n * MiB, processes: 1, lazy: false }, room, "restore container c1 from /ck")).toThrow(
    "restore container c1 from /ck: failed precondition: the checkpoint's process holds at least 268435456 bytes (256 MiB) of memory once restored, more than the 134217728 bytes (128 MiB) (memory.limit_in_bytes of /sys/fs/cgroup/memory/a; no swap on this host) its memory cgroup can hold: the OOM killer would kill the restore; restore it with a higher memory limit",
  );
  expect(() => checkRestoreMemory({ bytes: 128n * MiB, processes: 2, lazy: false }, room, "r")).not.toThrow();
  expect(() => checkRestoreMemory({ bytes: 256n * MiB, processes: 2, lazy: false }, { hostSwap: 0n, version: 1 }, "r")).not.toThrow();
});

test("oom kills: v1's memory.oom_control, v2's memory.events; none where the file is not there", () => {
  const mount = hierarchy({ a: { "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n" }, b: { "memory.events": "low 0\nhigh 0\nmax 5\noom 1\noom_kill 2\noom_group_kill 0\n" } });
  expect(oomKills({ version: 1, dir: join(mount, "a"), mount })).toBe(3);
  expect(oomKills({ version: 2, dir: join(mount, "b"), mount })).toBe(2);
  expect(oomKills({ version: 1, dir: join(mount, "c"), mount })).toBeUndefined();
});
