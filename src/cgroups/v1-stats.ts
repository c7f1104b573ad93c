/**
 * Reads a v1 cgroup's statistics into the init shape of io.containerd.cgroups.v1.Metrics, the way
 * containerd's cgroups library fills it. Each controller is read independently; a controller that is
 * not mounted or a file the kernel does not have is skipped.
 */
import { join } from "node:path";
import { listDir, readOptional } from "./cgroupfs.ts";
import type { V1BlkIOEntry, V1MemoryEntry, V1Metrics } from "./metrics.ts";
import { hugetlbSizes, limitOr, parseBlkio, parseFlatKeyed, parseLimit, parseSpaceList, parseUint } from "./parse.ts";

/** USER_HZ: cpuacct.stat counts in these ticks per second (100 on every Linux architecture cryo runs on). */
const CLOCK_TICKS = 100n;

/** memory.stat key -> V1Metrics.memory field, for the per-cgroup and hierarchical (total_*) counters. */
const MEMORY_STAT_FIELDS: Record<string, keyof NonNullable<V1Metrics["memory"]>> = {
  cache: "cache",
  rss: "rss",
  rss_huge: "rssHuge",
  mapped_file: "mappedFile",
  dirty: "dirty",
  writeback: "writeback",
  pgpgin: "pgPgIn",
  pgpgout: "pgPgOut",
  pgfault: "pgFault",
  pgmajfault: "pgMajFault",
  inactive_anon: "inactiveAnon",
  active_anon: "activeAnon",
  inactive_file: "inactiveFile",
  active_file: "activeFile",
  unevictable: "unevictable",
  hierarchical_memory_limit: "hierarchicalMemoryLimit",
  hierarchical_memsw_limit: "hierarchicalSwapLimit",
  total_cache: "totalCache",
  total_rss: "totalRss",
  total_rss_huge: "totalRssHuge",
  total_mapped_file: "totalMappedFile",
  total_dirty: "totalDirty",
  total_writeback: "totalWriteback",
  total_pgpgin: "totalPgPgIn",
  total_pgpgout: "totalPgPgOut",
  total_pgfault: "totalPgFault",
  total_pgmajfault: "totalPgMajFault",
  total_inactive_anon: "totalInactiveAnon",
  total_active_anon: "totalActiveAnon",
  total_inactive_file: "totalInactiveFile",
  total_active_file: "totalActiveFile",
  total_unevictable: "totalUnevictable",
};

/** Maps a parsed memory.stat to the V1Metrics.memory counters (unknown keys are ignored). */
export function memoryStatV1(stat: Map<string, bigint>): NonNullable<V1Metrics["memory"]> {
  const out: NonNullable<V1Metrics["memory"]> = {};
  for (const [key, value] of stat) {
    const field = MEMORY_STAT_FIELDS[key];
    if (field !== undefined) (out as Record<string, bigint>)[field] = value;
  }
  return out;
}

/** Resolves a block device number to its /dev name, for blkio entries (cached; "" when unknown). */
export type DeviceNamer = (major: bigint, minor: bigint) => Promise<string>;

const deviceNames = new Map<string, string>();

/** The default DeviceNamer: DEVNAME from /sys/dev/block/MAJ:MIN/uevent. */
export const sysDeviceName: DeviceNamer = async (major, minor) => {
  const key = `${major}:${minor}`;
  const cached = deviceNames.get(key);
  if (cached !== undefined) return cached;
  const uevent = await readOptional(`/sys/dev/block/${key}/uevent`).catch(() => undefined);
  const m = uevent === undefined ? null : /^DEVNAME=(.+)$/m.exec(uevent);
  const name = m ? `/dev/${m[1]}` : "";
  deviceNames.set(key, name);
  return name;
};

async function readUint(file: string): Promise<bigint | undefined> {
  const text = await readOptional(file);
  return text === undefined ? undefined : parseUint(text, file);
}

