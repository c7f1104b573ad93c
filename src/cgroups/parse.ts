/**
 * Small pure parsers for cgroupfs file formats. Every function takes the file's text and returns plain
 * values; none of them touches the file system. Numbers are bigint because cgroupfs counters are uint64.
 */
import { unknown } from "../errors.ts";

/** The value of a limit file: a number, or "max" (no limit). */
export type Limit = bigint | "max";

/** One line of a v1 blkio "recursive" file: `8:0 Read 4096`, or `8:0 4096` (op ""). */
export interface BlkioLine {
  major: bigint;
  minor: bigint;
  op: string;
  value: bigint;
}

/** One line of a nested keyed file (io.stat, io.max): `8:0 rbytes=1 wbytes=2`. */
export interface NestedKeyedLine {
  key: string;
  values: Map<string, Limit>;
}

const uintPattern = /^\d+$/;
const intPattern = /^-?\d+$/;

/** Parses one unsigned integer (`"4096\n"`); throws INVALID_ARGUMENT naming `what` when it is not one. */
export function parseUint(text: string, what = "value"): bigint {
  const t = text.trim();
  if (!uintPattern.test(t)) throw unknown(`${what}`, { detail: `not an unsigned integer: ${JSON.stringify(t)}` });
  return BigInt(t);
}

/** Parses a signed integer (`"-1"`, as in cpu.cfs_quota_us). */
export function parseInt64(text: string, what = "value"): bigint {
  const t = text.trim();
  if (!intPattern.test(t)) throw unknown(`${what}`, { detail: `not an integer: ${JSON.stringify(t)}` });
  return BigInt(t);
}

/** Parses a limit file: `"max"` or an unsigned integer (pids.max, memory.max, hugetlb.*.max). */
export function parseLimit(text: string, what = "value"): Limit {
  const t = text.trim();
  return t === "max" ? "max" : parseUint(t, what);
}

/** Maps "max" to a replacement (containerd reports unlimited as 0 for pids and 2^64-1 for memory). */
export function limitOr(limit: Limit, whenMax: bigint): bigint {
  return limit === "max" ? whenMax : limit;
}

/** The largest uint64, which containerd reports for an unlimited v2 memory limit. */
export const MAX_UINT64 = 2n ** 64n - 1n;

/**
 * Parses a flat keyed file, one `key value` pair a line (memory.stat, cpu.stat, memory.events,
 * cpuacct.stat, memory.oom_control). Lines whose value is not an integer are skipped.
 */
export function parseFlatKeyed(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 2) continue;
    const [key, value] = parts as [string, string];
    if (intPattern.test(value)) out.set(key, BigInt(value));
  }
  return out;
}

/** Parses a nested keyed file: `KEY sub=value sub=value` per line (io.stat, io.max, rdma.current). */
export function parseNestedKeyed(text: string): NestedKeyedLine[] {
  const out: NestedKeyedLine[] = [];
  for (const line of text.split("\n")) {
    const parts = line.trim().split(/\s+/).filter((p) => p.length > 0);
    const key = parts.shift();
    if (key === undefined) continue;
    const values = new Map<string, Limit>();
    for (const part of parts) {
      const eq = part.indexOf("=");
      if (eq <= 0) continue;
      const v = part.slice(eq + 1);
      if (v === "max") values.set(part.slice(0, eq), "max");
      else if (uintPattern.test(v)) values.set(part.slice(0, eq), BigInt(v));
    }
    out.push({ key, values });
  }
  return out;
}

/** Parses a space separated list of unsigned integers (cpuacct.usage_percpu, with its trailing space). */
export function parseSpaceList(text: string, what = "list"): bigint[] {
  return text
    .trim()
    .split(/\s+/)
    .filter((p) => p.length > 0)
    .map((p) => parseUint(p, what));
}

/** Parses `MAJOR:MINOR` into numbers; undefined when the text is not a device number. */
export function parseDevice(text: string): { major: bigint; minor: bigint } | undefined {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m) return undefined;
  return { major: BigInt(m[1]!), minor: BigInt(m[2]!) };
}

/**
 * Parses a v1 blkio recursive file. Lines are `MAJ:MIN OP VALUE` (io_service_bytes_recursive) or
 * `MAJ:MIN VALUE` (time_recursive, sectors_recursive); the `Total N` line and malformed lines are skipped.
 */
export function parseBlkio(text: string): BlkioLine[] {
  const out: BlkioLine[] = [];
  for (const line of text.split("\n")) {
    const parts = line.trim().split(/\s+/);
    const dev = parts[0] === undefined ? undefined : parseDevice(parts[0]);
    if (!dev) continue;
    if (parts.length === 3 && uintPattern.test(parts[2]!)) {
      out.push({ ...dev, op: parts[1]!, value: BigInt(parts[2]!) });
    } else if (parts.length === 2 && uintPattern.test(parts[1]!)) {
      out.push({ ...dev, op: "", value: BigInt(parts[1]!) });
    }
  }
  return out;
}

/** Parses cgroup.procs or tasks: one pid a line. */
export function parsePids(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t.length > 0 && uintPattern.test(t)) out.push(Number(t));
  }
  return out;
}

/**
 * Parses /proc/<pid>/cgroup: `ID:CONTROLLERS:PATH` lines into a map from each controller (or
 * `name=systemd`) to its path; the v2 line `0::/path` is keyed by "".
 */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (controllers === "") out.set("", path);
    else for (const c of controllers.split(",")) out.set(c, path);
  }
  return out;
}

/** Parses v1 freezer.state: FROZEN, FREEZING or THAWED. */
export function parseFreezerState(text: string): "FROZEN" | "FREEZING" | "THAWED" {
  const t = text.trim();
  if (t === "FROZEN" || t === "FREEZING" || t === "THAWED") return t;
  throw unknown("freezer.state", { detail: `unexpected value ${JSON.stringify(t)}` });
}

/** Lists the hugetlb page sizes ("2MB", "1GB") named by files such as `hugetlb.2MB.limit_in_bytes`. */
export function hugetlbSizes(fileNames: readonly string[]): string[] {
  const sizes = new Set<string>();
  for (const name of fileNames) {
    const m = /^hugetlb\.([0-9]+[KMGT]B)\./.exec(name);
    if (m) sizes.add(m[1]!);
  }
  return [...sizes].sort((a, b) => pageSizeBytes(a) - pageSizeBytes(b));
}

/** Converts a hugetlb page size name ("2MB") to bytes. */
export function pageSizeBytes(size: string): number {
  const m = /^([0-9]+)([KMGT])B$/.exec(size);
  if (!m) return Number.NaN;
  const unit = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2] as "K" | "M" | "G" | "T"];
  return Number(m[1]) * unit;
}

/** Converts /sys/kernel/mm/hugepages directory names (`hugepages-2048kB`) to cgroup page size names ("2MB"). */
export function hugepageDirToSize(dir: string): string | undefined {
  const m = /^hugepages-(\d+)kB$/.exec(dir);
  if (!m) return undefined;
  let n = Number(m[1]);
  for (const unit of ["KB", "MB", "GB", "TB"]) {
    if (n < 1024 || n % 1024 !== 0) return `${n}${unit}`;
    n /= 1024;
  }
  return `${n}PB`;
}
