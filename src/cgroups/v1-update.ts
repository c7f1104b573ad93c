/**
 * Plans the cgroupfs writes that apply an OCI LinuxResources to a v1 cgroup, in the order the kernel
 * accepts them (runc's fs manager order): cpuset, cpu, memory (limit and memsw ordered against the
 * current limit), pids, blkio, hugetlb, network, rdma.
 */
import { invalidArgument } from "../errors.ts";
import type { LinuxResources } from "./resources.ts";
import type { PlanStep } from "./write-plan.ts";

/** What the planner must know about the cgroup as it is now. */
export interface V1PlanContext {
  /** memory.limit_in_bytes now (decides whether memsw or memory is written first). */
  memoryLimit?: bigint;
  /** memory.memsw.* exists (swap accounting on). */
  hasMemsw: boolean;
  /** blkio has only BFQ weight files (blkio.bfq.weight), not CFQ's (blkio.weight). */
  bfqWeight: boolean;
}

const isSet = (v: bigint | null | undefined): v is bigint => v !== undefined && v !== null && v !== 0n;

/** Plans the writes for `r` on a v1 cgroup; pure. INVALID_ARGUMENT for what v1 cannot express. */
export function planV1Update(r: LinuxResources, ctx: V1PlanContext): PlanStep[] {
  const plan: PlanStep[] = [];
  const w = (controller: string, file: string, value: bigint | string | number) =>
    plan.push({ controller, file, value: String(value) });

  if (r.unified && Object.keys(r.unified).length > 0) {
    throw invalidArgument("linux resources unified", { detail: "unified resources need cgroup v2; this cgroup is v1" });
  }

  const cpu = r.cpu;
  if (cpu) {
    if (cpu.cpus) w("cpuset", "cpuset.cpus", cpu.cpus);
    if (cpu.mems) w("cpuset", "cpuset.mems", cpu.mems);
    if (isSet(cpu.shares)) w("cpu", "cpu.shares", cpu.shares);
    if (isSet(cpu.period) && isSet(cpu.quota)) {
      plan.push({
        either: [
          { controller: "cpu", file: "cpu.cfs_period_us", value: String(cpu.period) },
          { controller: "cpu", file: "cpu.cfs_quota_us", value: String(cpu.quota) },
        ],
      });
    } else if (isSet(cpu.period)) w("cpu", "cpu.cfs_period_us", cpu.period);
    else if (isSet(cpu.quota)) w("cpu", "cpu.cfs_quota_us", cpu.quota);
    if (cpu.burst !== undefined && cpu.burst !== null) w("cpu", "cpu.cfs_burst_us", cpu.burst);
    if (isSet(cpu.realtimePeriod)) w("cpu", "cpu.rt_period_us", cpu.realtimePeriod);
    if (isSet(cpu.realtimeRuntime)) w("cpu", "cpu.rt_runtime_us", cpu.realtimeRuntime);
    if (cpu.idle !== undefined && cpu.idle !== null) w("cpu", "cpu.idle", cpu.idle);
  }

  const mem = r.memory;
  if (mem) {
    const limit = isSet(mem.limit) ? mem.limit : undefined;
    let swap = isSet(mem.swap) ? mem.swap : undefined;
    // Lifting the memory limit must lift memsw too, or the kernel keeps memsw below it.
    if (limit === -1n && swap === undefined && ctx.hasMemsw) swap = -1n;
    if (swap !== undefined && !ctx.hasMemsw) {
      throw invalidArgument("linux resources memory.swap", { detail: "swap accounting (memory.memsw.*) is not enabled" });
    }
    if (limit !== undefined && swap !== undefined) {
      if (limit !== -1n && swap !== -1n && swap < limit) {
        throw invalidArgument("linux resources memory.swap", {
          detail: `memory+swap limit ${swap} is below the memory limit ${limit}`,
        });
      }
      // memsw must stay >= memory at every moment: grow memsw first, shrink memory first.
      const cur = ctx.memoryLimit;
      if (swap === -1n || (cur !== undefined && cur < swap)) {
        w("memory", "memory.memsw.limit_in_bytes", swap);
        w("memory", "memory.limit_in_bytes", limit);
      } else {
        w("memory", "memory.limit_in_bytes", limit);
        w("memory", "memory.memsw.limit_in_bytes", swap);
      }
    } else if (limit !== undefined) {
      w("memory", "memory.limit_in_bytes", limit);
    } else if (swap !== undefined) {
      w("memory", "memory.memsw.limit_in_bytes", swap);
    }
    if (isSet(mem.reservation)) w("memory", "memory.soft_limit_in_bytes", mem.reservation);
    if (isSet(mem.kernel)) w("memory", "memory.kmem.limit_in_bytes", mem.kernel);
    if (isSet(mem.kernelTCP)) w("memory", "memory.kmem.tcp.limit_in_bytes", mem.kernelTCP);
    if (mem.swappiness !== undefined && mem.swappiness !== null) w("memory", "memory.swappiness", mem.swappiness);
    if (mem.disableOOMKiller) w("memory", "memory.oom_control", 1);
    if (mem.useHierarchy) w("memory", "memory.use_hierarchy", 1);
  }

  if (r.pids && isSet(r.pids.limit)) w("pids", "pids.max", r.pids.limit > 0n ? r.pids.limit : "max");

  const bio = r.blockIO;
  if (bio) {
    const weightPrefix = ctx.bfqWeight ? "blkio.bfq." : "blkio.";
    if (bio.weight) w("blkio", `${weightPrefix}weight`, bio.weight);
    if (bio.leafWeight) w("blkio", "blkio.leaf_weight", bio.leafWeight);
    for (const d of bio.weightDevice ?? []) {
      if (d.weight) w("blkio", `${weightPrefix}weight_device`, `${d.major}:${d.minor} ${d.weight}`);
      if (d.leafWeight) w("blkio", "blkio.leaf_weight_device", `${d.major}:${d.minor} ${d.leafWeight}`);
    }
    const throttles = [
      [bio.throttleReadBpsDevice, "blkio.throttle.read_bps_device"],
      [bio.throttleWriteBpsDevice, "blkio.throttle.write_bps_device"],
      [bio.throttleReadIOPSDevice, "blkio.throttle.read_iops_device"],
      [bio.throttleWriteIOPSDevice, "blkio.throttle.write_iops_device"],
    ] as const;
    for (const [list, file] of throttles) for (const d of list ?? []) w("blkio", file, `${d.major}:${d.minor} ${d.rate}`);
  }

  for (const h of r.hugepageLimits ?? []) w("hugetlb", `hugetlb.${h.pageSize}.limit_in_bytes`, h.limit);

  if (r.network) {
    if (r.network.classID !== undefined && r.network.classID !== null) w("net_cls", "net_cls.classid", r.network.classID);
    for (const p of r.network.priorities ?? []) w("net_prio", "net_prio.ifpriomap", `${p.name} ${p.priority}`);
  }

  for (const [device, limits] of Object.entries(r.rdma ?? {})) {
    const parts = [device];
    if (limits.hcaHandles !== undefined && limits.hcaHandles !== null) parts.push(`hca_handle=${limits.hcaHandles}`);
    if (limits.hcaObjects !== undefined && limits.hcaObjects !== null) parts.push(`hca_object=${limits.hcaObjects}`);
    if (parts.length > 1) w("rdma", "rdma.max", parts.join(" "));
  }
  return plan;
}
