/**
 * Where the cgroup hierarchies are mounted, read from /proc/self/mountinfo: the cgroup mode (v1 only,
 * hybrid, or unified v2), the mount point of each v1 controller, and the cgroup2 mount point.
 */

/** legacy: v1 only; hybrid: v1 controllers plus an empty-ish cgroup2 at <root>/unified; unified: pure v2. */
export type CgroupMode = "legacy" | "hybrid" | "unified";

/** One mount line of /proc/self/mountinfo, the fields cgroup code needs. */
export interface MountEntry {
  root: string;
  mountPoint: string;
  /** The per-mount options (`rw`/`ro`, `nosuid`, ...). */
  mountOptions: string[];
  fsType: string;
  superOptions: string[];
}

/** The cgroup mounts of a host. */
export interface CgroupMounts {
  mode: CgroupMode;
  /** v1 controller (or `name=systemd`) -> mount point; empty in unified mode. */
  v1: Map<string, string>;
  /** The cgroup2 mount point (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`), if any. */
  unified?: string;
}

/** The v1 controllers cryo knows; other super options of a cgroup mount (rw, relatime...) are not controllers. */
export const V1_CONTROLLERS = [
  "cpu",
  "cpuacct",
  "cpuset",
  "memory",
  "devices",
  "freezer",
  "blkio",
  "pids",
  "hugetlb",
  "net_cls",
  "net_prio",
  "perf_event",
  "rdma",
  "misc",
] as const;

/** Unescapes mountinfo's octal escapes (`\040` for a space). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/self/mountinfo text into mount entries (malformed lines are skipped). */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const sep = fields.indexOf("-", 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    out.push({
      root: unescape(fields[3]!),
      mountPoint: unescape(fields[4]!),
      mountOptions: fields[5]?.split(",") ?? [],
      fsType: fields[sep + 1]!,
      superOptions: fields[sep + 3]?.split(",") ?? [],
    });
  }
  return out;
}

/**
 * Finds the cgroup mounts under `root` (default /sys/fs/cgroup) in parsed mountinfo. The mode follows
 * what is mounted at `root` itself: cgroup2 there means unified; otherwise v1 controllers, and a cgroup2
 * anywhere below (normally `<root>/unified`) makes it hybrid.
 */
export function findCgroupMounts(entries: readonly MountEntry[], root = "/sys/fs/cgroup"): CgroupMounts {
  const v1 = new Map<string, string>();
  let unified: string | undefined;
  let rootIsV2 = false;
  const known = new Set<string>(V1_CONTROLLERS);
  for (const e of entries) {
    if (e.mountPoint !== root && !e.mountPoint.startsWith(`${root}/`)) continue;
    if (e.fsType === "cgroup2") {
      if (e.mountPoint === root) rootIsV2 = true;
      if (unified === undefined || e.mountPoint === root) unified = e.mountPoint;
    } else if (e.fsType === "cgroup") {
      for (const opt of e.superOptions) {
        if (known.has(opt) || opt.startsWith("name=")) if (!v1.has(opt)) v1.set(opt, e.mountPoint);
      }
    }
  }
  if (rootIsV2) return { mode: "unified", v1: new Map(), unified };
  const mode: CgroupMode = unified !== undefined ? "hybrid" : "legacy";
  return unified !== undefined ? { mode, v1, unified } : { mode, v1 };
}
