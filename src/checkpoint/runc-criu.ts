/**
 * CRIU options for a runc container, set up the way runc sets CRIU up around a container
 * (runc libcontainer/criu_linux.go), but for cryo's own libcriu calls.
 *
 * Dump: root = the rootfs; bind mounts, v1 cgroup mounts, masked files and device nodes are
 * external mounts; network/pid namespaces joined by path are external namespaces; the freezer
 * cgroup freezes the tree; orphan pts master for terminals.
 * Restore: the new rootfs bind-mounted on a private directory as CRIU's root; the same external
 * mounts mapped to the new container's sources (bind sources, its cgroup directories, /dev/null);
 * external namespaces given back as inherited fds; the old stdio pipes replaced by the new ones
 * (`--inherit-fd fd[N]:pipe:[ino]`); the helper joins the new cgroups first.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { splitDev } from "../sys/mknod.ts";
import { basename, join } from "node:path";
import { z } from "zod";
import { invalidArgument } from "../errors.ts";
import type { CriuOpts } from "../criu/options.ts";
import { EMPTY_TMPFS_MAX, TMPFS_ENTRIES_MAX, tmpfsOptionsLimited } from "./metadata.ts";
import type { CheckpointPlan } from "./plan.ts";

/** The parts of runc's state.json a checkpoint needs (validated; other fields are ignored). */
export const runcContainerSchema = z.object({
  id: z.string().min(1),
  init_process_pid: z.number().int().positive(),
  cgroup_paths: z.record(z.string(), z.string()).nullish().transform((v) => v ?? {}),
  external_descriptors: z.array(z.string()).nullish().transform((v) => v ?? []),
  config: z.object({
    rootfs: z.string().min(1),
    mounts: z
      .array(z.object({ device: z.string(), source: z.string(), destination: z.string() }).loose())
      .nullish()
      .transform((v) => v ?? []),
    mask_paths: z.array(z.string()).nullish().transform((v) => v ?? []),
    devices: z
      .array(z.object({ path: z.string() }).loose())
      .nullish()
      .transform((v) => v ?? []),
    namespaces: z
      .array(z.object({ type: z.string(), path: z.string().optional().default("") }).loose())
      .nullish()
      .transform((v) => v ?? []),
  }).loose(),
});

/** A runc container as the checkpoint code sees it. */
export type RuncContainer = z.infer<typeof runcContainerSchema>;

