/**
 * Whether a checkpoint's memory fits in the memory cgroup it is restored into, and what the memory cgroup's OOM
 * killer did to a restore that failed.
 *
 * CRIU moves the tree's root task into the container's memory cgroup before it forks the other tasks or restores
 * any page (criu/cr-restore.c: restore_task_cgroup before prepare_mappings), so every page it writes back is
 * charged there, and none of them can be reclaimed but by swapping (they are anonymous, or private copies of file
 * pages). A restore whose pages do not fit has its tasks killed by the memory cgroup's OOM killer (or hangs, with
 * the OOM killer disabled), and CRIU reports only "N killed by signal 9" (runc's restore only "criu failed").
 *
 * restoredMemoryFloor counts what the tree holds at once for certain: the pages of the pagemap images (in this
 * checkpoint or in its parent) that lie in private memory areas of each task (mm-<pid>.img), except
 * - areas CRIU restores otherwise, or whose pages are charged elsewhere: hugetlb (the hugetlb controller), the
 *   vDSO and vvar, the AIO rings, SysV shared memory, memfd, sockets, shadow stacks, uprobes, a plugin's;
 * - the areas a task may share with its parent: CRIU lets a child inherit a private area its parent has at the same
 *   start and end, and keeps each page the parent has the same content for shared (restore_priv_vma_content
 *   compares them), so such pages may be charged once for both; a page of zeros the parent never had is not even
 *   charged once. Not counted at all, they make the floor a lower bound.
 * Shared anonymous memory and shmem (pagemap-shmem-*.img) are not counted either.
 *
 * memoryRoom works out the most the container's memory cgroup can hold: its limit and every enclosing cgroup's
 * (v1: memory.limit_in_bytes, below the first with memory.use_hierarchy 0; v2: memory.max), and what swap adds to that
 * (v1: memory.memsw.limit_in_bytes; v2: memory.swap.max; at most the host's SwapTotal, none without swap). Where the
 * container's own cgroup is not made yet, the spec's limits stand for it. A restore whose floor exceeds that room
 * cannot succeed: it is refused before anything is made (FAILED_PRECONDITION).
 *
 * A lazy restore's pages come back after the tree runs: the lazy-pages daemon answers the tree's faults and sends
 * every other page on its own (CRIU's uffd.c, its remaining-pages transfer), so they are all charged to the cgroup
 * soon after Start answered, and the OOM killer ends the task then. Its floor counts the lazy runs too (PE_LAZY: the
 * pages in the images, or, post-copy, on the source's page server); a tree that gives an area back before its pages
 * are in is the one way it holds less, which a process that had them all at the checkpoint is not expected to do.
 */
import { existsSync, readFileSync } from "node:fs";
import { readRegularFile } from "../sys/regular-file.ts";
import { dirname, join } from "node:path";
import { failedPrecondition } from "../errors.ts";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { MmEntrySchema, type VmaEntry } from "../gen/criu/mm_pb.ts";
import { decodePagemap, PE_LAZY, PE_PARENT, PE_PRESENT } from "../criu/pagemap.ts";
import { PstreeEntrySchema } from "../gen/criu/pstree_pb.ts";
import type { LinuxResources } from "../cgroups/resources.ts";
import { readCheckpointImage } from "./image-paths.ts";

/** CRIU's mm-<pid>.img magic (criu/include/magic.h MM_MAGIC). */
const MM_MAGIC = 0x57492820;
const PAGE_SIZE = 4096n;
/** CRIU's VMA status bits (criu/include/image.h). */
const VMA_AREA_REGULAR = 1 << 0;
const VMA_FILE_PRIVATE = 1 << 6;
const VMA_ANON_PRIVATE = 1 << 9;
/** Areas restored otherwise or charged elsewhere: vsyscall, vDSO, SysV IPC, socket, vvar, AIO ring, memfd, shadow stack, guard, uprobes, a plugin's. */
const VMA_NOT_COUNTED = (1 << 2) | (1 << 3) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 17) | (1 << 27);
/** mmap's MAP_HUGETLB, as CRIU records an area's flags. */
const MAP_HUGETLB = 0x40000;

