/**
 * The cgroup manager interface: one container's cgroup, v1 (a directory per controller) or v2 (one
 * unified directory). The shim's task service talks to this interface only; v1-manager.ts and
 * v2-manager.ts implement it directly on cgroupfs.
 */
import type { CgroupMetrics } from "./metrics.ts";
import type { LinuxResources } from "./resources.ts";

/** What a container's freezer says: frozen only once every task is frozen. */
export type FreezerState = "frozen" | "thawed";

/** Where one container's cgroup lives. */
export type CgroupLocation =
  | { version: 1; /** controller (or `name=systemd`) -> absolute directory */ paths: Record<string, string> }
  | { version: 2; /** absolute directory in the cgroup2 hierarchy */ path: string };

/** Options for waiting on the kernel (freeze, thaw, rmdir). */
export interface WaitOptions {
  /** Give up after this many milliseconds (default 5000 for freeze/thaw, 5000 for rmdir). */
  timeoutMs?: number;
}

/** Options for OOM watching. */
export interface OomWatchOptions {
  /** v2 only: period of the safety-net poll of memory.events besides inotify, in ms (default 1000). v1 never polls. */
  pollMs?: number;
  /** Called when the watcher itself fails (cgroup vanished, read error); the watcher stops. */
  onError?: (err: Error) => void;
}

/** Options for destroy(). */
export interface DestroyOptions extends WaitOptions {
  /** SIGKILL every process still in the cgroup (thawing it first) before removing it. */
  kill?: boolean;
}

/** One container's cgroup. All methods are async and never block the event loop for long. */
export interface CgroupManager {
  /** 1 for per-controller v1 directories, 2 for the unified hierarchy. */
  readonly version: 1 | 2;
  /** Where the cgroup lives. */
  readonly location: CgroupLocation;
  /** Freezes every task, resolving once the kernel reports the cgroup frozen. */
  freeze(opts?: WaitOptions): Promise<void>;
  /** Thaws every task, resolving once the kernel reports the cgroup thawed. */
  thaw(opts?: WaitOptions): Promise<void>;
  /** "frozen" when the cgroup is completely frozen, "thawed" otherwise. */
  state(): Promise<FreezerState>;
  /** Every pid in the cgroup and its descendants, sorted. */
  pids(): Promise<number[]>;
  /** Statistics as containerd's metrics message init shape; missing controllers/files are skipped. */
  stats(): Promise<CgroupMetrics>;
  /** Applies an OCI LinuxResources (already validated with parseLinuxResources). */
  update(resources: LinuxResources): Promise<void>;
  /**
   * Calls onOom each time the kernel reports an OOM in this cgroup, with the cgroup's total OOM-kill
   * count when it has already risen (v1 may notify before the kill is counted: then undefined).
   */
  watchOom(onOom: (count?: bigint) => void, opts?: OomWatchOptions): Disposable;
  /** Moves a process (all its threads) into the cgroup. */
  addProcess(pid: number): Promise<void>;
  /** Removes the cgroup directories leaf-first, retrying while tasks drain. */
  destroy(opts?: DestroyOptions): Promise<void>;
}
