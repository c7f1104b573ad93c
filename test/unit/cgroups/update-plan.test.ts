import { describe, expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import { decodeLinuxResources, parseLinuxResources } from "../../../src/cgroups/resources.ts";
import { planV1Update } from "../../../src/cgroups/v1-update.ts";
import { blkioWeightToIoWeight, planV2Update, sharesToWeight, swapToV2 } from "../../../src/cgroups/v2-update.ts";
import type { PlanStep } from "../../../src/cgroups/write-plan.ts";

const v1ctx = { hasMemsw: true, bfqWeight: false, memoryLimit: 100n * 1024n * 1024n };
const files = (plan: PlanStep[]) => plan.map((s) => ("either" in s ? s.either.map((w) => w.file).join("|") : `${s.file}=${s.value}`));

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof CryoError ? e.code : -1;
  }
  return undefined;
}

describe("LinuxResources validation", () => {
  test("a containerd Update payload (JSON bytes) decodes, integers as bigint", () => {
    const json = JSON.stringify({ memory: { limit: 134217728, swap: 268435456 }, cpu: { shares: 1024, quota: 50000, period: 100000, cpus: "0-1" }, pids: { limit: 64 } });
    const r = decodeLinuxResources(new TextEncoder().encode(json));
    expect(r.memory?.limit).toBe(134217728n);
    expect(r.cpu?.cpus).toBe("0-1");
    expect(r.pids?.limit).toBe(64n);
  });
  test("bad values are INVALID_ARGUMENT naming the field", () => {
    let err: CryoError | undefined;
    try {
      parseLinuxResources({ memory: { limit: "lots" }, blockIO: { weight: 5 } });
    } catch (e) {
      err = e as CryoError;
    }
    expect(err?.code).toBe(Code.INVALID_ARGUMENT);
    expect(err?.message).toContain("memory.limit");
    expect(err?.message).toContain("blockIO.weight");
  });
  test("non-integers, swappiness > 100, bad cpu lists, bad unified keys and non-JSON are rejected", () => {
    expect(codeOf(() => parseLinuxResources({ cpu: { shares: 1.5 } }))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => parseLinuxResources({ memory: { swappiness: 101 } }))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => parseLinuxResources({ cpu: { cpus: "all" } }))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => parseLinuxResources({ unified: { "../memory.max": "1" } }))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => parseLinuxResources({ hugepageLimits: [{ pageSize: "2M", limit: 1 }] }))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => decodeLinuxResources("{"))).toBe(Code.INVALID_ARGUMENT);
  });
  test("null fields (Go nil pointers) and unknown fields are accepted", () => {
    const r = parseLinuxResources({ memory: null, cpu: { shares: null }, futureField: 1 });
    expect(r.memory).toBeNull();
  });
});

