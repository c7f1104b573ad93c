/**
 * The OCI runtime-spec `LinuxResources` object (config-linux.md, "Control groups"), as containerd's
 * Update sends it (JSON inside an Any), validated with zod. Integers become bigint so that 64-bit
 * limits survive; following runc, a zero (or absent) value means "leave unchanged".
 */
import { z } from "zod";
import { invalidArgument } from "../errors.ts";
import { parsePreciseJson } from "../sys/precise-json.ts";

const int64 = z
  .union([z.number().refine(Number.isInteger, "must be an integer"), z.bigint()])
  .transform((v) => BigInt(v))
  .refine((v) => v >= -(2n ** 63n) && v < 2n ** 63n, "out of int64 range");
const uint64 = int64.refine((v) => v >= 0n, "must not be negative");
const uint16 = z.number().int().min(0).max(65535);

const deviceRule = z.object({
  allow: z.boolean(),
  type: z.string().nullish(),
  major: int64.nullish(),
  minor: int64.nullish(),
  access: z.string().nullish(),
});

const weightDevice = z.object({
  major: int64,
  minor: int64,
  weight: uint16.nullish(),
  leafWeight: uint16.nullish(),
});

const throttleDevice = z.object({ major: int64, minor: int64, rate: uint64 });

/** zod schema of OCI LinuxResources (unknown fields are dropped). */
export const linuxResourcesSchema = z.object({
  devices: z.array(deviceRule).nullish(),
  memory: z
    .object({
      limit: int64.nullish(),
      reservation: int64.nullish(),
      swap: int64.nullish(),
      kernel: int64.nullish(),
      kernelTCP: int64.nullish(),
      swappiness: uint64.refine((v) => v <= 100n, "swappiness must be 0..100").nullish(),
      disableOOMKiller: z.boolean().nullish(),
      useHierarchy: z.boolean().nullish(),
      checkBeforeUpdate: z.boolean().nullish(),
    })
    .nullish(),
  cpu: z
    .object({
      shares: uint64.nullish(),
      quota: int64.nullish(),
      burst: uint64.nullish(),
      period: uint64.nullish(),
      realtimeRuntime: int64.nullish(),
      realtimePeriod: uint64.nullish(),
      cpus: z.string().regex(/^[0-9,\-\s]*$/, "must be a cpu list like 0-3,5").nullish(),
      mems: z.string().regex(/^[0-9,\-\s]*$/, "must be a node list like 0-1").nullish(),
      idle: int64.nullish(),
    })
    .nullish(),
  pids: z.object({ limit: int64 }).nullish(),
  blockIO: z
    .object({
      weight: uint16.refine((v) => v === 0 || (v >= 10 && v <= 1000), "weight must be 10..1000").nullish(),
      leafWeight: uint16.refine((v) => v === 0 || (v >= 10 && v <= 1000), "leafWeight must be 10..1000").nullish(),
      weightDevice: z.array(weightDevice).nullish(),
      throttleReadBpsDevice: z.array(throttleDevice).nullish(),
      throttleWriteBpsDevice: z.array(throttleDevice).nullish(),
      throttleReadIOPSDevice: z.array(throttleDevice).nullish(),
      throttleWriteIOPSDevice: z.array(throttleDevice).nullish(),
    })
    .nullish(),
  hugepageLimits: z
    .array(z.object({ pageSize: z.string().regex(/^[0-9]+[KMGT]B$/, "must be like 2MB"), limit: uint64 }))
    .nullish(),
  network: z
    .object({
      classID: z.number().int().min(0).max(0xffffffff).nullish(),
      priorities: z.array(z.object({ name: z.string(), priority: z.number().int().min(0) })).nullish(),
    })
    .nullish(),
  rdma: z.record(z.string(), z.object({ hcaHandles: z.number().int().nullish(), hcaObjects: z.number().int().nullish() })).nullish(),
  unified: z
    .record(
      z.string().regex(/^[a-z0-9_]+\.[A-Za-z0-9_.]+$/, "must name a cgroup file such as memory.high"),
      z.string(),
    )
    .nullish(),
});

/** A validated OCI LinuxResources (integers as bigint). */
export type LinuxResources = z.output<typeof linuxResourcesSchema>;

/** The OCI LinuxResources object as it arrives (JSON numbers). */
export type LinuxResourcesInput = z.input<typeof linuxResourcesSchema>;

/**
 * The most list and map entries a LinuxResources may hold in all (device rules, block-device weights and throttles,
 * hugepage sizes, network priorities, rdma devices, unified keys). CRI sends a few dozen; 1000 device rules with 1000
 * throttles is already far beyond a real container. Validating is ~2-6 µs an entry on the daemon's event loop, so the
 * count is checked first: 256 KiB (the Update's own bound, task-service.ts) of `{"allow":true}` rules made 17,000.
 */
export const MAX_RESOURCE_ENTRIES = 4096;

/** The entries of value's lists and maps that the schema validates one by one (0 for what is not such a list or map). */
function entries(value: unknown): number {
  if (Array.isArray(value)) return value.length;
  return typeof value === "object" && value !== null ? Object.keys(value).length : 0;
}

/** Validates a LinuxResources object; INVALID_ARGUMENT naming the offending fields otherwise. */
export function parseLinuxResources(value: unknown): LinuxResources {
  if (typeof value === "object" && value !== null) {
    const v = value as Record<string, Record<string, unknown> | undefined>;
    const blockIO = v.blockIO ?? {};
    const lists = [v.devices, v.hugepageLimits, v.unified, v.rdma, v.network?.priorities, blockIO.weightDevice, blockIO.throttleReadBpsDevice, blockIO.throttleWriteBpsDevice, blockIO.throttleReadIOPSDevice, blockIO.throttleWriteIOPSDevice];
    const total = lists.reduce((n: number, l) => n + entries(l), 0);
    if (total > MAX_RESOURCE_ENTRIES) {
      throw invalidArgument("linux resources", { detail: `${total} device rules, block-device entries, hugepage limits, priorities, rdma and unified entries in all; at most ${MAX_RESOURCE_ENTRIES}` });
    }
  }
  const r = linuxResourcesSchema.safeParse(value);
  if (!r.success) {
    const detail = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw invalidArgument("linux resources", { detail });
  }
  return r.data;
}

/** Decodes the JSON bytes of containerd's Update Any (type runtime-spec/1/LinuxResources) and validates them. */
export function decodeLinuxResources(json: Uint8Array | string): LinuxResources {
  const text = typeof json === "string" ? json : new TextDecoder().decode(json);
  let value: unknown;
  try {
    value = parsePreciseJson(text);
  } catch (err) {
    throw invalidArgument("linux resources", { cause: err, detail: `not JSON: ${(err as Error).message}` });
  }
  return parseLinuxResources(value);
}