async function memoryEntry(dir: string, prefix: string): Promise<V1MemoryEntry | undefined> {
  const [usage, limit, max, failcnt] = await Promise.all([
    readUint(join(dir, `${prefix}.usage_in_bytes`)),
    readUint(join(dir, `${prefix}.limit_in_bytes`)),
    readUint(join(dir, `${prefix}.max_usage_in_bytes`)),
    readUint(join(dir, `${prefix}.failcnt`)),
  ]);
  if (usage === undefined && limit === undefined && max === undefined && failcnt === undefined) return undefined;
  const e: V1MemoryEntry = {};
  if (usage !== undefined) e.usage = usage;
  if (limit !== undefined) e.limit = limit;
  if (max !== undefined) e.max = max;
  if (failcnt !== undefined) e.failcnt = failcnt;
  return e;
}

async function memoryStats(dir: string): Promise<Pick<V1Metrics, "memory" | "memoryOomControl">> {
  const [stat, usage, swap, kernel, kernelTcp, oom] = await Promise.all([
    readOptional(join(dir, "memory.stat")),
    memoryEntry(dir, "memory"),
    memoryEntry(dir, "memory.memsw"),
    memoryEntry(dir, "memory.kmem"),
    memoryEntry(dir, "memory.kmem.tcp"),
    readOptional(join(dir, "memory.oom_control")),
  ]);
  const out: Pick<V1Metrics, "memory" | "memoryOomControl"> = {};
  if (stat === undefined && usage === undefined) return out;
  const memory = stat === undefined ? {} : memoryStatV1(parseFlatKeyed(stat));
  if (usage) memory.usage = usage;
  if (swap) memory.swap = swap;
  if (kernel) memory.kernel = kernel;
  if (kernelTcp) memory.kernelTcp = kernelTcp;
  out.memory = memory;
  if (oom !== undefined) {
    const m = parseFlatKeyed(oom);
    out.memoryOomControl = {
      oomKillDisable: m.get("oom_kill_disable") ?? 0n,
      underOom: m.get("under_oom") ?? 0n,
      oomKill: m.get("oom_kill") ?? 0n,
    };
  }
  return out;
}

async function cpuStats(cpuDir: string | undefined, cpuacctDir: string | undefined): Promise<V1Metrics["cpu"]> {
  const cpu: NonNullable<V1Metrics["cpu"]> = {};
  if (cpuacctDir !== undefined) {
    const [total, percpu, stat] = await Promise.all([
      readUint(join(cpuacctDir, "cpuacct.usage")),
      readOptional(join(cpuacctDir, "cpuacct.usage_percpu")),
      readOptional(join(cpuacctDir, "cpuacct.stat")),
    ]);
    if (total !== undefined || percpu !== undefined || stat !== undefined) {
      const usage: NonNullable<NonNullable<V1Metrics["cpu"]>["usage"]> = {};
      if (total !== undefined) usage.total = total;
      if (percpu !== undefined) usage.perCpu = parseSpaceList(percpu, "cpuacct.usage_percpu");
      // cpuacct.stat, as containerd's cgroups library reads it: the kernel scales its user and system split to the
      // scheduler's own total (cputime_adjust), where cpuacct.usage_user and usage_sys are unscaled counters whose sum
      // strays from cpuacct.usage (user alone above the total for a busy loop, measured on 6.18).
      if (stat !== undefined) {
        const m = parseFlatKeyed(stat);
        usage.user = (m.get("user") ?? 0n) * (1_000_000_000n / CLOCK_TICKS);
        usage.kernel = (m.get("system") ?? 0n) * (1_000_000_000n / CLOCK_TICKS);
      }
      cpu.usage = usage;
    }
  }
  if (cpuDir !== undefined) {
    const stat = await readOptional(join(cpuDir, "cpu.stat"));
    if (stat !== undefined) {
      const m = parseFlatKeyed(stat);
      cpu.throttling = {
        periods: m.get("nr_periods") ?? 0n,
        throttledPeriods: m.get("nr_throttled") ?? 0n,
        throttledTime: m.get("throttled_time") ?? 0n,
      };
    }
  }
  return cpu.usage === undefined && cpu.throttling === undefined ? undefined : cpu;
}

async function pidsStats(dir: string): Promise<V1Metrics["pids"]> {
  const [current, max] = await Promise.all([readOptional(join(dir, "pids.current")), readOptional(join(dir, "pids.max"))]);
  if (current === undefined) return undefined;
  return {
    current: parseUint(current, "pids.current"),
    limit: max === undefined ? 0n : limitOr(parseLimit(max, "pids.max"), 0n),
  };
}

