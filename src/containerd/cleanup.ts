import { readdirSync, readFileSync, rmdirSync } from "node:fs";

/** Decodes the octal escapes (`\040`) the kernel uses for spaces and the like in /proc mountinfo. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at or below dir in this mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  return mountsUnderFrom(readFileSync("/proc/self/mountinfo", "utf8"), dir);
}

/** Mount points at or below dir in the given mountinfo text, deepest first. */
export function mountsUnderFrom(text: string, dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const points = new Set<string>();
  for (const line of text.split("\n")) {
    const mountPoint = line.split(" ")[4];
    if (mountPoint === undefined) continue;
    const path = unescapeMountPath(mountPoint);
    if (path === dir || path.startsWith(prefix)) points.add(path);
  }
  return [...points].sort((a, b) => b.length - a.length);
}

/** Lazily unmounts every mount at or below dir (deepest first); returns what it could not unmount. */
export async function unmountUnder(dir: string): Promise<string[]> {
  const failed: string[] = [];
  // Mounts may be stacked; repeat until nothing changes.
  for (let round = 0; round < 5; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return [];
    failed.length = 0;
    for (const point of points) {
      const proc = Bun.spawn(["umount", "-l", point], { stdout: "ignore", stderr: "pipe" });
      if ((await proc.exited) !== 0) failed.push(point);
    }
  }
  return mountsUnder(dir);
}

/** A process found in /proc: its pid and NUL-separated argv. */
export interface ProcEntry {
  pid: number;
  argv: string[];
}

/** Processes whose argv contains the exact consecutive pair `flag value` (e.g. `-address /x/containerd.sock`). */
export function processesWithArg(flag: string, value: string): ProcEntry[] {
  const found: ProcEntry[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone meanwhile
    }
    for (let i = 0; i + 1 < argv.length; i++) {
      if (argv[i] === flag && argv[i + 1] === value) {
        found.push({ pid: Number(name), argv });
        break;
      }
    }
  }
  return found;
}

/** The value after flag in argv, if any. */
export function argValue(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** True while a process with this pid exists (a zombie counts as gone). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/**
 * Removes what runc and the runc shim leave per containerd namespace outside containerd's own directories:
 * the empty cgroup `/<namespace>` in every hierarchy and the empty runc root `/run/containerd/runc/<namespace>`.
 * Only empty directories go (rmdir), so anything still in use stays.
 */
export function removeNamespaceLeftovers(namespace: string): void {
  const dirs: string[] = [`/run/containerd/runc/${namespace}`];
  try {
    for (const hierarchy of readdirSync("/sys/fs/cgroup")) dirs.push(`/sys/fs/cgroup/${hierarchy}/${namespace}`);
  } catch {
    // no cgroupfs
  }
  for (const dir of dirs) {
    try {
      rmdirSync(dir);
    } catch {
      // absent, not empty or busy
    }
  }
}
