/**
 * Plans the cgroupfs writes that apply an OCI LinuxResources to a v2 cgroup, converting v1-style
 * values the way runc does (cpu shares -> cpu.weight, blkio weight -> io.weight, memory+swap ->
 * memory.swap.max) and applying the `unified` map last so that it wins.
 */
import { invalidArgument } from "../errors.ts";
import type { LinuxResources } from "./resources.ts";
import type { PlanStep } from "./write-plan.ts";

/** What the planner must know about the cgroup as it is now. */
export interface V2PlanContext {
  /** io.bfq.weight exists (BFQ scheduler): weights are written there, unconverted. */
  bfqWeight: boolean;
}

const isSet = (v: bigint | null | undefined): v is bigint => v !== undefined && v !== null && v !== 0n;

/** cpu.shares (2..262144) -> cpu.weight (1..10000), runc's formula. */
export function sharesToWeight(shares: bigint): bigint {
  if (shares === 0n) return 0n;
  return 1n + ((shares - 2n) * 9999n) / 262142n;
}

/** blkio.weight (10..1000) -> io.weight (1..10000), runc's formula. */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/**
 * OCI memory.swap is memory+swap; v2's memory.swap.max is swap alone. Returns the memory.swap.max
 * value, "max", or undefined (unchanged). INVALID_ARGUMENT when the pair cannot be expressed.
 */
export function swapToV2(swap: bigint | undefined, limit: bigint | undefined): bigint | "max" | undefined {
  if (swap === undefined) return undefined;
  if (swap === -1n) return "max";
  if (limit === undefined || limit === -1n) {
    throw invalidArgument("linux resources memory.swap", { detail: "a swap limit on cgroup v2 needs a memory limit" });
  }
  if (swap < limit) {
    throw invalidArgument("linux resources memory.swap", { detail: `memory+swap limit ${swap} is below the memory limit ${limit}` });
  }
  return swap - limit;
}

/** Plans the writes for `r` on a v2 cgroup; pure. */
export function planV2Update(r: LinuxResources, ctx: V2PlanContext): PlanStep[] {
  const plan: PlanStep[] = [];
  const w = (file: string, value: bigint | string | number) => plan.push({ controller: "", file, value: String(value) });

  const cpu = r.cpu;
  if (cpu) {
    if (cpu.cpus) w("cpuset.cpus", cpu.cpus);
    if (cpu.mems) w("cpuset.mems", cpu.mems);
    if (isSet(cpu.shares)) w("cpu.weight", sharesToWeight(cpu.shares));
    if (isSet(cpu.quota) || isSet(cpu.period)) {
      const quota = isSet(cpu.quota) && cpu.quota > 0n ? String(cpu.quota) : "max";
      w("cpu.max", isSet(cpu.period) ? `${quota} ${cpu.period}` : quota);
    }
    if (cpu.burst !== undefined && cpu.burst !== null) w("cpu.max.burst", cpu.burst);
    if (cpu.idle !== undefined && cpu.idle !== null) w("cpu.idle", cpu.idle);
    if (isSet(cpu.realtimePeriod) || isSet(cpu.realtimeRuntime)) {
      throw invalidArgument("linux resources cpu.realtime*", { detail: "realtime scheduling limits do not exist in cgroup v2" });
    }
  }

  const mem = r.memory;
  if (mem) {
    const limit = isSet(mem.limit) ? mem.limit : undefined;
    const swap = swapToV2(isSet(mem.swap) ? mem.swap : undefined, limit);
    if (swap !== undefined) w("memory.swap.max", swap);
    if (limit !== undefined) w("memory.max", limit === -1n ? "max" : limit);
    if (isSet(mem.reservation)) w("memory.low", mem.reservation === -1n ? "max" : mem.reservation);
    if (mem.disableOOMKiller) {
      throw invalidArgument("linux resources memory.disableOOMKiller", { detail: "cgroup v2 cannot disable the OOM killer" });
    }
    // kernel, kernelTCP and swappiness have no v2 files; runc ignores them there too.
  }

  if (r.pids && isSet(r.pids.limit)) w("pids.max", r.pids.limit > 0n ? r.pids.limit : "max");

  const bio = r.blockIO;
  if (bio) {
    if (bio.weight) w(ctx.bfqWeight ? "io.bfq.weight" : "io.weight", ctx.bfqWeight ? bio.weight : blkioWeightToIoWeight(bio.weight));
    for (const d of bio.weightDevice ?? []) {
      if (d.weight) {
        w(ctx.bfqWeight ? "io.bfq.weight" : "io.weight", `${d.major}:${d.minor} ${ctx.bfqWeight ? d.weight : blkioWeightToIoWeight(d.weight)}`);
      }
    }
    const throttles = [
      [bio.throttleReadBpsDevice, "rbps"],
      [bio.throttleWriteBpsDevice, "wbps"],
      [bio.throttleReadIOPSDevice, "riops"],
      [bio.throttleWriteIOPSDevice, "wiops"],
    ] as const;
    for (const [list, key] of throttles) {
      for (const d of list ?? []) w("io.max", `${d.major}:${d.minor} ${key}=${d.rate === 0n ? "max" : d.rate}`);
    }
  }

  for (const h of r.hugepageLimits ?? []) w(`hugetlb.${h.pageSize}.max`, h.limit);

  for (const [device, limits] of Object.entries(r.rdma ?? {})) {
    const parts = [device];
    if (limits.hcaHandles !== undefined && limits.hcaHandles !== null) parts.push(`hca_handle=${limits.hcaHandles}`);
    if (limits.hcaObjects !== undefined && limits.hcaObjects !== null) parts.push(`hca_object=${limits.hcaObjects}`);
    if (parts.length > 1) w("rdma.max", parts.join(" "));
  }

  if (r.network && ((r.network.classID ?? undefined) !== undefined || (r.network.priorities?.length ?? 0) > 0)) {
    throw invalidArgument("linux resources network", { detail: "net_cls/net_prio do not exist in cgroup v2" });
  }

  for (const [file, value] of Object.entries(r.unified ?? {})) {
    if (file.startsWith("cgroup.")) {
      throw invalidArgument(`linux resources unified ${file}`, { detail: "cgroup.* core files cannot be set" });
    }
    w(file, value);
  }
  return plan;
}