/** Validates a parsed state.json (from src/runtime's reader or a checkpoint's metadata). */
export function runcContainerFrom(state: unknown, where = "runc state"): RuncContainer {
  // Once per checkpoint or restore: zod's JIT would compile a parser for one use (metadata.ts).
  const r = runcContainerSchema.safeParse(state, { jitless: true });
  if (!r.success) throw invalidArgument(where, { detail: r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
  return r.data;
}

/** Host facts a dump or restore of a container depends on, read from /proc. */
export interface HostCgroupFacts {
  /** Mount points of the v1 hierarchies (empty on a pure v2 host). */
  v1Mountpoints: string[];
  /** Where the cgroup2 hierarchy is mounted (the first such mount of the hierarchy's root), if it is. */
  cgroup2Mountpoint?: string;
}

/** Reads the v1 cgroup mount points, and the cgroup2 one, from /proc/self/mountinfo. */
export function readHostCgroupFacts(mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): HostCgroupFacts {
  const v1Mountpoints: string[] = [];
  let cgroup2Mountpoint: string | undefined;
  for (const line of mountinfo.split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (sep > 0 && f[sep + 1] === "cgroup" && f[4]) v1Mountpoints.push(f[4]);
    if (sep > 0 && f[sep + 1] === "cgroup2" && f[3] === "/" && f[4] && cgroup2Mountpoint === undefined) cgroup2Mountpoint = f[4];
  }
  return { v1Mountpoints, ...(cgroup2Mountpoint !== undefined ? { cgroup2Mountpoint } : {}) };
}

/** Whether runc's cgroup paths are a cgroup v2 container's: the unified directory only (key ""). */
export function isV2Only(cgroupPaths: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(cgroupPaths);
  return keys.length > 0 && keys.every((k) => k === "");
}

/** Where the host mounts its cgroup hierarchies, one directory each (cgroupYard). */
export const CGROUP_MOUNT_ROOT = "/sys/fs/cgroup";

/**
 * The host's cgroup mount directory as CRIU's cgroup yard for a dump of the container whose init is pid, when
 * it is laid out as CRIU expects a yard: for each hierarchy of /proc/<pid>/cgroup, a mount of that hierarchy's
 * root at <root>/<controllers> ("name=" dropped; "unified" for cgroup2). CRIU then opens those directories
 * instead of mounting each hierarchy itself and unmounting it again, which costs an RCU grace period per
 * hierarchy: about 21 ms of every dump on this hybrid host (11 hierarchies). Undefined when any hierarchy is
 * elsewhere or the files cannot be read: CRIU then makes its own yard, as before. Pure given its inputs.
 */
export function cgroupYard(pid: number, mountinfo?: string, procCgroup?: string): string | undefined {
  let cgroups: string;
  try {
    cgroups = procCgroup ?? readFileSync(`/proc/${pid}/cgroup`, "utf8");
  } catch {
    return undefined;
  }
  // This process's mounts: CRIU runs in the shim's mount namespace. Unreadable: none, so no yard.
  const mounts = mountsByMountpoint("self", mountinfo);
  const lines = cgroups.split("\n").filter((l) => l !== "");
  if (lines.length === 0) return undefined;
  for (const line of lines) {
    const controllers = line.split(":")[1];
    if (controllers === undefined) return undefined;
    const dir = controllers === "" ? "unified" : controllers.replace(/^name=/, "");
    const m = mounts.get(`${CGROUP_MOUNT_ROOT}/${dir}`);
    if (!m || m.root !== "/") return undefined;
    const superOptions = m.superOptions.split(",");
    if (controllers === "" ? m.fstype !== "cgroup2" : m.fstype !== "cgroup" || !controllers.split(",").every((c) => superOptions.includes(c))) return undefined;
  }
  return CGROUP_MOUNT_ROOT;
}

/** Masked paths that are files (bind mounts of /dev/null) in the running container, as runc checks them. */
export function maskedFiles(c: RuncContainer): string[] {
  return c.config.mask_paths.filter((p) => {
    try {
      return !statSync(`/proc/${c.init_process_pid}/root${p}`).isDirectory();
    } catch {
      return false;
    }
  });
}

/**
 * The external-mount key of masked directories. runc masks a directory with an empty read-only tmpfs;
 * CRIU would dump each one as a tar and restore it by running `tar --extract --gzip` (8-13 ms per mount
 * here). cryo dumps them as external mounts under this key instead, and the restore binds a new empty tmpfs,
 * read-only down to its superblock, in their place (restore-container.ts; CRIU's mount flags on the bind cannot
 * make it writable).
 */
export const MASKED_DIR_KEY = "cryo-masked-dir";
/**
 * The host's empty directory bound over masked directories when a restore plan is given no source of its own
 * (unit tests). cryo's restores give one; cryo before the seventeenth session bound this directory itself.
 */
export const MASKED_DIR_SOURCE = "/run/cryo/masked-dir";

/**
 * Masked directories that are what runc makes of them: an empty read-only mount there, runc's tmpfs or, in a
 * container cryo restored, its bind of the restore's read-only tmpfs (or, restored by an older cryo, of
 * MASKED_DIR_SOURCE, whatever file system the host's /run is: a restored container is checkpointed again, too). Anything else (a mask path that is no mountpoint, writable, or with
 * files) is left to CRIU. mountinfo is the init's /proc/<pid>/mountinfo (read when not given).
 */
export function maskedDirs(c: RuncContainer, mountinfo?: string): string[] {
  const pid = c.init_process_pid;
  const mounts = mountsByMountpoint(pid, mountinfo);
  return c.config.mask_paths.filter((p) => {
    const m = mounts.get(p);
    return m !== undefined && !m.rw && emptyDir(pid, p);
  });
}

/** One line of /proc/<pid>/mountinfo, the fields cryo looks at. */
interface MountinfoEntry {
  /** The mount's root within its file system ("/" for a whole one). */
  root: string;
  fstype: string;
  /** The mount's own flags say rw (not ro). */
  rw: boolean;
  source: string;
  superOptions: string;
}

/** A process's mounts by mountpoint (the last mount at a mountpoint is the one in effect); empty when unreadable. */
function mountsByMountpoint(pid: number | "self", mountinfo?: string): Map<string, MountinfoEntry> {
  const mounts = new Map<string, MountinfoEntry>();
  let info: string;
  try {
    info = mountinfo ?? readFileSync(`/proc/${pid}/mountinfo`, "utf8");
  } catch {
    return mounts;
  }
  for (const line of info.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const f = line.slice(0, sep).split(" ");
    const after = line.slice(sep + 3).split(" ");
    mounts.set(unescapeMountinfo(f[4] ?? ""), { root: f[3] ?? "", fstype: after[0] ?? "", rw: (f[5] ?? "").split(",").includes("rw"), source: after[1] ?? "", superOptions: after[2] ?? "" });
  }
  return mounts;
}

/** path (in the container) is a directory with nothing in it. */
function emptyDir(pid: number, path: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/root${path}`).length === 0;
  } catch {
    return false;
  }
}

/** Prefix of the external-mount keys of empty writable tmpfs mounts (emptyTmpfsMounts). */
export const EMPTY_TMPFS_KEY_PREFIX = "cryo-empty-tmpfs";

/** An empty writable tmpfs of the container, dumped as an external mount and made anew at restore. */
export interface EmptyTmpfs {
  /** CRIU's external key: EMPTY_TMPFS_KEY_PREFIX + the mountpoint. */
  key: string;
  /** Where it is mounted in the container. */
  mountpoint: string;
  /** Its superblock's options as mountinfo shows them, without rw/ro (size=65536k,mode=755): the new tmpfs gets them. */
  options: string;
  /** Its source name ("tmpfs", "shm"): the new tmpfs gets it too. */
  source: string;
  /** What it holds, when that is no file data (tmpfsEntries): made again in the new tmpfs. Absent: empty. */
  entries?: TmpfsEntry[];
  /** Its root directory's mode, owner and times: a chmod or chown after the mount is not in its options. */
  root?: TmpfsRoot;
}

/** A tmpfs root's attributes (tmpfsRoot). */
export interface TmpfsRoot {
  mode: number;
  uid: number;
  gid: number;
  /** Absent in checkpoints made before they were recorded. */
  atimeMs?: number;
  mtimeMs?: number;
}

/** One entry of a tmpfs without file data (tmpfsEntries), made again at restore. */
export interface TmpfsEntry {
  /** Relative to the mount's root: "/"-separated names, none of them "." or "..". */
  path: string;
  type: "dir" | "file" | "symlink" | "char" | "block";
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** char and block: the device numbers. */
  major?: number;
  minor?: number;
  /** symlink: its target. */
  target?: string;
  /** Its times (absent on a mountpoint of another mount, whose own directory's times are hidden under it). */
  atimeMs?: number;
  mtimeMs?: number;
}

/**
 * What the tmpfs mounted at path (in the container of pid) holds, when the restore can make all of it again
 * without data: directories, symlinks, device nodes and empty files, each with one link (runc's /dev: null,
 * zero, tty..., the fd and ptmx symlinks). A mountpoint of another mount inside it is recorded as the empty
 * directory (or, for a file mount such as /dev/console, empty file) it stands on, with the mount's root's
 * owner and mode, as CRIU's tar would record it; what is below it is that mount's. [] for an empty tmpfs;
 * undefined when it holds anything else (a file with data, a fifo, a socket, a hard link), more than
 * TMPFS_ENTRIES_MAX entries, or cannot be read. Access and modification times are kept (finer than CRIU's tar,
 * which keeps whole seconds); extended attributes are not (nor are they by runc's CRIU tar).
 */
export function tmpfsEntries(pid: number, path: string): TmpfsEntry[] | undefined {
  const root = `/proc/${pid}/root${path === "/" ? "" : path}`;
  const out: TmpfsEntry[] = [];
  try {
    const dev = lstatSync(root).dev;
    const walk = (rel: string): boolean => {
      for (const name of readdirSync(rel === "" ? root : `${root}/${rel}`)) {
        const p = rel === "" ? name : `${rel}/${name}`;
        const st = lstatSync(`${root}/${p}`);
        const base = { path: p, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
        if (out.length >= TMPFS_ENTRIES_MAX) return false;
        if (st.dev !== dev) {
          out.push({ ...base, type: st.isDirectory() ? "dir" : "file" });
          continue;
        }
        const times = { atimeMs: st.atimeMs, mtimeMs: st.mtimeMs };
        if (st.isDirectory()) {
          out.push({ ...base, type: "dir", ...times });
          if (!walk(p)) return false;
        } else if (st.nlink !== 1) return false;
        else if (st.isSymbolicLink()) out.push({ ...base, type: "symlink", target: readlinkSync(`${root}/${p}`), ...times });
        else if (st.isCharacterDevice() || st.isBlockDevice()) out.push({ ...base, type: st.isCharacterDevice() ? "char" : "block", ...splitDev(st.rdev), ...times });
        else if (st.isFile() && st.size === 0) out.push({ ...base, type: "file", ...times });
        else return false;
      }
      return true;
    };
    return walk("") ? out : undefined;
  } catch {
    return undefined;
  }
}

/** The root directory of the tmpfs mounted at path (in the container of pid): mode, owner, times; undefined when unreadable. */
export function tmpfsRoot(pid: number, path: string): TmpfsRoot | undefined {
  try {
    const st = lstatSync(`/proc/${pid}/root${path === "/" ? "" : path}`);
    return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, atimeMs: st.atimeMs, mtimeMs: st.mtimeMs };
  } catch {
    return undefined;
  }
}

/** A tmpfs option string as mountinfo writes it and mount(2) takes it (no spaces, quotes or separators of other kinds). */
export const TMPFS_OPTIONS_RE = /^[A-Za-z0-9_=.,:+-]*$/;
/** A tmpfs source name cryo passes on ("tmpfs", "shm"). */
export const TMPFS_SOURCE_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The container's writable tmpfs mounts that runc made from the spec's tmpfs mounts and that hold no file data:
 * /run and /dev/shm of most containers (empty), and /dev (device nodes, symlinks and mountpoints; tmpfsEntries).
 * CRIU would dump each as a tar image and restore it by running `tar --extract --gzip` (6-13 ms per mount
 * here); as external mounts they cost the restore a mount(2) of a new tmpfs with the same options, and the
 * entries made again in it. Only call this on a frozen container: a file written between this check and
 * CRIU's freeze would be lost. Masked paths are maskedDirs' business.
 */
export function emptyTmpfsMounts(c: RuncContainer, mountinfo?: string): EmptyTmpfs[] {
  const pid = c.init_process_pid;
  const masked = new Set(c.config.mask_paths);
  // Only the tmpfs mounts runc made from the spec: a bind of a tmpfs (CRI's pod-shared /dev/shm) is a bind
  // mount, external already, and shared with others; it must stay what it is.
  const specTmpfs = new Set(c.config.mounts.filter((m) => m.device === "tmpfs").map((m) => relDest(c.config.rootfs, m.destination)));
  const byMountpoint = mountsByMountpoint(pid, mountinfo);
  const out: EmptyTmpfs[] = [];
  for (const [mountpoint, m] of byMountpoint) {
    if (m.fstype !== "tmpfs" || m.root !== "/" || !m.rw || !specTmpfs.has(mountpoint) || masked.has(mountpoint)) continue;
    const options = m.superOptions
      .split(",")
      .filter((o) => o !== "rw" && o !== "ro" && o !== "")
      .join(",");
    const source = unescapeMountinfo(m.source);
    // What the metadata schema would refuse is dumped whole by CRIU instead.
    if (!TMPFS_OPTIONS_RE.test(options) || !tmpfsOptionsLimited(options) || !TMPFS_SOURCE_RE.test(source) || out.length >= EMPTY_TMPFS_MAX) continue;
    const root = tmpfsRoot(pid, mountpoint); // first: the walk below reads the directory (its atime)
    const entries = tmpfsEntries(pid, mountpoint);
    if (!entries || !root) continue;
    out.push({ key: `${EMPTY_TMPFS_KEY_PREFIX}${mountpoint}`, mountpoint, options, source, ...(entries.length > 0 ? { entries } : {}), root });
  }
  return out;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Inode numbers of the container's net and pid namespaces when joined by path (external to it). */
export function externalNamespaceInodes(c: RuncContainer): { net?: number; pid?: number } {
  const out: { net?: number; pid?: number } = {};
  for (const ns of c.config.namespaces) {
    if (ns.path === "") continue;
    if (ns.type === "NEWNET" || ns.type === "network") out.net = statSync(ns.path).ino;
    if (ns.type === "NEWPID" || ns.type === "pid") out.pid = statSync(ns.path).ino;
  }
  return out;
}

/** CRIU's key for an external namespace, the one runc uses: extRootNetNS, extRootPidNS. */
export function externalNsKey(ns: "net" | "pid"): string {
  return ns === "net" ? "extRootNetNS" : "extRootPidNS";
}

function hasCgroupNs(c: RuncContainer): boolean {
  return c.config.namespaces.some((n) => n.type === "NEWCGROUP" || n.type === "cgroup");
}

function relDest(rootfs: string, dest: string): string {
  const d = dest.startsWith(rootfs) ? dest.slice(rootfs.length) : dest;
  return d.startsWith("/") ? d : `/${d}`;
}

/** The key CRIU knows a mount at dest by: its container path, where it lands when resolveDest is given. */
function mountKey(c: RuncContainer, dest: string, resolveDest: ((dest: string) => string) | undefined): string {
  const d = relDest(c.config.rootfs, dest);
  return resolveDest ? resolveDest(d) : d;
}

/** Inputs of a container dump. */
export interface ContainerDumpInput {
  plan: CheckpointPlan;
  container: RuncContainer;
  imagesDir: string;
  workDir?: string;
  host: HostCgroupFacts;
  /** maskedFiles(container) of the running container. */
  maskedFiles: string[];
  /** maskedDirs(container) of the running container: dumped as external mounts (MASKED_DIR_KEY). */
  maskedDirs?: string[];
  /** emptyTmpfsMounts(container) of the frozen container: dumped as external mounts under their keys. */
  emptyTmpfs?: EmptyTmpfs[];
  /** externalNamespaceInodes(container). */
  externalNs: { net?: number; pid?: number };
  /**
   * A mount destination as the container's mount table names it: the symbolic links of the rootfs on its way
   * resolved inside the rootfs (restore-root.ts resolveDestInRoot), as runc resolves a bind's destination when it
   * mounts it and when it keys it for CRIU. Identity when absent.
   */
  resolveDest?: (dest: string) => string;
  /** Freeze through the container's freezer cgroup (runc does); false lets CRIU use ptrace. */
  useFreezer?: boolean;
  /** cgroupYard(container's init): CRIU reads the cgroups there instead of mounting its own yard. */
  cgroupYard?: string;
}

/** CriuOpts for dumping (or pre-dumping) a runc container. Pure. */
export function containerDumpOpts(input: ContainerDumpInput): CriuOpts {
  const { plan, container: c } = input;
  const extMounts: { key: string; value: string }[] = [];
  const add = (key: string) => {
    if (!extMounts.some((m) => m.key === key)) extMounts.push({ key, value: key });
  };
  if (!plan.preDump) {
    for (const m of c.config.mounts) {
      if (m.device === "bind") add(mountKey(c, m.destination, input.resolveDest));
      else if (m.device === "cgroup" && !hasCgroupNs(c)) for (const mp of input.host.v1Mountpoints) add(mountKey(c, join(m.destination, basename(mp)), input.resolveDest));
    }
    for (const p of input.maskedFiles) extMounts.push({ key: p, value: "/dev/null" });
    for (const p of input.maskedDirs ?? []) extMounts.push({ key: p, value: MASKED_DIR_KEY });
    for (const t of input.emptyTmpfs ?? []) extMounts.push({ key: t.mountpoint, value: t.key });
    for (const d of c.config.devices) add(relDest(c.config.rootfs, d.path));
  }
  const external = [...plan.external];
  if (input.externalNs.net !== undefined) external.push(`net[${input.externalNs.net}]:${externalNsKey("net")}`);
  if (input.externalNs.pid !== undefined) external.push(`pid[${input.externalNs.pid}]:${externalNsKey("pid")}`);
  // The v1 freezer, or on cgroup v2 (runc's state names only the unified directory, key "") that directory's
  // cgroup.freeze. Decided by the container's own paths, not by the host's mount table: a v1 mount left over in
  // the shim's mount namespace (a copy of another's) must not make CRIU seize a v2-frozen tree through ptrace,
  // which hangs in the parasite's injection for as long as the cgroup stays frozen (seen on an emulated v2 host).
  const freezer = c.cgroup_paths.freezer ?? (isV2Only(c.cgroup_paths) ? c.cgroup_paths[""] : undefined);

  const opts: CriuOpts = {
    imagesDir: input.imagesDir,
    pid: c.init_process_pid,
    root: c.config.rootfs,
    leaveRunning: plan.leaveRunning,
    tcpEstablished: plan.tcpEstablished,
    tcpSkipInFlight: plan.tcpSkipInFlight,
    tcpClose: plan.tcpClose,
    extUnixSk: plan.externalUnixSockets,
    shellJob: plan.shellJob,
    fileLocks: plan.fileLocks,
    autoDedup: plan.autoDedup,
    trackMem: plan.trackMem || plan.parentPath !== undefined,
    manageCgroups: true,
    manageCgroupsMode: plan.cgroupMode,
    orphanPtsMaster: true,
    logLevel: plan.logLevel,
    networkLock: plan.networkLock,
  };
  if (input.workDir) opts.workDir = input.workDir;
  if (plan.ghostLimit !== 0) opts.ghostLimit = plan.ghostLimit;
  if (plan.parentPath) opts.parentImages = plan.parentPath;
  if (plan.emptyNamespaces.length > 0) opts.emptyNs = plan.emptyNamespaces;
  if (extMounts.length > 0) opts.extMounts = extMounts;
  if (external.length > 0) opts.external = external;
  if (input.useFreezer !== false && freezer) opts.freezeCgroup = freezer;
  if (input.cgroupYard) opts.cgYard = input.cgroupYard;
  if (plan.pageServer) opts.pageServer = plan.pageServer;
  if (plan.lazyPages) opts.lazyPages = true;
  return stripUndefined(opts);
}

/** Inputs of a container restore. */
export interface ContainerRestoreInput {
  plan: CheckpointPlan;
  /** The NEW container's config (mounts, masks, devices, namespaces), as in its state.json. */
  container: RuncContainer;
  imagesDir: string;
  workDir?: string;
  /** Where the new rootfs is bind-mounted for CRIU (see prepareRestoreRoot). */
  criuRoot: string;
  host: HostCgroupFacts;
  /** The new container's cgroup directories: controller name (as in /proc/<pid>/cgroup, "" for v2) -> absolute path. */
  cgroupPaths: Record<string, string>;
  /** The checkpointed init's stdio descriptors (state.json external_descriptors at dump time). */
  descriptors: string[];
  /** Veth pairs to reconnect (CRIU --veth-pair). */
  vethPairs?: { inside: string; outside: string }[];
  /** The empty host directory bound over masked directories (default MASKED_DIR_SOURCE; the caller makes sure it exists and is empty). */
  maskedDirSource?: string;
  /** New tmpfs mounts for the checkpoint's empty ones: CRIU's key -> where the caller mounted the new tmpfs. */
  emptyTmpfs?: { key: string; source: string }[];
  /**
   * A mount destination as the container's mount table names it: the symbolic links of the rootfs on its way
   * resolved inside the rootfs (restore-root.ts resolveDestInRoot), as runc resolves a bind's destination when it
   * mounts it and when it keys it for CRIU. Identity when absent.
   */
  resolveDest?: (dest: string) => string;
  /** The restored container's resctrl group (cgroups/intel-rdt.ts), joined by the helper along with the cgroups. */
  intelRdtDir?: string;
}

/** What a container restore needs: the options, plus which of the caller's fds to hand in under which key. */
export interface ContainerRestorePlan {
  opts: CriuOpts;
  /** The new stdio: descriptor index (0..2) -> CRIU key it replaces ("pipe:[1234]"). */
  stdioKeys: { index: number; key: string }[];
  /** External namespaces to hand in as inherited fds: key -> path of the namespace to open. */
  namespaceFds: { key: string; path: string }[];
  /** Cgroup directories (then the resctrl group, if any) the helper joins before calling CRIU. */
  joinCgroups: string[];
}

/**
 * The v1 controllers whose cgroup a restore's CRIU helper stays out of, and CRIU with it. Memory and pids: there, the
 * helper's own memory and threads (a Bun process, tens of MiB and a dozen threads) would count against the
 * container's limits, and the memory cgroup's OOM killer would pick the helper, the biggest task in it. Freezer: in
 * its full and strict modes CRIU restores the freezer state the checkpoint recorded, last, and a checkpoint made
 * through containerd (which pauses the task for it) records FROZEN: CRIU froze itself there, and the restore hung for
 * good. CRIU moves the tree into them itself (their cgroup roots, restoreCgroupRoots) before it restores any task's
 * memory or forks its children. A cgroup v2 container's one directory (key "") holds all three at once: the helper
 * stays out of it too (helperOutside).
 */
export const HELPER_OUTSIDE_CONTROLLERS: readonly string[] = ["memory", "pids", "freezer"];

/** The cgroups (runc's keys) a restore's helper stays out of: HELPER_OUTSIDE_CONTROLLERS, and a v2 container's unified directory. */
export function helperOutside(cgroupPaths: Readonly<Record<string, string>>): readonly string[] {
  return isV2Only(cgroupPaths) ? [...HELPER_OUTSIDE_CONTROLLERS, ""] : HELPER_OUTSIDE_CONTROLLERS;
}

/**
 * The directories a restore's CRIU helper joins: the container's cgroups but those of the `outside` controllers
 * (default helperOutside; none for every cgroup), then its resctrl group.
 */
export function restoreJoinDirs(cgroupPaths: Readonly<Record<string, string>>, intelRdtDir?: string, outside: readonly string[] = helperOutside(cgroupPaths)): string[] {
  const dirs = Object.entries(cgroupPaths).flatMap(([controller, dir]) => (outside.includes(controller) ? [] : [dir]));
  return [...dirs, ...(intelRdtDir !== undefined ? [intelRdtDir] : [])];
}

/**
 * CRIU's cgroup roots for the HELPER_OUTSIDE_CONTROLLERS the container has a v1 cgroup of: the container's own cgroup
 * there, as a path in its hierarchy (the cgroup roots of the controllers the helper joined are its own cgroups).
 * A directory below no v1 mount point of this host gets no root (the helper joins it). A cgroup v2 container gets
 * the root of the unified hierarchy (CRIU's controller "") at its directory, below the cgroup2 mount point.
 */
export function restoreCgroupRoots(cgroupPaths: Readonly<Record<string, string>>, v1Mountpoints: readonly string[], cgroup2Mountpoint?: string): { controller: string; path: string }[] {
  const roots: { controller: string; path: string }[] = [];
  for (const controller of HELPER_OUTSIDE_CONTROLLERS) {
    const dir = cgroupPaths[controller];
    if (dir === undefined) continue;
    const mount = v1Mountpoints.filter((m) => dir === m || dir.startsWith(`${m}/`)).sort((a, b) => b.length - a.length)[0];
    if (mount !== undefined) roots.push({ controller, path: dir.slice(mount.length) || "/" });
  }
  const unified = cgroupPaths[""];
  if (isV2Only(cgroupPaths) && unified !== undefined && cgroup2Mountpoint !== undefined && (unified === cgroup2Mountpoint || unified.startsWith(`${cgroup2Mountpoint}/`))) {
    roots.push({ controller: "", path: unified.slice(cgroup2Mountpoint.length) || "/" });
  }
  return roots;
}

/** CriuOpts and fd plan for restoring into a new runc container. Pure. */
export function containerRestorePlan(input: ContainerRestoreInput): ContainerRestorePlan {
  const { plan, container: c } = input;
  const extMounts: { key: string; value: string }[] = [];
  for (const m of c.config.mounts) {
    if (m.device === "bind") extMounts.push({ key: mountKey(c, m.destination, input.resolveDest), value: m.source });
    else if (m.device === "cgroup" && !hasCgroupNs(c)) {
      for (const mp of input.host.v1Mountpoints) {
        const name = basename(mp);
        const controller = Object.keys(input.cgroupPaths).find((k) => k === name || k === `name=${name}` || k.split(",").includes(name));
        const source = controller === undefined ? undefined : input.cgroupPaths[controller];
        if (!source) throw invalidArgument(`restore ${c.id}: cgroup mount ${name}`, { detail: "the new container has no cgroup directory for it" });
        extMounts.push({ key: mountKey(c, join(m.destination, name), input.resolveDest), value: source });
      }
    }
  }
  const addOnce = (key: string, value: string) => {
    if (!extMounts.some((m) => m.key === key)) extMounts.push({ key, value });
  };
  if (c.config.mask_paths.length > 0) {
    addOnce("/dev/null", "/dev/null");
    // Masked directories dumped as external mounts (MASKED_DIR_KEY); unused by a checkpoint that has none.
    addOnce(MASKED_DIR_KEY, input.maskedDirSource ?? MASKED_DIR_SOURCE);
  }
  for (const t of input.emptyTmpfs ?? []) addOnce(t.key, t.source);
  for (const d of c.config.devices) addOnce(d.path, d.path);

  const namespaceFds: { key: string; path: string }[] = [];
  const joinNs: NonNullable<CriuOpts["joinNs"]> = [];
  for (const ns of c.config.namespaces) {
    if (ns.path === "") continue;
    const t = ns.type;
    if (t === "NEWNET" || t === "network") namespaceFds.push({ key: externalNsKey("net"), path: ns.path });
    else if (t === "NEWPID" || t === "pid") namespaceFds.push({ key: externalNsKey("pid"), path: ns.path });
    else if (t === "NEWCGROUP" || t === "cgroup") throw invalidArgument(`restore ${c.id}: joined cgroup namespace`, { detail: "CRIU cannot join a cgroup namespace" });
    else joinNs.push({ ns: nsName(t), file: ns.path });
  }

  const stdioKeys = input.descriptors.slice(0, 3).flatMap((key, index) => (key.includes("pipe:") ? [{ index, key }] : []));
  const opts: CriuOpts = {
    imagesDir: input.imagesDir,
    root: input.criuRoot,
    evasiveDevices: true,
    manageCgroups: true,
    manageCgroupsMode: plan.cgroupMode,
    orphanPtsMaster: true,
    shellJob: plan.shellJob,
    extUnixSk: plan.externalUnixSockets,
    tcpEstablished: plan.tcpEstablished,
    tcpClose: plan.tcpClose,
    fileLocks: plan.fileLocks,
    autoDedup: plan.autoDedup,
    logLevel: plan.logLevel,
    logFile: "restore.log",
    mntnsCompatMode: plan.mntnsCompatMode || undefined,
    // The dump's method: CRIU unlocks (removes the lock it restores with the netns) the way it was locked.
    networkLock: plan.networkLock,
  };
  if (input.workDir) opts.workDir = input.workDir;
  if (extMounts.length > 0) opts.extMounts = extMounts;
  if (joinNs.length > 0) opts.joinNs = joinNs;
  if (plan.emptyNamespaces.length > 0) opts.emptyNs = plan.emptyNamespaces;
  else if (input.vethPairs?.length) opts.vethPairs = input.vethPairs;
  if (plan.lsmProfile) opts.lsmProfile = plan.lsmProfile;
  if (plan.lsmMountContext) opts.lsmMountContext = plan.lsmMountContext;
  if (plan.lazyPages) opts.lazyPages = true;
  // Post-copy: the lazy-pages daemon fetches the pages from the dump's own page server, where the dump
  // listens (src/criu restoreLazy hands it to the daemon only, not to the restore).
  if (plan.lazyPages && plan.pageServer) opts.pageServer = { ...plan.pageServer };
  if (plan.external.length > 0) opts.external = [...plan.external];
  // In CRIU's ignore mode the tree stays in CRIU's own cgroups: the helper joins every one of them.
  const roots = plan.cgroupMode === "ignore" ? [] : restoreCgroupRoots(input.cgroupPaths, input.host.v1Mountpoints, input.host.cgroup2Mountpoint);
  if (roots.length > 0) opts.cgRoots = roots;
  const joinCgroups = restoreJoinDirs(
    input.cgroupPaths,
    input.intelRdtDir,
    roots.map((r) => r.controller),
  );
  return { opts: stripUndefined(opts), stdioKeys, namespaceFds, joinCgroups };
}

type NsName = "ipc" | "uts" | "mnt" | "user" | "time" | "net" | "pid" | "cgroup";

/** OCI namespace types and runc's (state.json) names for them. */
const RUNC_NS_TYPE: Readonly<Record<string, string>> = { network: "NEWNET", pid: "NEWPID", ipc: "NEWIPC", uts: "NEWUTS", mount: "NEWNS", user: "NEWUSER", cgroup: "NEWCGROUP", time: "NEWTIME" };
/** runc's namespace types and their names under /proc/<pid>/ns, which are CRIU's too. */
export const NS_PROC_NAME: Readonly<Record<string, NsName>> = { NEWNET: "net", NEWPID: "pid", NEWNS: "mnt", NEWUTS: "uts", NEWIPC: "ipc", NEWUSER: "user", NEWCGROUP: "cgroup", NEWTIME: "time" };

/** runc's name for a namespace type given the OCI way ("network") or runc's ("NEWNET"). */
export function runcNsType(t: string): string {
  return RUNC_NS_TYPE[t] ?? t;
}

function nsName(t: string): NsName {
  const n = NS_PROC_NAME[runcNsType(t)];
  if (!n) throw invalidArgument(`namespace type ${t}`, { detail: "unknown" });
  return n;
}

function stripUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