/** blkio file suffix -> V1Metrics.blkio field. */
const BLKIO_FILES: [string, keyof NonNullable<V1Metrics["blkio"]>][] = [
  ["io_service_bytes_recursive", "ioServiceBytesRecursive"],
  ["io_serviced_recursive", "ioServicedRecursive"],
  ["io_queued_recursive", "ioQueuedRecursive"],
  ["io_service_time_recursive", "ioServiceTimeRecursive"],
  ["io_wait_time_recursive", "ioWaitTimeRecursive"],
  ["io_merged_recursive", "ioMergedRecursive"],
  ["time_recursive", "ioTimeRecursive"],
  ["sectors_recursive", "sectorsRecursive"],
];

/**
 * Reads blkio: the CFQ files (`blkio.*`) when the kernel has them, else BFQ's (`blkio.bfq.*`), and
 * when neither counted anything, the throttle layer's (`blkio.throttle.*`), which sees all IO.
 */
async function blkioStats(dir: string, name: DeviceNamer): Promise<V1Metrics["blkio"]> {
  const files = new Set(await listDir(dir));
  const read = async (prefix: string) => {
    const out: NonNullable<V1Metrics["blkio"]> = {};
    let any = false;
    for (const [suffix, field] of BLKIO_FILES) {
      const file = `${prefix}${suffix}`;
      if (!files.has(file)) continue;
      const text = await readOptional(join(dir, file));
      if (text === undefined) continue;
      const entries: V1BlkIOEntry[] = [];
      for (const l of parseBlkio(text)) {
        entries.push({ op: l.op, device: await name(l.major, l.minor), major: l.major, minor: l.minor, value: l.value });
      }
      if (entries.length > 0) any = true;
      out[field] = entries;
    }
    return { out, any };
  };
  for (const prefix of ["blkio.", "blkio.bfq."]) {
    if (!files.has(`${prefix}io_serviced_recursive`)) continue;
    const r = await read(prefix);
    if (r.any) return r.out;
  }
  if (!files.has("blkio.throttle.io_serviced_recursive")) return undefined;
  return (await read("blkio.throttle.")).out;
}

async function hugetlbStats(dir: string): Promise<V1Metrics["hugetlb"]> {
  const sizes = hugetlbSizes(await listDir(dir));
  if (sizes.length === 0) return undefined;
  return Promise.all(
    sizes.map(async (pagesize) => ({
      pagesize,
      usage: (await readUint(join(dir, `hugetlb.${pagesize}.usage_in_bytes`))) ?? 0n,
      max: (await readUint(join(dir, `hugetlb.${pagesize}.max_usage_in_bytes`))) ?? 0n,
      failcnt: (await readUint(join(dir, `hugetlb.${pagesize}.failcnt`))) ?? 0n,
    })),
  );
}

/** Reads the statistics of a v1 cgroup given its controller -> directory map. */
export async function readV1Stats(paths: Record<string, string>, name: DeviceNamer = sysDeviceName): Promise<V1Metrics> {
  const m: V1Metrics = {};
  const [mem, cpu, pids, blkio, hugetlb] = await Promise.all([
    paths.memory !== undefined ? memoryStats(paths.memory) : Promise.resolve(undefined),
    cpuStats(paths.cpu, paths.cpuacct),
    paths.pids !== undefined ? pidsStats(paths.pids) : Promise.resolve(undefined),
    paths.blkio !== undefined ? blkioStats(paths.blkio, name) : Promise.resolve(undefined),
    paths.hugetlb !== undefined ? hugetlbStats(paths.hugetlb) : Promise.resolve(undefined),
  ]);
  if (mem?.memory) m.memory = mem.memory;
  if (mem?.memoryOomControl) m.memoryOomControl = mem.memoryOomControl;
  if (cpu) m.cpu = cpu;
  if (pids) m.pids = pids;
  if (blkio) m.blkio = blkio;
  if (hugetlb) m.hugetlb = hugetlb;
  return m;
}
