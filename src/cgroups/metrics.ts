/**
 * Plain objects shaped as the init shapes of containerd's generated metrics messages
 * (`io.containerd.cgroups.v1.Metrics`, `io.containerd.cgroups.v2.Metrics`): field names in
 * protobuf-es camelCase, uint64 as bigint, every field optional. `create(MetricsSchema, m)` accepts them
 * (checked at compile time below), and packMetrics turns them into the Any a Stats response carries.
 */
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { MetricsSchema as V1MetricsSchema } from "../gen/containerd/cgroups/v1/metrics_pb.ts";
import { MetricsSchema as V2MetricsSchema } from "../gen/containerd/cgroups/v2/metrics_pb.ts";

/** v1 MemoryEntry: one of usage/swap/kernel/kernel_tcp. */
export interface V1MemoryEntry {
  limit?: bigint;
  usage?: bigint;
  max?: bigint;
  failcnt?: bigint;
}

/** v1 BlkIOEntry: one line of a blkio recursive file. */
export interface V1BlkIOEntry {
  op?: string;
  device?: string;
  major?: bigint;
  minor?: bigint;
  value?: bigint;
}

/** The init shape of io.containerd.cgroups.v1.Metrics. */
export interface V1Metrics {
  hugetlb?: { usage?: bigint; max?: bigint; failcnt?: bigint; pagesize?: string }[];
  pids?: { current?: bigint; limit?: bigint };
  cpu?: {
    usage?: { total?: bigint; kernel?: bigint; user?: bigint; perCpu?: bigint[] };
    throttling?: { periods?: bigint; throttledPeriods?: bigint; throttledTime?: bigint };
  };
  memory?: {
    cache?: bigint;
    rss?: bigint;
    rssHuge?: bigint;
    mappedFile?: bigint;
    dirty?: bigint;
    writeback?: bigint;
    pgPgIn?: bigint;
    pgPgOut?: bigint;
    pgFault?: bigint;
    pgMajFault?: bigint;
    inactiveAnon?: bigint;
    activeAnon?: bigint;
    inactiveFile?: bigint;
    activeFile?: bigint;
    unevictable?: bigint;
    hierarchicalMemoryLimit?: bigint;
    hierarchicalSwapLimit?: bigint;
    totalCache?: bigint;
    totalRss?: bigint;
    totalRssHuge?: bigint;
    totalMappedFile?: bigint;
    totalDirty?: bigint;
    totalWriteback?: bigint;
    totalPgPgIn?: bigint;
    totalPgPgOut?: bigint;
    totalPgFault?: bigint;
    totalPgMajFault?: bigint;
    totalInactiveAnon?: bigint;
    totalActiveAnon?: bigint;
    totalInactiveFile?: bigint;
    totalActiveFile?: bigint;
    totalUnevictable?: bigint;
    usage?: V1MemoryEntry;
    swap?: V1MemoryEntry;
    kernel?: V1MemoryEntry;
    kernelTcp?: V1MemoryEntry;
  };
  blkio?: {
    ioServiceBytesRecursive?: V1BlkIOEntry[];
    ioServicedRecursive?: V1BlkIOEntry[];
    ioQueuedRecursive?: V1BlkIOEntry[];
    ioServiceTimeRecursive?: V1BlkIOEntry[];
    ioWaitTimeRecursive?: V1BlkIOEntry[];
    ioMergedRecursive?: V1BlkIOEntry[];
    ioTimeRecursive?: V1BlkIOEntry[];
    sectorsRecursive?: V1BlkIOEntry[];
  };
  memoryOomControl?: { oomKillDisable?: bigint; underOom?: bigint; oomKill?: bigint };
}

/** The init shape of io.containerd.cgroups.v2.Metrics. */
export interface V2Metrics {
  pids?: { current?: bigint; limit?: bigint };
  cpu?: {
    usageUsec?: bigint;
    userUsec?: bigint;
    systemUsec?: bigint;
    nrPeriods?: bigint;
    nrThrottled?: bigint;
    throttledUsec?: bigint;
  };
  memory?: {
    anon?: bigint;
    file?: bigint;
    kernelStack?: bigint;
    slab?: bigint;
    sock?: bigint;
    shmem?: bigint;
    fileMapped?: bigint;
    fileDirty?: bigint;
    fileWriteback?: bigint;
    anonThp?: bigint;
    inactiveAnon?: bigint;
    activeAnon?: bigint;
    inactiveFile?: bigint;
    activeFile?: bigint;
    unevictable?: bigint;
    slabReclaimable?: bigint;
    slabUnreclaimable?: bigint;
    pgfault?: bigint;
    pgmajfault?: bigint;
    workingsetRefault?: bigint;
    workingsetActivate?: bigint;
    workingsetNodereclaim?: bigint;
    pgrefill?: bigint;
    pgscan?: bigint;
    pgsteal?: bigint;
    pgactivate?: bigint;
    pgdeactivate?: bigint;
    pglazyfree?: bigint;
    pglazyfreed?: bigint;
    thpFaultAlloc?: bigint;
    thpCollapseAlloc?: bigint;
    usage?: bigint;
    usageLimit?: bigint;
    swapUsage?: bigint;
    swapLimit?: bigint;
    maxUsage?: bigint;
    swapMaxUsage?: bigint;
  };
  io?: { usage?: { major?: bigint; minor?: bigint; rbytes?: bigint; wbytes?: bigint; rios?: bigint; wios?: bigint }[] };
  hugetlb?: { current?: bigint; max?: bigint; pagesize?: string }[];
  memoryEvents?: { low?: bigint; high?: bigint; max?: bigint; oom?: bigint; oomKill?: bigint };
}

/** Stats of a cgroup, tagged with the metrics message type they belong to. */
export type CgroupMetrics = { version: 1; metrics: V1Metrics } | { version: 2; metrics: V2Metrics };

/** The protobuf type name containerd expects in the Any of a Stats response, per version. */
export const METRICS_TYPE_NAME = {
  1: "io.containerd.cgroups.v1.Metrics",
  2: "io.containerd.cgroups.v2.Metrics",
} as const;

/** Compile-time proof that the plain shapes are valid init shapes of the generated messages. */
type Assignable<T extends U, U> = [T, U];
export type MetricsShapesCheck = [
  Assignable<V1Metrics, MessageInitShape<typeof V1MetricsSchema>>,
  Assignable<V2Metrics, MessageInitShape<typeof V2MetricsSchema>>,
];

/**
 * Packs stats into the Any of a task Stats response. The type URL is the bare message name, as
 * containerd's typeurl writes it for these messages (and as `ctr task metrics` looks them up).
 */
export function packMetrics(stats: CgroupMetrics): Any {
  const value =
    stats.version === 1
      ? toBinary(V1MetricsSchema, create(V1MetricsSchema, stats.metrics))
      : toBinary(V2MetricsSchema, create(V2MetricsSchema, stats.metrics));
  return create(AnySchema, { typeUrl: METRICS_TYPE_NAME[stats.version], value });
}
