/**
 * What the shim core needs from the machine, as narrow interfaces. The daemon wires the real
 * implementations (runc, the reaper, cgroupfs, mount(8), FIFOs: engine.ts); unit tests wire fakes,
 * so the task service runs without root. Everything here is plain internal types: no protobuf.
 */
import type { CheckpointRequestOptions } from "../checkpoint/index.ts";
import type { WallTime } from "../sys/clock.ts";
import type { ShimOptions } from "./runtime-options.ts";

/** The stdio a process gets, as containerd names it: FIFO paths or a log URI in stdout. */
export interface StdioSpec {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** One rootfs mount containerd asks for (overlay, bind, ...). */
export interface RootfsMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

/** How a process ended. */
export interface ExitStatus {
  /** Exit code, or 128 + signal. */
  status: number;
  exitedAt: WallTime;
}

/** A process's IO once set up. */
export interface ProcessIo {
  /** Closes the stdin the shim holds, so the process reads EOF (CloseIO). */
  closeStdin(): void;
  /** Resizes the terminal; INVALID_ARGUMENT without one. */
  resize(width: number, height: number): void;
  /** Resolves when every byte the process wrote has been handed on (terminal copies drained). */
  drained(): Promise<void>;
  /**
   * Once the process has exited: resolves when its output has been read by the client (a terminal's copy drained, the
   * FIFOs read empty), or when it stopped moving (stdio.ts, OUTPUT_STALL_MS). The exit is reported after it: ctr
   * closes its end of the FIFO as soon as it learns of the exit. For a terminal, and for FIFOs handed to the process.
   */
  handedOn?(): Promise<void>;
  /** Releases everything the shim holds for this IO; a promise while a binary:// logger is being stopped. */
  close(): void | Promise<void>;
}

/** A process that runc created or exec'ed. */
export interface Launched {
  pid: number;
  io: ProcessIo;
}

/** What Create needs. */
export interface InitSpec {
  id: string;
  bundle: string;
  namespace: string;
  rootfs: RootfsMount[];
  stdio: StdioSpec;
  options: ShimOptions;
  /** A checkpoint directory to restore from at Start (containerd extracted it); absent for a fresh container. */
  checkpoint?: string;
}

/** What Checkpoint needs: the container, containerd's directory, and the request's options. */
export interface CheckpointSpec {
  id: string;
  bundle: string;
  namespace: string;
  options: ShimOptions;
  /** The directory containerd tars afterwards (CheckpointTaskRequest.path). */
  path: string;
  request: CheckpointRequestOptions;
  /** The container was paused before the call (containerd pauses first). */
  paused: boolean;
  /** Whether the task is paused now (a post-copy dump that ends early thaws the container unless it is). */
  isPaused?: () => boolean;
  /** Aborts the dump: CRIU is killed and the container let go as it was before the call. */
  signal?: AbortSignal;
  /** After `signal` has aborted, kills CRIU at once rather than waiting out its stop (a Kill with SIGKILL). */
  killNow?: AbortSignal;
}

/** What starting an exec needs. */
export interface ExecSpec {
  id: string;
  execId: string;
  bundle: string;
  namespace: string;
  stdio: StdioSpec;
  /** The OCI process object (JSON), as containerd sent it. */
  process: Record<string, unknown>;
  options: ShimOptions;
  /**
   * Runs `runc exec` itself (not the IO's preparation, which may wait for a FIFO's reader) in one of the daemon's exec
   * slots (container.ts); none: at once.
   */
  slot?: <T>(launch: () => Promise<T>) => Promise<T>;
}

/** Container metrics, serialized: io.containerd.cgroups.v1.Metrics or v2.Metrics (type name + bytes). */
export interface ContainerMetrics {
  typeUrl: string;
  value: Uint8Array;
}

/** The container lifecycle engine: runc plus IO, mounts, reaper and cgroups. */
export interface Engine {
  /** Mounts the rootfs, sets up IO and runs `runc create`; undoes its own work when it fails. */
  createInit(spec: InitSpec): Promise<Launched>;
  /** `runc start`, answered once the init (pid, createInit's) has exec'd the container's process. */
  startInit(id: string, options: ShimOptions, pid: number): Promise<void>;
  /** Sets up IO and runs `runc exec --detach`. */
  exec(spec: ExecSpec): Promise<Launched>;
  /** Checks an exec's process spec at Exec, before its Start (the types its runtime takes); none: checked at Start. */
  checkExecProcess?(id: string, process: Record<string, unknown>): void;
  /** Signals the init (through runc, `all` for every process) or an exec process (by pid); `target.exited`: the init has exited (a `kill --all` after it). */
  kill(id: string, options: ShimOptions, target: { init: boolean; pid: number; exited?: boolean }, signal: number, all: boolean): Promise<void>;
  /** `runc delete --force` and unmounting the rootfs; a container runc no longer knows is not an error. */
  deleteInit(id: string, bundle: string, options: ShimOptions): Promise<void>;
  /** Every pid in the container. */
  pids(id: string, options: ShimOptions): Promise<number[]>;
  /** Resolves with the exit of a pid this daemon reaps (exits that happened before the call are kept). */
  waitExit(pid: number): Promise<ExitStatus>;
  /** True when pid has died or is dying (exiting, a zombie, or gone), also before waitExit reports it. Absent: never known to have died. */
  processEnded?(pid: number): boolean;
  /** Freezes the container's cgroup. */
  freeze(id: string, options: ShimOptions): Promise<void>;
  /** Thaws it. */
  thaw(id: string, options: ShimOptions): Promise<void>;
  /** Reads its metrics. */
  stats(id: string, options: ShimOptions): Promise<ContainerMetrics>;
  /** Applies OCI LinuxResources (parsed JSON). */
  update(id: string, options: ShimOptions, resources: unknown): Promise<void>;
  /** Calls onOom on each OOM kill in the container; returns a stop function. */
  watchOom(id: string, options: ShimOptions, onOom: () => void): Promise<() => void>;
  /**
   * Dumps the container through CRIU (checkpoint-engine.ts); resolves with whether it still runs (false: the dump
   * stopped it; a post-copy source, which serves its pages and may run on, counts as running). Absent: not implemented.
   */
  checkpoint?(spec: CheckpointSpec): Promise<{ leftRunning: boolean }>;
  /** Create from a checkpoint: rootfs and IO ready, no process yet (pid 0). */
  createRestore?(spec: InitSpec & { checkpoint: string }): Promise<void>;
  /** Start of a container created from a checkpoint: the CRIU restore; returns the restored init. */
  startRestore?(id: string): Promise<Launched>;
  /**
   * containerd's Connect for a container created from a checkpoint: it asks right after Create and answers its own
   * client only then, so the restore's work ahead of Start waits for it (createRestore).
   */
  restoreConnected?(id: string): void;
  /** Releases what createRestore holds for a container deleted before it was started. */
  discardRestore?(id: string): void | Promise<void>;
  /** Aborts the restore a Start of id is running (the task is being killed or deleted); false when none runs. */
  cancelRestore?(id: string, reason: string): boolean;
}