describe("v1 plan", () => {
  test("raising memory with swap: memsw first (it must stay >= memory)", () => {
    const r = parseLinuxResources({ memory: { limit: 200 * 1024 * 1024, swap: 400 * 1024 * 1024 } });
    expect(files(planV1Update(r, v1ctx))).toEqual([
      `memory.memsw.limit_in_bytes=${400 * 1024 * 1024}`,
      `memory.limit_in_bytes=${200 * 1024 * 1024}`,
    ]);
  });
  test("lowering memory with swap: memory first", () => {
    const r = parseLinuxResources({ memory: { limit: 16 * 1024 * 1024, swap: 32 * 1024 * 1024 } });
    expect(files(planV1Update(r, v1ctx))).toEqual([
      `memory.limit_in_bytes=${16 * 1024 * 1024}`,
      `memory.memsw.limit_in_bytes=${32 * 1024 * 1024}`,
    ]);
  });
  test("unlimited memory lifts memsw first", () => {
    const r = parseLinuxResources({ memory: { limit: -1 } });
    expect(files(planV1Update(r, v1ctx))).toEqual(["memory.memsw.limit_in_bytes=-1", "memory.limit_in_bytes=-1"]);
  });
  test("swap below memory, or swap without accounting, is INVALID_ARGUMENT", () => {
    expect(codeOf(() => planV1Update(parseLinuxResources({ memory: { limit: 100, swap: 50 } }), v1ctx))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => planV1Update(parseLinuxResources({ memory: { swap: 50 } }), { ...v1ctx, hasMemsw: false }))).toBe(Code.INVALID_ARGUMENT);
  });
  test("every controller, in runc's order", () => {
    const r = parseLinuxResources({
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: "0", mems: "0" },
      memory: { limit: 64 << 20, reservation: 32 << 20, swappiness: 10, disableOOMKiller: true },
      pids: { limit: -1 },
      blockIO: { weight: 300, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }] },
      hugepageLimits: [{ pageSize: "2MB", limit: 4194304 }],
      network: { classID: 0x100001 },
    });
    expect(files(planV1Update(r, v1ctx))).toEqual([
      "cpuset.cpus=0",
      "cpuset.mems=0",
      "cpu.shares=512",
      "cpu.cfs_period_us|cpu.cfs_quota_us",
      `memory.limit_in_bytes=${64 << 20}`,
      `memory.soft_limit_in_bytes=${32 << 20}`,
      "memory.swappiness=10",
      "memory.oom_control=1",
      "pids.max=max",
      "blkio.weight=300",
      "blkio.throttle.read_bps_device=8:0 1048576",
      "hugetlb.2MB.limit_in_bytes=4194304",
      `net_cls.classid=${0x100001}`,
    ]);
  });
  test("BFQ-only hosts get blkio.bfq.weight", () => {
    const r = parseLinuxResources({ blockIO: { weight: 100 } });
    expect(files(planV1Update(r, { ...v1ctx, bfqWeight: true }))).toEqual(["blkio.bfq.weight=100"]);
  });
  test("zero means unchanged; unified is v2 only", () => {
    expect(planV1Update(parseLinuxResources({ memory: { limit: 0 }, cpu: { shares: 0 }, pids: { limit: 0 } }), v1ctx)).toEqual([]);
    expect(codeOf(() => planV1Update(parseLinuxResources({ unified: { "memory.high": "1" } }), v1ctx))).toBe(Code.INVALID_ARGUMENT);
  });
});

describe("v2 plan", () => {
  test("conversions are runc's", () => {
    expect(sharesToWeight(2n)).toBe(1n);
    expect(sharesToWeight(1024n)).toBe(39n);
    expect(sharesToWeight(262144n)).toBe(10000n);
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(1000)).toBe(10000);
    expect(blkioWeightToIoWeight(500)).toBe(4950);
    expect(swapToV2(300n, 100n)).toBe(200n);
    expect(swapToV2(-1n, 100n)).toBe("max");
    expect(swapToV2(undefined, 100n)).toBeUndefined();
    expect(codeOf(() => swapToV2(300n, undefined))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => swapToV2(50n, 100n))).toBe(Code.INVALID_ARGUMENT);
  });
  test("files and values, unified last so it wins", () => {
    const r = parseLinuxResources({
      cpu: { shares: 1024, quota: 50000, period: 100000 },
      memory: { limit: 128 << 20, swap: 256 << 20, reservation: 64 << 20 },
      pids: { limit: 100 },
      blockIO: { weight: 500, throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 100 }] },
      hugepageLimits: [{ pageSize: "2MB", limit: 2097152 }],
      unified: { "memory.high": "100000000" },
    });
    expect(files(planV2Update(r, { bfqWeight: false }))).toEqual([
      "cpu.weight=39",
      "cpu.max=50000 100000",
      `memory.swap.max=${128 << 20}`,
      `memory.max=${128 << 20}`,
      `memory.low=${64 << 20}`,
      "pids.max=100",
      "io.weight=4950",
      "io.max=8:0 wiops=100",
      "hugetlb.2MB.max=2097152",
      "memory.high=100000000",
    ]);
  });
  test("quota -1 is max; limit -1 is max", () => {
    const r = parseLinuxResources({ cpu: { quota: -1, period: 100000 }, memory: { limit: -1 } });
    expect(files(planV2Update(r, { bfqWeight: false }))).toEqual(["cpu.max=max 100000", "memory.max=max"]);
  });
  test("what v2 cannot express is INVALID_ARGUMENT", () => {
    const ctx = { bfqWeight: false };
    expect(codeOf(() => planV2Update(parseLinuxResources({ cpu: { realtimeRuntime: 1000 } }), ctx))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => planV2Update(parseLinuxResources({ memory: { disableOOMKiller: true } }), ctx))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => planV2Update(parseLinuxResources({ network: { classID: 1 } }), ctx))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => planV2Update(parseLinuxResources({ unified: { "cgroup.procs": "1" } }), ctx))).toBe(Code.INVALID_ARGUMENT);
  });
});
