/**
 * What a CRI test needs around the client: the CRI namespace's images (the test image and the pause
 * image, imported with ctr as no registry is reachable), the shim processes of one containerd, and the
 * host-side traces of a process (its cgroups) to check that nothing is left after removal.
 */
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { unavailable } from "../../src/errors.ts";
import { startPrivateContainerd, type PrivateContainerd } from "../../src/containerd/index.ts";
import { connectCri, type CriClient } from "./cri-client.ts";
import { buildFixtures, ensureTestImage, testImage } from "./test-image.ts";
import { waitFor } from "./wait-for.ts";

/** The containerd namespace containerd's CRI plugin works in. */
export const criNamespace = "k8s.io";
/** The pod sandbox image built by test/fixtures/build.sh: /pause, which waits for SIGTERM/SIGINT and reaps children. */
export const criPauseImage = "localhost/cryo-pause:latest";

/**
 * Imports the test image and the pause image into pc's CRI namespace and waits until CRI reports both
 * (it learns of images through containerd's events). Start pc with `sandboxImage: criPauseImage`.
 */
export async function ensureCriImages(pc: PrivateContainerd, cri: CriClient): Promise<{ image: string; pauseImage: string }> {
  await ensureTestImage(pc, criNamespace);
  const { archive } = await buildFixtures();
  const pauseArchive = join(dirname(archive), "cryo-pause.oci.tar");
  await pc.ctrOk(["images", "import", pauseArchive], { namespace: criNamespace, timeoutMs: 120_000 });
  for (const image of [testImage, criPauseImage]) {
    await waitFor(async () => (await cri.image.imageStatus({ image: { image } })).image?.repoTags.includes(image), {
      what: `CRI to list ${image}`,
      timeoutMs: 30_000,
    });
  }
  return { image: testImage, pauseImage: criPauseImage };
}

/** A shim process: its pid and argv. */
export interface ShimProcess {
  pid: number;
  argv: string[];
}

function readArgv(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0$/, "").split("\0");
  } catch {
    return undefined;
  }
}

function exeName(pid: number, argv: readonly string[]): string {
  try {
    return basename(readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, ""));
  } catch {
    return basename(argv[0] ?? "");
  }
}

/**
 * Processes of binary (e.g. "containerd-shim-cryo-v2") whose command line carries `-address <address>`;
 * not cryo's standby daemon, which serves no container until a `start` takes it (src/shim/standby.ts).
 */
export function shimProcesses(binary: string, address: string): ShimProcess[] {
  const found: ShimProcess[] = [];
  for (const name of readdirNumeric("/proc")) {
    const pid = Number(name);
    const argv = readArgv(pid);
    if (argv === undefined) continue;
    const i = argv.indexOf("-address");
    if (i < 0 || argv[i + 1] !== address || argv.includes("__standby")) continue;
    if (exeName(pid, argv) !== binary && basename(argv[0] ?? "") !== binary) continue;
    found.push({ pid, argv });
  }
  return found;
}

function readdirNumeric(dir: string): string[] {
  return readdirSync(dir).filter((n) => /^\d+$/.test(n));
}

/** The parent pid of a process (from /proc/<pid>/stat). */
export function parentPid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ppid = Number(fields[1]);
  if (!Number.isInteger(ppid)) throw unavailable(`parent of pid ${pid}`, { detail: `unreadable stat: ${stat}` });
  return ppid;
}

/**
 * The cgroup directories (one per mounted hierarchy) a process is in, from /proc/<pid>/cgroup and this mount
 * namespace's cgroup mounts under /sys/fs/cgroup (as src/cgroups takes them): a restore's CRIU mounts the
 * hierarchies again in its cgroup yard for a while (another restore's yard, on a machine running more than one
 * test, was taken for the memory hierarchy once, and was gone when read).
 */
export function cgroupDirs(pid: number): string[] {
  const mounts = new Map<string, string>(); // controller set ("memory", "cpu", "name=systemd", "" for v2) -> mount point
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    const [fstype, , superOptions] = right.split(" ");
    const mountPoint = left.split(" ")[4];
    const root = left.split(" ")[3];
    if (mountPoint === undefined || root !== "/" || !mountPoint.startsWith("/sys/fs/cgroup")) continue;
    if (fstype === "cgroup2") mounts.set("", mountPoint);
    else if (fstype === "cgroup") {
      const controllers = (superOptions ?? "").split(",").filter((o) => o !== "rw" && o !== "ro" && !o.startsWith("clone_children") && o !== "noprefix" && !o.startsWith("release_agent") && o !== "xattr");
      mounts.set(controllers.sort().join(","), mountPoint);
    }
  }
  const dirs: string[] = [];
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m === null) continue;
    const key = (m[1] ?? "").split(",").sort().join(",");
    const mountPoint = mounts.get(key);
    if (mountPoint !== undefined) dirs.push(join(mountPoint, m[2] ?? "/"));
  }
  return dirs;
}

/** Stops and removes every pod sandbox CRI lists (what a failed test or run left), as the kubelet would; errors ignored. */
export async function removeAllPods(cri: CriClient): Promise<void> {
  const pods = await cri.runtime.listPodSandbox({}).catch(() => undefined);
  for (const pod of pods?.items ?? []) {
    await cri.runtime.stopPodSandbox({ podSandboxId: pod.id }, { timeoutMs: 60_000 }).catch(() => {});
    await cri.runtime.removePodSandbox({ podSandboxId: pod.id }, { timeoutMs: 60_000 }).catch(() => {});
  }
}

/** Removes the pods' cgroup parent (a directory below each hierarchy's root, which runc made) where it is empty. */
export function removeCgroupParent(parent: string): void {
  for (const hierarchy of readdirSync("/sys/fs/cgroup")) {
    try {
      rmdirSync(join("/sys/fs/cgroup", hierarchy, parent));
    } catch {
      // not made in this hierarchy, or still in use
    }
  }
}

/** A private containerd for CRI tests: its CRI client and a directory for pod logs and configs. */
export interface CriSetup {
  pc: PrivateContainerd;
  cri: CriClient;
  dir: string;
}

/**
 * Starts a private containerd whose sandbox image is the test pause image (with env in its environment), connects a
 * CRI client and imports the CRI images; `dir` (prefix `cryo-<name>-`) is the test's own. writeConfig, given, writes
 * files into dir before containerd starts and returns variables to add to env (e.g. CRYO_CONFIG).
 */
export async function startCriSetup(name: string, writeConfig?: (dir: string) => Record<string, string>): Promise<CriSetup> {
  const dir = mkdtempSync(join(tmpdir(), `cryo-${name}-`));
  const env = writeConfig?.(dir);
  const pc = await startPrivateContainerd({ sandboxImage: criPauseImage, ...(env ? { env } : {}) });
  const cri = connectCri(pc.address);
  await ensureCriImages(pc, cri);
  return { pc, cri, dir };
}

/** Removes every pod (as a kubelet would), stops the containerd, removes the pods' cgroup parent and the directory. */
export async function stopCriSetup(setup: CriSetup | undefined, cgroupParent: string): Promise<void> {
  if (setup === undefined) return;
  await removeAllPods(setup.cri);
  setup.cri.close();
  await setup.pc.stop();
  removeCgroupParent(cgroupParent);
  rmSync(setup.dir, { recursive: true, force: true });
}