/** The least memory a restored tree holds once CRIU restored it (see the module comment). */
export interface MemoryFloor {
  bytes: bigint;
  /** The processes counted. */
  processes: number;
  /** Lazy runs counted: the pages a lazy restore brings back after the tree runs. */
  lazy: boolean;
}

/** A task's areas whose pages count: private, none of the kinds left out. */
function countedAreas(vmas: readonly VmaEntry[]): VmaEntry[] {
  return vmas.filter((v) => (v.status & VMA_AREA_REGULAR) !== 0 && (v.status & (VMA_FILE_PRIVATE | VMA_ANON_PRIVATE)) !== 0 && (v.status & VMA_NOT_COUNTED) === 0 && (v.flags & MAP_HUGETLB) === 0);
}

/** Bytes of the pagemap's runs (vaddr, pages) that lie in the areas, both sorted by address. */
function bytesIn(runs: readonly { start: bigint; end: bigint }[], areas: readonly { start: bigint; end: bigint }[]): bigint {
  let total = 0n;
  let i = 0;
  for (const r of runs) {
    while (i < areas.length && areas[i]!.end <= r.start) i++;
    for (let j = i; j < areas.length && areas[j]!.start < r.end; j++) {
      const lo = r.start > areas[j]!.start ? r.start : areas[j]!.start;
      const hi = r.end < areas[j]!.end ? r.end : areas[j]!.end;
      if (hi > lo) total += hi - lo;
    }
  }
  return total;
}

/**
 * The least memory the tree of the CRIU images in imagesDir holds once CRIU restored it (see the module comment).
 * A task without its mm or pagemap image (a zombie, CRIU's helper task) counts nothing.
 */
export function restoredMemoryFloor(imagesDir: string, options: { lazy?: boolean } = {}): MemoryFloor {
  const counted = PE_PARENT | PE_PRESENT | (options.lazy ? PE_LAZY : 0);
  const read = (name: string): Uint8Array | undefined => (existsSync(join(imagesDir, name)) ? new Uint8Array(readRegularFile(join(imagesDir, name))) : undefined);
  const pstree = decodeImage(PstreeEntrySchema, readCheckpointImage(imagesDir, "pstree.img"), "pstree.img", ImageMagic.pstree);
  const vmasOf = new Map<number, VmaEntry[]>();
  for (const p of pstree) {
    const mm = read(`mm-${p.pid}.img`);
    const [entry] = mm ? decodeImage(MmEntrySchema, mm, `mm-${p.pid}.img`, MM_MAGIC) : [];
    if (entry) vmasOf.set(p.pid, entry.vmas);
  }
  let bytes = 0n;
  let processes = 0;
  for (const p of pstree) {
    const vmas = vmasOf.get(p.pid);
    const pagemap = read(`pagemap-${p.pid}.img`);
    if (!vmas || !pagemap) continue;
    // Areas the parent has with the same start and end may be inherited from it (criu/mem.c prepare_cow_vmas_for).
    const parent = new Set((vmasOf.get(p.ppid) ?? []).map((v) => `${v.start}-${v.end}`));
    const areas = countedAreas(vmas)
      .filter((v) => !parent.has(`${v.start}-${v.end}`))
      .map((v) => ({ start: v.start, end: v.end }))
      .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    // Lazy runs alone (post-copy: PE_LAZY, the pages on the source) come back after the tree runs: counted for a lazy restore.
    const runs = decodePagemap(pagemap, `pagemap-${p.pid}.img`)
      .runs.filter((r) => (r.flags & counted) !== 0)
      .map((r) => ({ start: r.vaddr, end: r.vaddr + r.pages * PAGE_SIZE }));
    runs.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    bytes += bytesIn(runs, areas);
    processes++;
  }
  return { bytes, processes, lazy: options.lazy === true };
}

/** A limit and where it comes from. */
export interface MemoryBound {
  bytes: bigint;
  /** "memory.limit_in_bytes of /sys/fs/cgroup/memory/a", "the spec's linux.resources.memory.limit". */
  where: string;
}

