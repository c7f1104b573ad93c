/**
 * Reads a v2 cgroup's statistics into the init shape of io.containerd.cgroups.v2.Metrics, as
 * containerd's cgroup2 manager fills it. Files of controllers that are not enabled are skipped.
 */
import { join } from "node:path";
import { listDir, readOptional } from "./cgroupfs.ts";
import type { V2Metrics } from "./metrics.ts";
import { hugetlbSizes, limitOr, MAX_UINT64, parseFlatKeyed, parseLimit, parseNestedKeyed, parseDevice, parseUint } from "./parse.ts";

/** memory.stat key -> V2Metrics.memory field. */
const MEMORY_STAT_FIELDS: Record<string, keyof NonNullable<V2Metrics["memory"]>> = {
  anon: "anon",
  file: "file",
  kernel_stack: "kernelStack",
  slab: "slab",
  sock: "sock",
  shmem: "shmem",
  file_mapped: "fileMapped",
  file_dirty: "fileDirty",
  file_writeback: "fileWriteback",
  anon_thp: "anonThp",
  inactive_anon: "inactiveAnon",
  active_anon: "activeAnon",
  inactive_file: "inactiveFile",
  active_file: "activeFile",
  unevictable: "unevictable",
  slab_reclaimable: "slabReclaimable",
  slab_unreclaimable: "slabUnreclaimable",
  pgfault: "pgfault",
  pgmajfault: "pgmajfault",
  workingset_refault: "workingsetRefault",
  workingset_activate: "workingsetActivate",
  workingset_nodereclaim: "workingsetNodereclaim",
  pgrefill: "pgrefill",
  pgscan: "pgscan",
  pgsteal: "pgsteal",
  pgactivate: "pgactivate",
  pgdeactivate: "pgdeactivate",
  pglazyfree: "pglazyfree",
  pglazyfreed: "pglazyfreed",
  thp_fault_alloc: "thpFaultAlloc",
  thp_collapse_alloc: "thpCollapseAlloc",
};

/**
 * Maps a parsed v2 memory.stat to V2Metrics.memory counters. Kernels since 5.9 split workingset
 * counters into _anon and _file; when the combined key is absent the two halves are summed.
 */
export function memoryStatV2(stat: Map<string, bigint>): NonNullable<V2Metrics["memory"]> {
  const out: NonNullable<V2Metrics["memory"]> = {};
  for (const [key, value] of stat) {
    const field = MEMORY_STAT_FIELDS[key];
    if (field !== undefined) (out as Record<string, bigint>)[field] = value;
  }
  for (const [key, field] of [
    ["workingset_refault", "workingsetRefault"],
    ["workingset_activate", "workingsetActivate"],
  ] as const) {
    if (stat.has(key)) continue;
    const anon = stat.get(`${key}_anon`);
    const file = stat.get(`${key}_file`);
    if (anon !== undefined || file !== undefined) out[field] = (anon ?? 0n) + (file ?? 0n);
  }
  return out;
}

/** Maps cpu.stat (always present in v2, even without the cpu controller) to V2Metrics.cpu. */
export function cpuStatV2(stat: Map<string, bigint>): NonNullable<V2Metrics["cpu"]> {
  return {
    usageUsec: stat.get("usage_usec") ?? 0n,
    userUsec: stat.get("user_usec") ?? 0n,
    systemUsec: stat.get("system_usec") ?? 0n,
    nrPeriods: stat.get("nr_periods") ?? 0n,
    nrThrottled: stat.get("nr_throttled") ?? 0n,
    throttledUsec: stat.get("throttled_usec") ?? 0n,
  };
}

/** Maps io.stat text to V2Metrics.io. */
export function ioStatV2(text: string): NonNullable<V2Metrics["io"]> {
  const usage: NonNullable<NonNullable<V2Metrics["io"]>["usage"]> = [];
  for (const line of parseNestedKeyed(text)) {
    const dev = parseDevice(line.key);
    if (!dev) continue;
    const get = (k: string) => {
      const v = line.values.get(k);
      return typeof v === "bigint" ? v : 0n;
    };
    usage.push({ ...dev, rbytes: get("rbytes"), wbytes: get("wbytes"), rios: get("rios"), wios: get("wios") });
  }
  return { usage };
}

async function readLimitFile(file: string, whenMax: bigint): Promise<bigint | undefined> {
  const text = await readOptional(file);
  return text === undefined ? undefined : limitOr(parseLimit(text, file), whenMax);
}

async function readUint(file: string): Promise<bigint | undefined> {
  const text = await readOptional(file);
  return text === undefined ? undefined : parseUint(text, file);
}

/** Reads the statistics of the v2 cgroup at `dir`. */
export async function readV2Stats(dir: string): Promise<V2Metrics> {
  const f = (name: string) => join(dir, name);
  const [pidsCurrent, pidsMax, cpuStat, memStat, memCurrent, memMax, swapCurrent, swapMax, memPeak, swapPeak, events, io, files] =
    await Promise.all([
      readUint(f("pids.current")),
      readLimitFile(f("pids.max"), 0n),
      readOptional(f("cpu.stat")),
      readOptional(f("memory.stat")),
      readUint(f("memory.current")),
      readLimitFile(f("memory.max"), MAX_UINT64),
      readUint(f("memory.swap.current")),
      readLimitFile(f("memory.swap.max"), MAX_UINT64),
      readUint(f("memory.peak")),
      readUint(f("memory.swap.peak")),
      readOptional(f("memory.events")),
      readOptional(f("io.stat")),
      listDir(dir),
    ]);
  const m: V2Metrics = {};
  if (pidsCurrent !== undefined) m.pids = { current: pidsCurrent, limit: pidsMax ?? 0n };
  if (cpuStat !== undefined) m.cpu = cpuStatV2(parseFlatKeyed(cpuStat));
  if (memStat !== undefined || memCurrent !== undefined) {
    const memory = memStat === undefined ? {} : memoryStatV2(parseFlatKeyed(memStat));
    if (memCurrent !== undefined) memory.usage = memCurrent;
    if (memMax !== undefined) memory.usageLimit = memMax;
    if (swapCurrent !== undefined) memory.swapUsage = swapCurrent;
    if (swapMax !== undefined) memory.swapLimit = swapMax;
    if (memPeak !== undefined) memory.maxUsage = memPeak;
    if (swapPeak !== undefined) memory.swapMaxUsage = swapPeak;
    m.memory = memory;
  }
  if (events !== undefined) {
    const e = parseFlatKeyed(events);
    m.memoryEvents = {
      low: e.get("low") ?? 0n,
      high: e.get("high") ?? 0n,
      max: e.get("max") ?? 0n,
      oom: e.get("oom") ?? 0n,
      oomKill: e.get("oom_kill") ?? 0n,
    };
  }
  if (io !== undefined) m.io = ioStatV2(io);
  const sizes = hugetlbSizes(files);
  if (sizes.length > 0) {
    m.hugetlb = await Promise.all(
      sizes.map(async (pagesize) => ({
        pagesize,
        current: (await readUint(f(`hugetlb.${pagesize}.current`))) ?? 0n,
        max: (await readLimitFile(f(`hugetlb.${pagesize}.max`), MAX_UINT64)) ?? 0n,
      })),
    );
  }
  return m;
}