/** The most a memory cgroup can hold, and the limits that make it so. */
export interface MemoryRoom {
  /** Memory and swap together; undefined: no limit. */
  bytes?: bigint;
  /** The tightest memory limit on the way up. */
  memory?: MemoryBound;
  /** The tightest swap (v2) or memory+swap (v1) limit on the way up. */
  swap?: MemoryBound;
  /** The host's swap (SwapTotal). */
  hostSwap: bigint;
  /** The cgroup version: v1's swap limit is memory+swap, v2's swap alone. */
  version: 1 | 2;
}

/** The container's memory cgroup: its directory (made yet or not) and the mount of its hierarchy. */
export interface MemoryCgroup {
  version: 1 | 2;
  dir: string;
  mount: string;
}

/** The container's memory cgroup from runc's cgroup_paths: the v1 memory hierarchy's, or a v2-only host's. */
export function memoryCgroupOf(cgroupPaths: Readonly<Record<string, string>>, mounts: { v1: ReadonlyMap<string, string>; unified?: string }): MemoryCgroup | undefined {
  const v1 = mounts.v1.get("memory");
  if (cgroupPaths.memory !== undefined && v1 !== undefined) return { version: 1, dir: cgroupPaths.memory, mount: v1 };
  const keys = Object.keys(cgroupPaths);
  if (keys.length > 0 && keys.every((k) => k === "") && mounts.unified !== undefined) return { version: 2, dir: cgroupPaths[""]!, mount: mounts.unified };
  return undefined;
}

/** A limit file's value: undefined when absent, unreadable or unlimited ("max", or v1's PAGE_COUNTER_MAX pages and above). */
function limitIn(dir: string, file: string): bigint | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, file), "utf8").trim();
  } catch {
    return undefined;
  }
  if (!/^\d+$/.test(text)) return undefined;
  const v = BigInt(text);
  return v >= 2n ** 62n ? undefined : v;
}

/** The host's swap in bytes (/proc/meminfo SwapTotal). */
export function hostSwapBytes(meminfo = "/proc/meminfo"): bigint {
  try {
    const m = /^SwapTotal:\s+(\d+) kB$/m.exec(readFileSync(meminfo, "utf8"));
    return m ? BigInt(m[1]!) * 1024n : 0n;
  } catch {
    return 0n;
  }
}

const tighter = (a: MemoryBound | undefined, b: MemoryBound | undefined) => (a === undefined ? b : b === undefined || a.bytes <= b.bytes ? a : b);

/**
 * The most cg can hold (see the module comment). `spec`: the spec's resources, which stand for the container's own
 * cgroup where they set a limit (cryo writes them there before CRIU runs), or where the cgroup is not made yet.
 */
export function memoryRoom(cg: MemoryCgroup, spec?: LinuxResources, hostSwap = hostSwapBytes()): MemoryRoom {
  let memory: MemoryBound | undefined;
  let swap: MemoryBound | undefined;
  const memFile = cg.version === 1 ? "memory.limit_in_bytes" : "memory.max";
  const swapFile = cg.version === 1 ? "memory.memsw.limit_in_bytes" : "memory.swap.max";
  // The container's own cgroup: the spec's limits where it sets them, else what the directory has.
  const mem = spec?.memory;
  const set = (v: bigint | null | undefined): v is bigint => v !== undefined && v !== null && v !== 0n;
  const unified = cg.version === 2 ? spec?.unified ?? {} : {};
  const specLimit = unified["memory.max"] ?? (set(mem?.limit) ? String(mem.limit) : undefined);
  if (specLimit !== undefined) {
    if (/^\d+$/.test(specLimit)) memory = { bytes: BigInt(specLimit), where: unified["memory.max"] !== undefined ? "the spec's linux.resources.unified memory.max" : "the spec's linux.resources.memory.limit" };
  } else {
    const own = limitIn(cg.dir, memFile);
    if (own !== undefined) memory = { bytes: own, where: `${memFile} of ${cg.dir}` };
  }
  const specSwap =
    unified["memory.swap.max"] ??
    (set(mem?.swap) ? (mem.swap === -1n ? "max" : cg.version === 1 ? String(mem.swap) : set(mem?.limit) && mem.limit > 0n ? String(mem.swap - mem.limit) : undefined) : undefined);
  if (specSwap !== undefined) {
    if (/^\d+$/.test(specSwap)) swap = { bytes: BigInt(specSwap), where: unified["memory.swap.max"] !== undefined ? "the spec's linux.resources.unified memory.swap.max" : "the spec's linux.resources.memory.swap" };
  } else {
    const own = limitIn(cg.dir, swapFile);
    if (own !== undefined) swap = { bytes: own, where: `${swapFile} of ${cg.dir}` };
  }
  // The enclosing cgroups, up to (not including) the hierarchy's root, which has no limit.
  for (let d = dirname(cg.dir); d.startsWith(`${cg.mount}/`); d = dirname(d)) {
    if (!existsSync(d)) continue; // made by the restore, without limits
    // v1: the memory of a cgroup with use_hierarchy 0's children is charged neither to it nor above.
    if (cg.version === 1 && readOr(join(d, "memory.use_hierarchy")) === "0") break;
    const m = limitIn(d, memFile);
    if (m !== undefined) memory = tighter(memory, { bytes: m, where: `${memFile} of ${d}` });
    const s = limitIn(d, swapFile);
    if (s !== undefined) swap = tighter(swap, { bytes: s, where: `${swapFile} of ${d}` });
  }
  let bytes: bigint | undefined;
  if (memory !== undefined) bytes = memory.bytes + (cg.version === 2 && swap !== undefined && swap.bytes < hostSwap ? swap.bytes : hostSwap);
  // v1's memsw limit bounds memory and swap together.
  if (cg.version === 1 && swap !== undefined && (bytes === undefined || swap.bytes < bytes)) bytes = swap.bytes;
  return { ...(bytes !== undefined ? { bytes } : {}), ...(memory ? { memory } : {}), ...(swap ? { swap } : {}), hostSwap, version: cg.version };
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** "268435456 bytes (256 MiB)". */
export function showBytes(n: bigint): string {
  const mib = Number(n) / 2 ** 20;
  return `${n} bytes (${mib >= 10 ? Math.round(mib) : Math.round(mib * 10) / 10} MiB)`;
}

/** The room and what makes it: "134217728 bytes (128 MiB) (memory.limit_in_bytes of /sys/fs/cgroup/memory/a; no swap on this host)". */
export function describeRoom(room: MemoryRoom): string {
  if (room.bytes === undefined) return "no limit";
  const parts: string[] = [];
  if (room.memory) parts.push(room.swap || room.hostSwap > 0n ? `memory ${showBytes(room.memory.bytes)}, ${room.memory.where}` : room.memory.where);
  if (room.swap) parts.push(`${room.version === 1 ? "memory+swap" : "swap"} ${showBytes(room.swap.bytes)}, ${room.swap.where}`);
  parts.push(room.hostSwap === 0n ? "no swap on this host" : `${showBytes(room.hostSwap)} of swap on this host`);
  return `${showBytes(room.bytes)} (${parts.join("; ")})`;
}

/**
 * Refuses a restore whose tree cannot fit in its memory cgroup: the floor above the room. FAILED_PRECONDITION, as
 * cryo's other refusals before anything is made: a retry cannot pass until the limit is raised, and containerd 1.6
 * passes that code on to its clients (RESOURCE_EXHAUSTED, what a restore the OOM killer ended answers, it turns into
 * unknown). Nothing is checked where no limit applies.
 */
export function checkRestoreMemory(floor: MemoryFloor, room: MemoryRoom, where: string): void {
  if (room.bytes === undefined || floor.bytes <= room.bytes) return;
  throw failedPrecondition(where, {
    detail: `the checkpoint's ${floor.processes === 1 ? "process holds" : `${floor.processes} processes hold`} at least ${showBytes(floor.bytes)} of memory once restored${floor.lazy ? " and its lazy pages are in" : ""}, more than the ${describeRoom(room)} its memory cgroup can hold: the OOM killer would kill the restore; restore it with a higher memory limit`,
  });
}

/**
 * The memory cgroup's count of processes the OOM killer killed in it (v1: memory.oom_control's oom_kill; v2:
 * memory.events' oom_kill, its descendants' too); undefined where it is not there.
 */
export function oomKills(cg: MemoryCgroup): number | undefined {
  const text = readOr(join(cg.dir, cg.version === 1 ? "memory.oom_control" : "memory.events"));
  const m = text === undefined ? null : /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}
