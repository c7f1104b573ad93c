/**
 * Checkpoint of a running (or paused) runc container through libcriu, the way runc sets CRIU up
 * (root = rootfs, external mounts and namespaces, cgroup freezer, orphan pts master, manage cgroups),
 * with one deliberate difference: the container's network namespace is dumped (no empty_ns), so a
 * restore brings back loopback, addresses and listeners.
 *
 * The CRIU call runs in a helper process (src/criu), so the daemon keeps serving State and Pids
 * while it dumps. Everything a restore needs lands in the images directory, which containerd tars
 * whole: CRIU's images (less the network images that restore nothing, src/checkpoint/net-images.ts),
 * `descriptors.json` (runc's format), `cryo-checkpoint.json` (metadata), and CRIU's `dump.log` and
 * `stats-dump` copied from the work directory (and, for a CRI container, into containerd's CRI directory for it:
 * cri-container-dir.ts).
 *
 * Failure leaves the container as it was: CRIU thaws a cgroup it froze and keeps one that was
 * frozen before (containerd's pause) frozen; the error carries CRIU's log lines and code, and the
 * whole log is kept as <bundle>/criu-dump.log. An aborted dump (input.signal) asks cryo's CRIU to stop (it undoes
 * the dump itself), or kills a CRIU that cannot be asked or does not answer; cryo then does what a killed CRIU cannot:
 * the cgroup's freezer put back as it was, CRIU's network lock removed (dump-abort.ts).
 */
import { existsSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname, release } from "node:os";
import { basename, join } from "node:path";
// The modules themselves, not src/checkpoint's and src/criu's indexes: through them `cryo inspect`, CRIU's
// image decoders and the helper's libcriu binding would load with a daemon's first checkpoint.
import { listImages } from "../checkpoint/images-list.ts";
import { createEntry, finishEntry, pageStoreRoot } from "../checkpoint/local-pages.ts";
import type { CheckpointMetadata } from "../checkpoint/metadata.ts";
import { pruneNoopNetImages } from "../checkpoint/net-images.ts";
import { checkCombinations, isPostCopy, networkLockAsked, postCopyPlan, resolveCheckpointPlan, type CheckpointOverrides, type CheckpointPlan, type CheckpointRequestOptions } from "../checkpoint/plan.ts";
import { cgroupYard, containerDumpOpts, emptyTmpfsMounts, externalNamespaceInodes, maskedDirs, maskedFiles, readHostCgroupFacts, runcContainerFrom } from "../checkpoint/runc-criu.ts";
import { resolveDestInRoot } from "../checkpoint/restore-root.ts";
import { findWatchedPaths, watchedInodes } from "../checkpoint/watch-paths.ts";
import { dumpBaseline, readThreadStates, type ThreadState } from "../checkpoint/thread-state.ts";
import { showPersonality, threadPersonalities } from "../checkpoint/personality-check.ts";
import { listPidsRecursive } from "../cgroups/procs.ts";
import { commOf, innermostPid, processTree, tracerPidOf } from "../sys/proc.ts";
import { killsAtOnce } from "../criu/abort-reason.ts";
import { criuBinary, criuRestoresPersonality } from "../criu/binary.ts";
import { CriuKilledError, CriuLostError, CriuStoppedError, type Criu, type DumpResult } from "../criu/client.ts";
import { openCgroup } from "../cgroups/open.ts";
import { Code, CryoError, failedPrecondition, fsError, invalidArgument, notFound, unavailable } from "../errors.ts";
import { parseRuncState } from "../runtime/index.ts";
import { checkpointPolicy, type ImageReader, type PolicyFor } from "./checkpoint-policy.ts";
import { classifyCriuError } from "./criu-errors.ts";
import { pseudoFsOf } from "./pseudo-fs.ts";
import { awaitInitExec, runcInitPending } from "./init-exec.ts";
import { copyInto, criCheckpointFilesDir, criContainerDir } from "./cri-container-dir.ts";
import { inspectStdio, stdioExternals } from "./checkpoint-stdio.ts";
import type { Logger } from "./logger.ts";
import { dumpWorkDir, forgetDumpDir, recordDumpDir } from "./orphaned-criu.ts";
import { sweepEmptied, watchRemoval } from "./dir-watch.ts";
import { CONTAINERD_CHECKPOINT_NAME } from "../containerd/layout.ts";
import { copyRegularFile, lastLogLine, regularFileText, undoKilledDump } from "./dump-abort.ts";
import { parsePreciseJson, stringifyPreciseJson } from "../sys/precise-json.ts";
import { readRegularFile } from "../sys/regular-file.ts";
import { checkCheckpointEntries } from "../checkpoint/dir-check.ts";

/** runc's name for the stdio record in the images directory. */
export const DESCRIPTORS_FILE = "descriptors.json";
/** Where the log of a failed dump is kept, in the bundle. */
export const FAILED_DUMP_LOG = "criu-dump.log";
/** How long an abort's freeze before CRIU is killed tries: less than the CRIU client's BEFORE_KILL_MS (2 s). */
const FREEZE_BEFORE_KILL_MS = 1_500;

/** What a dump needs to know. */
export interface DumpInput {
  id: string;
  bundle: string;
  namespace: string;
  /** runc's state root (where <id>/state.json lives). */
  runcRoot: string;
  /** CheckpointTaskRequest.path: the directory containerd will tar. */
  path: string;
  request: CheckpointRequestOptions;
  /** Config-file checkpoint defaults. */
  defaults?: CheckpointOverrides;
  /** Where the defaults came from, for errors ("config /etc/cryo/config.toml [checkpoint]"). */
  defaultsLabel?: string;
  /** The container was paused (frozen) before the call. */
  paused: boolean;
  criu: Criu;
  /** CRIU's version (libcriu's number), for the metadata. */
  criuVersion: () => Promise<number>;
  cryoVersion: string;
  log: Logger;
  /** The policy plugins' checkpoint hook, for the container's config path (none: no plugins). */
  policyFor?: PolicyFor;
  /** The runtime options' config path (selects the plugin config). */
  configPath?: string;
  /** The container's image, read only when a checkpoint plugin applies; what it read is recorded in the metadata. */
  image?: ImageReader;
  /** The page store for `localPages` (default: CRYO_PAGE_STORE or /var/lib/cryo/pages). */
  pageStore?: string;
  /**
   * Aborts the dump (the caller's deadline, a SIGKILL Kill): CRIU is killed, and what it left undone
   * (dump-abort.ts); the call fails with the signal's reason.
   */
  signal?: AbortSignal;
  /** containerd's address (the shim's -address): a local-pages entry records it, for `cryo pages prune`. */
  containerdAddress?: string;
  /**
   * Aborted by every Kill with SIGKILL during the dump: once the dump's abort has come (`signal`, its timeout, its images
   * directory removed), CRIU, asked to stop, is killed at once instead (CriuCallOptions.killNow), and the init gets
   * SIGKILL before the thaw.
   */
  killNow?: AbortSignal;
}

/** What a dump did. */
export interface DumpOutcome {
  plan: CheckpointPlan;
  imagesDir: string;
  /** False when the container was stopped by the dump (exit), or will be once a post-copy dump has sent its pages. */
  leftRunning: boolean;
  metadata: CheckpointMetadata | undefined;
  /** A post-copy dump still serving the pages: the caller owns it (await done, abort on timeout or shutdown). */
  serving?: PostCopyServing;
}

/** The rest of a post-copy dump: CRIU's page server, running in the dump's helper, until the restore has every page. */
export interface PostCopyServing {
  /** The dump call: resolves once every page is sent (CRIU then kills the tree), rejects if the transfer fails. */
  done: Promise<DumpResult>;
  /** Kills CRIU: the tree is let go (it runs on), and a restore still fetching pages fails. */
  abort(reason?: unknown): void;
  pageServer: { address: string; port: number };
}

/**
 * CRIU's lazy page server (a post-copy dump) sizes its pipes with F_SETPIPE_SZ to 4 MiB (CRIU's
 * PIPE_MAX_SIZE rounded up to a power of two pages). Without CAP_SYS_RESOURCE (as here: containerd's
 * shims run without it on this kind of VM) that fails over fs.pipe-max-size, and CRIU's page server then
 * fails at the first page it sends (`page-pipe: splice: -1: Bad file descriptor`). Checked before anything
 * is frozen, with the fix in the error.
 */
export const POST_COPY_PIPE_BYTES = 4 * 1024 * 1024;
const CAP_SYS_RESOURCE = 24;

/**
 * A TCP port free on address right now (bound with port 0, then closed). Another process may take it before
 * CRIU binds it: the dump then fails ("Can't bind page server: Address already in use") and the container
 * keeps running.
 */
function freeTcpPort(address: string, label: string): number {
  try {
    const s = Bun.listen({ hostname: address, port: 0, socket: { data() {} } });
    const port = s.port;
    s.stop(true);
    return port;
  } catch (err) {
    throw CryoError.from(err).wrap(`${label}: a free port for the page server on ${address}`);
  }
}

/** pid has a network namespace of its own (not this process's) whose only interface is lo, and no TCP socket in it. */
export function loopbackOnlyNetns(pid: number): boolean {
  try {
    if (readlinkSync(`/proc/${pid}/ns/net`) === readlinkSync("/proc/self/ns/net")) return false;
    // Two header lines, then one line per interface: "  lo: 1234 ..."
    const names = readFileSync(`/proc/${pid}/net/dev`, "utf8")
      .split("\n")
      .slice(2)
      .map((l) => l.split(":")[0]!.trim())
      .filter((n) => n !== "");
    if (names.length !== 1 || names[0] !== "lo") return false;
    // The namespace's own socket counters, not /proc/<pid>/net/tcp: listing sockets walks the host-wide TCP
    // hash tables, about 4.4 ms per file here against 0.1 ms for a counter file.
    let sockstat6: string | undefined;
    try {
      sockstat6 = readFileSync(`/proc/${pid}/net/sockstat6`, "utf8");
    } catch {
      // no IPv6: no TCP6 socket
    }
    return noTcpSockets(readFileSync(`/proc/${pid}/net/sockstat`, "utf8"), sockstat6);
  } catch {
    return false;
  }
}

/**
 * A network namespace's sockstat (and sockstat6) count no TCP socket in any state: none hashed ("TCP: inuse",
 * "TCP6: inuse": listening, connecting, connected or closing) and none in TIME_WAIT ("tw"). A socket only
 * created or bound is in neither and reachable by no packet. False when a line is missing or unreadable.
 */
export function noTcpSockets(sockstat: string, sockstat6?: string): boolean {
  const tcp = /^TCP: inuse (\d+) orphan \d+ tw (\d+) /m.exec(sockstat);
  if (!tcp || tcp[1] !== "0" || tcp[2] !== "0") return false;
  if (sockstat6 === undefined) return true;
  const tcp6 = /^TCP6: inuse (\d+)$/m.exec(sockstat6);
  return tcp6 !== null && tcp6[1] === "0";
}

function checkPostCopyHost(label: string): void {
  let max = Number.NaN;
  let capEff = 0n;
  try {
    max = Number(readFileSync("/proc/sys/fs/pipe-max-size", "utf8").trim());
    capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0"}`);
  } catch {
    return; // not readable: let CRIU try
  }
  if ((capEff >> BigInt(CAP_SYS_RESOURCE)) & 1n) return;
  if (!(max < POST_COPY_PIPE_BYTES)) return;
  throw failedPrecondition(`${label}: post-copy (lazy pages with a page server)`, {
    detail: `fs.pipe-max-size is ${max}; CRIU's page server needs ${POST_COPY_PIPE_BYTES} without CAP_SYS_RESOURCE (sysctl -w fs.pipe-max-size=${POST_COPY_PIPE_BYTES}; scripts/setup.sh sets it)`,
  });
}

const memTrackOf = new WeakMap<Criu, Promise<boolean>>();

/**
 * A pre-dump (CRIU turns memory tracking on for it) and track-mem need the kernel's soft-dirty tracking. (A dump on
 * parent images without track-mem does not: CRIU then takes no page from the parent and dumps them all.) CRIU checks
 * --track-mem up front, but turns tracking on for a pre-dump after that check, and then meets its absence as a BUG_ON
 * in task_reset_dirty_track: CRIU crashes (SIGSEGV) with its parasite in the task, the error an unknown rc -52. So
 * the shim asks CRIU's feature check first (once per Criu: the kernel does not change under it), as runc does
 * before a pre-dump.
 */
async function checkMemTrack(criu: Criu, plan: CheckpointPlan, label: string): Promise<void> {
  if (!plan.preDump && !plan.trackMem) return;
  let known = memTrackOf.get(criu);
  if (known === undefined) {
    known = criu.features().then((f) => f.memTrack);
    memTrackOf.set(criu, known);
    known.catch(() => memTrackOf.delete(criu));
  }
  if (await known) return;
  const what = plan.preDump ? "pre-dump" : "track-mem";
  throw failedPrecondition(`${label}: ${what}`, { detail: "needs soft-dirty memory tracking, which this kernel lacks (CRIU's feature check: mem_dirty_track off)" });
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readRegularFile(path, what).toString("utf8");
  } catch (err) {
    if (err instanceof CryoError) throw err;
    throw notFound(what, { cause: err, detail: `no ${path}` });
  }
  try {
    return parsePreciseJson(text); // 64-bit integers exact: a spec's RLIM_INFINITY rlimit, int64 limits
  } catch (err) {
    throw invalidArgument(what, { cause: err, detail: `${path} is not JSON` });
  }
}

/**
 * Makes a directory a Checkpoint writes into. A file system error is classified (fsError): a path that is a file, a
 * device or a link to one (EEXIST from mkdir) was UNKNOWN "EEXIST: file already exists, mkdir '/dev/null'".
 */
function ensureDir(dir: string, what: string, mode = 0o700): void {
  try {
    mkdirSync(dir, { recursive: true, mode });
    const st = statSync(dir);
    if (!st.isDirectory()) throw invalidArgument(what, { detail: `${dir} is not a directory` });
  } catch (err) {
    throw fsError(`${what} ${dir}`, err, dir);
  }
}

/** Where the kernel keeps a task in a stop (its wchan), frozen or not. */
const STOP_WAITS = new Set(["do_signal_stop", "ptrace_stop"]);

/**
 * The container's tasks (every thread of its freezer cgroup, or of its cgroup v2 directory) in a stop: `T` (a stop
 * signal) or `t` (a ptrace stop) in /proc/<tid>/stat, or, once the cgroup is frozen (containerd pauses before
 * Checkpoint; a frozen task reads `D`), waiting in the kernel's do_signal_stop or ptrace_stop (its wchan; a task
 * frozen while running waits in __refrigerator). Tasks gone meanwhile are skipped.
 *
 * A frozen task in ptrace_stop counts only while it has a tracer. A paused container's tasks that a dump seized and
 * let go (CRIU detaches them while the cgroup is frozen again) keep that wchan, without a tracer, until thawed, and
 * such a task does not hang a seize: taking them for stopped sent every second checkpoint of a paused container
 * through the ptrace seize, which thaws the cgroup for the dump, and the container ran meanwhile (a paused counter
 * moved by one in every second `ctr task checkpoint`, runc's did not; a helper session found it).
 */
export function stoppedTasks(cgroupPaths: Record<string, string>): number[] {
  const dir = cgroupPaths.freezer ?? cgroupPaths[""];
  if (dir === undefined) return [];
  let list: string;
  try {
    list = readFileSync(join(dir, existsSync(join(dir, "tasks")) ? "tasks" : "cgroup.threads"), "utf8");
  } catch {
    return [];
  }
  const stopped: number[] = [];
  for (const tid of list.split("\n").filter((l) => l !== "").map(Number)) {
    try {
      const stat = readFileSync(`/proc/${tid}/stat`, "utf8");
      const state = stat[stat.lastIndexOf(")") + 2];
      if (state === "T" || state === "t") stopped.push(tid);
      else if (state === "D") {
        const wchan = readFileSync(`/proc/${tid}/wchan`, "utf8").trim();
        if (wchan === "do_signal_stop" || (STOP_WAITS.has(wchan) && (tracerPidOf(tid) ?? 0) !== 0)) stopped.push(tid);
      }
    } catch {
      // gone
    }
  }
  return stopped;
}


/** A process's PID namespace (the /proc/PID/ns/pid link, "pid:[INODE]"); undefined when it is gone. */
function pidNamespaceOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/**
 * The threads of pids whose affinity, timer slack or I/O priority a restore must set again (thread-state.ts), against
 * the container's cpuset (its cgroup's effective CPUs) and this shim's timer slack. A failure to read them leaves them
 * out, said in the log: the dump goes on, and the restore leaves those threads with CRIU's.
 */
function recordThreadStates(pids: number[], cgroupPaths: Record<string, string>, log: Logger, label: string): ThreadState[] {
  try {
    const v1 = cgroupPaths.cpuset;
    const v2 = cgroupPaths[""];
    let cpus: string | undefined;
    for (const file of [v1 && join(v1, "cpuset.effective_cpus"), v2 && join(v2, "cpuset.cpus.effective")]) {
      if (!file || cpus !== undefined) continue;
      try {
        cpus = readFileSync(file, "latin1");
      } catch {
        // no cpuset controller there: the host's online CPUs
      }
    }
    const states = readThreadStates(pids, dumpBaseline(cpus));
    if (states.length > 0) log.info(`${label}: ${states.length} threads with an affinity, timer slack or I/O priority of their own, recorded for the restore`);
    return states;
  } catch (err) {
    log.warn(`${label}: threads' affinity, timer slack and I/O priority not recorded (the restore leaves CRIU's): ${err instanceof Error ? err.message : String(err)}`);
    return [];
  }
}

/** What lookAtTree is given: the container's init and the processes of its cgroup. */
interface TreeLook {
  pid: number;
  cgroupPids: number[];
  cgroupPaths: Record<string, string>;
  preDump: boolean;
  log: Logger;
  label: string;
}

/**
 * What the dump needs to know of the tree before CRIU runs, the container frozen: the processes in its cgroup that the
 * checkpoint will not hold (logged), a personality that a restore would lose (FAILED_PRECONDITION), each thread's CPU
 * affinity, timer slack and I/O priority (for the metadata: CRIU restores none of them), and the paths of files on the
 * rootfs that inotify or fanotify watch (for CRIU's irmap).
 */
async function lookAtTree({ pid, cgroupPids, cgroupPaths, preDump, log, label }: TreeLook): Promise<{ threadStates: ThreadState[]; watchedPaths: string[] }> {
  // CRIU dumps the tree below the init. An exec'd process (`ctr task exec`, `kubectl exec`) is a child of the shim's
  // runc, not of the init: it is in the container's cgroup but not in the checkpoint, under runc's shim too. Said
  // in the log, since the restore will not have it.
  const tree = new Set(processTree(pid));
  const outside = cgroupPids.filter((p) => !tree.has(p));
  // An exec joins the init's PID namespace. A process in another one is another container's that shares this cgroup
  // (a spec that names it; a copy restored under a new id by runc's shim, which keeps its source's cgroupsPath: cryo's
  // gives such a copy its own), and is frozen with it while this one is paused and dumped.
  const initPidNs = pidNamespaceOf(pid);
  const others = initPidNs === undefined ? [] : outside.filter((p) => {
    const n = pidNamespaceOf(p);
    return n !== undefined && n !== initPidNs;
  });
  const execd = outside.filter((p) => !others.includes(p));
  const named = (pids: number[]) => pids.map((p) => `${p} (${commOf(p) ?? "gone"})`).join(", ");
  if (execd.length > 0) log.warn(`${label}: processes not below the container's init (exec'd), which the checkpoint does not hold: ${named(execd)}`);
  if (others.length > 0) {
    log.warn(`${label}: processes of another PID namespace in the container's cgroup (another container's, whose spec names this cgroup), frozen with it, not in the checkpoint: ${named(others)}`);
  }
  // A personality the running tasks depend on (linux32, uname26, ...), which a restore by a CRIU that does not carry it
  // loses (personality-check.ts). cryo's CRIU (patch 0011) records and restores each thread's: nothing to check.
  const personalities = criuRestoresPersonality(criuBinary()) ? [] : threadPersonalities([...tree]);
  const lost = personalities.filter((t) => t.whileRunning.length > 0);
  if (lost.length > 0) {
    const t = lost[0]!;
    const which = t.tid === t.pid ? `process ${innermostPid(t.pid) ?? t.pid}` : `thread ${innermostPid(t.tid) ?? t.tid} of process ${innermostPid(t.pid) ?? t.pid}`;
    const more = lost.length > 1 ? ` (and ${lost.length - 1} more ${lost.length === 2 ? "thread" : "threads"})` : "";
    throw failedPrecondition(label, {
      detail: `${which} of the container runs with personality ${showPersonality(t.value)} (${t.whileRunning.join(", ")})${more}, which a restore would lose while the task depends on it: this CRIU does not restore a task's personality (it is not cryo's build with patch 0011), and nothing outside the task can set it (personality(2) acts on its caller)`,
    });
  }
  const atExec = personalities.filter((t) => t.atExec.length > 0);
  if (atExec.length > 0) {
    log.warn(`${label}: tasks with a personality the restore loses (this CRIU does not restore it): what they execute after the restore runs without it`, { tasks: atExec.map((t) => `${innermostPid(t.tid) ?? t.tid} ${showPersonality(t.value)} (${t.atExec.join(", ")})`) });
  }
  // Each thread's CPU affinity, timer slack and I/O priority, which CRIU does not restore (thread-state.ts), where it
  // differs from a thread's default: read now, the tree frozen (containerd paused it), and set again by the restore.
  const threadStates = preDump ? [] : recordThreadStates([...tree], cgroupPaths, log, label);
  // Watches (inotify, fanotify) on files of the rootfs, which CRIU cannot open by handle on overlayfs: the paths of
  // the watched files, for CRIU to find them by (watch-paths.ts).
  const watched = watchedInodes(cgroupPids);
  if (watched.length === 0) return { threadStates, watchedPaths: [] };
  const t = performance.now();
  const watchedPaths = await findWatchedPaths(`/proc/${pid}/root`, watched);
  log.info(`${label}: ${watched.length} watched files; on the rootfs: ${watchedPaths.join(", ") || "none"}`, { ms: Math.round(performance.now() - t) });
  return { threadStates, watchedPaths };
}

/** Dumps the container; see the module comment for what it leaves where. */
export async function dumpContainer(input: DumpInput): Promise<DumpOutcome> {
  // For `delete`, should this daemon die before it answers (orphaned-criu.ts removeAbandonedDumpDir).
  const recorded = recordDumpDir(input.bundle, input.path);
  try {
    return await dump(input);
  } finally {
    if (recorded) forgetDumpDir(input.bundle);
  }
}

/** What dumpCallError reads of the failed CRIU call. */
interface FailedDumpCall {
  label: string;
  input: DumpInput;
  pid: number;
  state: ReturnType<typeof parseRuncState>;
  plan: CheckpointPlan;
  /** CRIU's log in the work directory: kept as <bundle>/criu-dump.log (FAILED_DUMP_LOG). */
  logFile: string;
  /** The call's signal: the caller's, the plan's timeout, the images directory's removal. */
  signal: AbortSignal;
  ownNetns: boolean;
  cgroupDir: string | undefined;
  useFreezer: boolean;
  /** The freeze an abort started before CRIU was killed, if any. */
  freezingBeforeKill: () => Promise<void> | undefined;
  imagesDir: string;
  /** Whether the images directory has gone (containerd removed it: its caller went away). */
  imagesDirGone: () => boolean;
}

/**
 * The error of a failed CRIU dump call, after undoing what a killed or lost CRIU left (undoKilledDump: the network
 * lock, a paused container frozen again, a thawed one thawed): CANCELLED or DEADLINE_EXCEEDED with what was undone
 * when the call was aborted, CRIU's own classified error otherwise, each naming the kept log.
 */
async function dumpCallError(err: unknown, c: FailedDumpCall): Promise<CryoError> {
  const { label, input, pid, state, plan, signal, ownNetns, cgroupDir, useFreezer, imagesDir } = c;
  const kept = join(input.bundle, FAILED_DUMP_LOG);
  try {
    copyRegularFile(c.logFile, kept);
  } catch {
    // no log written (CRIU never started)
  }
  // CRIU killed where it stood, by this abort or from outside (a crash, an operator's kill): what it froze and locked
  // stays so unless undone here. Its tasks ran on from its death: a paused container must be frozen again.
  const lost = !signal.aborted && err instanceof CriuLostError;
  if (signal.aborted && err instanceof CriuStoppedError) {
    // CRIU, asked to stop (SIGTERM, cryo's CRIU), ended the dump through its own cleanup: nothing is left to undo.
    const reason = CryoError.from(signal.reason);
    const what = plan.preDump ? "pre-dump" : "dump";
    const how = err.finished
      ? `CRIU had already finished the ${what} when it was asked to stop${plan.preDump || plan.leaveRunning ? "" : ": the container's processes have ended"}`
      : `CRIU stopped the ${what} at a safe point and put the container back as it was`;
    input.log.warn(`${label}: aborted: ${reason.message}; ${how}`, { log: kept });
    return new CryoError(reason.code, `${reason.message}; ${how} (log: ${kept})`, { cause: err });
  }
  if (signal.aborted || lost) {
    const logFile = c.logFile;
    // A Kill with SIGKILL aborted the dump (at once, or after another abort): the init gets its SIGKILL here, while
    // the cgroup is still frozen, so that it dies of it once thawed. CRIU, killed wherever it stood, may have left the
    // init with compel's injected syscall and trap, and a thaw first let it die of SIGTRAP (exit 133) before the
    // Kill's own signal came (that Kill then failed: process already finished).
    if (!lost && (killsAtOnce(signal.reason) || input.killNow?.aborted === true)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    const undone = await undoKilledDump({
      netns: state.namespace_paths.NEWNET ?? `/proc/${pid}/ns/net`,
      logFile,
      networkLock: plan.networkLock,
      ownNetns,
      ...(plan.tcpEstablished ? { tcpProcesses: () => (cgroupDir === undefined ? Promise.resolve([]) : listPidsRecursive(cgroupDir)) } : {}),
      freezer: useFreezer
        ? {
            paused: input.paused,
            set: async (frozen) => {
              // The freeze before the kill is over first (it thaws the cgroup itself when it gives up).
              await c.freezingBeforeKill()?.catch(() => {});
              const cgroup = await openCgroup({ runcCgroupPaths: state.cgroup_paths });
              await (frozen ? cgroup.freeze() : cgroup.thaw());
            },
          }
        : undefined,
    });
    if (lost) {
      input.log.warn(`${label}: CRIU ended without an answer`, { undone: undone.done, failed: undone.failed, log: kept });
      const parts = [...undone.done, ...undone.failed.map((f) => `not undone: ${f}`)];
      const e = classifyCriuError(err).wrap(`${label} (log: ${kept})`);
      return parts.length > 0 ? new CryoError(e.code, `${e.message}; after it: ${parts.join("; ")}`, { cause: err }) : e;
    }
    const last = lastLogLine(regularFileText(logFile));
    const reason = CryoError.from(signal.reason);
    const parts = [
      `CRIU killed during the ${plan.preDump ? "pre-dump" : "dump"}${err instanceof CriuKilledError ? ` (${err.why})` : ""}${last ? ` (its log's last line: ${JSON.stringify(last)})` : ""}`,
      ...undone.done,
      ...undone.failed.map((f) => `not undone: ${f}`),
    ];
    input.log.warn(`${label}: aborted: ${reason.message}`, { ...(err instanceof CriuKilledError ? { criuKilled: err.why } : {}), undone: undone.done, failed: undone.failed, log: kept });
    return new CryoError(reason.code, `${reason.message}; ${parts.join("; ")} (log: ${kept})`, { cause: err });
  }
  // containerd removed its directory (its caller went away) before the watch's next look, and CRIU failed on the
  // missing images first ("Unable to open ...img: No such file"; a helper session: ctr killed 0.01-0.1 s into the
  // dump). CRIU cleaned up after itself; the error says why it failed.
  if (c.imagesDirGone()) {
    const e = classifyCriuError(err);
    return new CryoError(Code.CANCELLED, `${label}: cancelled: its images directory ${imagesDir} was removed during the ${plan.preDump ? "pre-dump" : "dump"} (containerd removes its checkpoint directory when the request ends: its caller went away), and CRIU failed on it: ${e.message} (log: ${kept})`, { cause: err });
  }
  return classifyCriuError(err).wrap(`${label} (log: ${kept})`);
}

/** dumpContainer's work: the plan, the looks at the tree, CRIU's call, then the checkpoint's metadata and images. */
async function dump(input: DumpInput): Promise<DumpOutcome> {
  const { id, bundle } = input;
  const label = `checkpoint container ${id}`;
  const prepStart = performance.now();
  const statePath = join(input.runcRoot, id, "state.json");
  const rawState = readJson(statePath, `runc state of container ${id}`) as Record<string, unknown>;
  const state = parseRuncState(stringifyPreciseJson(rawState), statePath);
  const spec = readJson(join(bundle, "config.json"), `OCI spec of container ${id}`) as Record<string, unknown>;
  const annotations = (spec.annotations ?? {}) as Record<string, string>;
  const pid = state.init_process_pid;
  if (!existsSync(`/proc/${pid}`)) throw notFound(`container ${id}`, { detail: `init pid ${pid} is gone` });
  // runc start returns before its init's execve (engine.ts startInit); until then the init is runc init, whose
  // executable is on a detached mount CRIU cannot dump (`Can't lookup mount=N for fd=-3`, UNKNOWN before). A
  // checkpoint right after Start waits for the execve, at most INIT_EXEC_WAIT_MS; containerd's own checkpoints pause
  // first, and the first freeze waits the same way. One held up longer (a seccomp agent's notify), or frozen before
  // its execve, is refused.
  if (runcInitPending(pid) && !(await awaitInitExec(pid))) {
    throw unavailable(label, { detail: `its init (pid ${pid}) is still runc init: the container's process has not been exec'd yet, and CRIU cannot dump runc's executable; retry once the container runs its process` });
  }
  const resolved = resolveCheckpointPlan({ defaults: input.defaults, ...(input.defaultsLabel ? { defaultsLabel: input.defaultsLabel } : {}), annotations, request: input.request });
  let imageRead: ReturnType<ImageReader> | undefined;
  const readImage = input.image;
  const image = readImage ? () => (imageRead ??= readImage()) : undefined;
  // A plugin may have changed what local pages clash with, or made the checkpoint post-copy.
  let plan = postCopyPlan(
    input.policyFor
      ? await checkpointPolicy(await input.policyFor(input.configPath ?? ""), { id, namespace: input.namespace, annotations, pid, cgroupPaths: state.cgroup_paths, plan: resolved, image })
      : resolved,
  );
  checkCombinations(plan, () => (input.policyFor ? " (as the checkpoint plugins left them)" : ""));
  await checkMemTrack(input.criu, plan, label);
  // CRIU's network lock keeps packets away from the frozen tree's sockets: above all the SYNs a listener would
  // otherwise complete into an accept queue that is not dumped (those clients would be reset, not retry). A
  // network namespace of the container's own with nothing but loopback and no TCP socket at all has nothing
  // to guard: nothing outside reaches it, a process that joins it later cannot connect to a listener that
  // does not exist, and the frozen tree makes none. Its lock and unlock (libnftables in CRIU, 10-25 ms of a
  // 16 MiB dump and restore here) are skipped then, and recorded so, unless a lock method was asked for
  // (request, annotation, config or plugin) or TCP connections are dumped.
  const lockAsked = networkLockAsked({ defaults: input.defaults, annotations, request: input.request }) || plan.networkLock !== resolved.networkLock;
  if (!lockAsked && !plan.tcpEstablished && loopbackOnlyNetns(pid)) plan = { ...plan, networkLock: "skip" };
  const postCopy = isPostCopy(plan);
  if (postCopy) {
    checkPostCopyHost(label);
    // Port 0: a port free now on that address, recorded in the checkpoint for the restore to connect to.
    if (plan.pageServer!.port === 0) plan = { ...plan, pageServer: { ...plan.pageServer!, port: freeTcpPort(plan.pageServer!.address, label) } };
  }

  const imagesDir = plan.imagePath ?? input.path;
  const ownWork = plan.workPath === undefined;
  const workDir = plan.workPath ?? dumpWorkDir(bundle);
  // The request's path is checked by the task service; an image or work path from the options, an annotation, the
  // config or a plugin is checked here, before anything is made there.
  for (const [what, dir] of [["images directory", imagesDir], ["work directory", workDir]] as const) {
    const on = pseudoFsOf(dir);
    if (on !== undefined) throw invalidArgument(`${label}: ${what} ${dir}`, { detail: `is on ${on}; give a directory of a real file system` });
  }
  ensureDir(imagesDir, `${label}: images directory`);
  // What is already there is written over: only regular files and directories, as a restore reads (a FIFO named
  // descriptors.json blocked the daemon's write of it, and every container it serves, until a reader came).
  checkCheckpointEntries(realpathSync(imagesDir)); // the directory itself may be reached through a link
  if (ownWork) rmSync(workDir, { recursive: true, force: true });
  ensureDir(workDir, `${label}: work directory`);

  const container = runcContainerFrom(rawState, statePath);
  const stdio = inspectStdio(pid, state.external_descriptors);
  // A stopped task (SIGSTOP, a ptrace stop) in a frozen cgroup: the kernel's ptrace attach waits, uninterruptibly,
  // for it to leave a stop it cannot leave while frozen, so CRIU's seize through the cgroup freezer hangs for
  // ever in D state (so does runc's checkpoint; seen here). Such a tree is seized through ptrace alone, its
  // cgroup thawed for that (CRIU stops every task it seizes) and frozen again afterwards when it was paused.
  const stopped = stoppedTasks(state.cgroup_paths);
  const useFreezer = stopped.length === 0;
  if (!useFreezer) input.log.info(`${label}: stopped tasks ${stopped.join(", ")}: CRIU seizes the tree through ptrace, not the cgroup freezer (seizing a stopped task in a frozen cgroup hangs in the kernel)`);
  // Empty writable tmpfs mounts go as external mounts only when the container is frozen (containerd pauses
  // before Checkpoint): nothing can write into them between this look and CRIU's freeze. Not for a pre-dump.
  const emptyTmpfs = input.paused && useFreezer && !plan.preDump ? emptyTmpfsMounts(container) : [];
  const opts = containerDumpOpts({
    plan,
    container,
    imagesDir,
    workDir,
    host: readHostCgroupFacts(),
    maskedFiles: maskedFiles(container),
    maskedDirs: maskedDirs(container),
    emptyTmpfs,
    externalNs: externalNamespaceInodes(container),
    cgroupYard: cgroupYard(pid),
    resolveDest: (dest) => resolveDestInRoot(container.config.rootfs, dest),
    useFreezer,
  });
  // The container's processes (its cgroup's), read once for the two looks below.
  const cgroupDir = state.cgroup_paths.freezer ?? state.cgroup_paths[""];
  const cgroupPids = cgroupDir === undefined ? [] : await listPidsRecursive(cgroupDir);
  const { threadStates, watchedPaths } = await lookAtTree({ pid, cgroupPids, cgroupPaths: state.cgroup_paths, preDump: plan.preDump, log: input.log, label });
  if (watchedPaths.length > 0) opts.irmapPaths = [...(opts.irmapPaths ?? []), ...watchedPaths];
  // cryo hands the container its stdout/stderr FIFOs: they live outside its mounts, so CRIU dumps them as external files.
  const stdioKeys = stdioExternals(stdio);
  if (stdioKeys.length > 0) opts.external = [...new Set([...(opts.external ?? []), ...stdioKeys])];
  opts.logFile = plan.preDump ? "pre-dump.log" : "dump.log";
  // The network namespace is the container's own (CRIU dumps it) unless the spec joins one by path (a pod's, the host's).
  const specNamespaces = ((spec.linux ?? {}) as { namespaces?: { type?: string; path?: string }[] }).namespaces ?? [];
  const ownNetns = specNamespaces.some((n) => n.type === "network" && !n.path);
  // In a namespace CRIU does not dump (the host's, a pod's), it locks each dumped connection in a table named after
  // its run id, which its log gives from level 3 on: an aborted dump finds that table by it (dump-abort.ts).
  if (plan.tcpEstablished && plan.networkLock !== "skip" && !ownNetns && (opts.logLevel ?? 0) < 3) {
    input.log.info(`${label}: CRIU log level ${opts.logLevel ?? 0} raised to 3: an aborted dump finds CRIU's connection lock in a shared network namespace by the run id logged at level 3`);
    opts.logLevel = 3;
  }
  // Lazy pages are a restore-time choice for cryo (pages served from the images on demand): the dump
  // writes every page. Only with a page server is the dump itself lazy (post-copy, CRIU's page server).
  if (!plan.pageServer) delete opts.lazyPages;

  const descriptors = state.external_descriptors.length === 3 ? state.external_descriptors : stdio.map((s) => s.descriptor);
  if (!plan.preDump) {
    try {
      writeFileSync(join(imagesDir, DESCRIPTORS_FILE), JSON.stringify(descriptors), { mode: 0o600 });
    } catch (err) {
      throw CryoError.from(err).wrap(`${label}: write ${DESCRIPTORS_FILE} in ${imagesDir}`);
    }
  }

  // Local pages: CRIU dumps into a new entry of this host's page store; after the dump everything but
  // the page images moves on to the images directory containerd tars.
  const pageEntry = plan.localPages ? createEntry(input.pageStore ?? pageStoreRoot(process.env), `${input.namespace}-${id}`) : undefined;
  if (pageEntry) opts.imagesDir = pageEntry;
  // The plan's timeout aborts CRIU's call as the caller's deadline does (from the call on: what comes before it has
  // deadlines of its own).
  const timeout = plan.timeoutSeconds > 0 ? new AbortController() : undefined;
  // The images directory removed during the dump: containerd removes its own when its request ends, also when its
  // caller went away without a deadline (a killed ctr), which nothing else tells the shim (dir-watch.ts).
  const dirGone = new AbortController();
  const signal = AbortSignal.any([input.signal, timeout?.signal, dirGone.signal].filter((s): s is AbortSignal => s !== undefined));
  // The caller gave up while the dump was being prepared: nothing of CRIU's has run yet.
  if (input.signal?.aborted) {
    if (pageEntry) rmSync(pageEntry, { recursive: true, force: true });
    throw CryoError.from(input.signal.reason);
  }
  const startedAt = new Date();
  input.log.info(`${label}: ${plan.preDump ? "pre-dump" : "dump"} pid ${pid} into ${imagesDir}`, { leaveRunning: plan.leaveRunning, paused: input.paused });
  const t0 = performance.now();
  // What is needed only after the dump (the metadata's schema, CRIU's stats decoder, zstd) loads while CRIU works.
  const afterModules = Promise.all([
    import("../checkpoint/metadata.ts"),
    import("../criu/stats.ts"),
    plan.compression === "zstd" ? import("../checkpoint/compression.ts") : undefined,
    import("../checkpoint/net-devices.ts"),
  ]);
  afterModules.catch(() => {});
  let dumped: DumpResult;
  let serving: PostCopyServing | undefined;
  // Thawed for a ptrace seize (above), frozen again after the dump.
  let refreeze: (() => Promise<void>) | undefined;
  // An abort's freeze before CRIU is killed (the CRIU client's beforeKill). The client waits for it at most
  // BEFORE_KILL_MS (2 s) and then kills CRIU anyway; the freeze, which retries for up to its own timeout, must not go on
  // behind that: it wrote FROZEN again after the undo's thaw, and the thawed container ended up frozen.
  let freezingBeforeKill: Promise<void> | undefined;
  const timer = timeout
    ? setTimeout(
        () => timeout.abort(new CryoError(Code.DEADLINE_EXCEEDED, `${label}: cancelled: its timeout of ${plan.timeoutSeconds} s passed (cryo.checkpoint/timeout, or [checkpoint] timeout in the config)`)),
        plan.timeoutSeconds * 1000,
      )
    : undefined;
  const stopWatch = watchRemoval(imagesDir, () =>
    dirGone.abort(new CryoError(Code.CANCELLED, `${label}: cancelled: its images directory ${imagesDir} was removed during the ${plan.preDump ? "pre-dump" : "dump"} (containerd removes its checkpoint directory when the request ends: its caller went away)`)),
  );
  try {
    if (!useFreezer && input.paused) {
      const cgroup = await openCgroup({ runcCgroupPaths: state.cgroup_paths });
      await cgroup.thaw();
      refreeze = () => cgroup.freeze();
    }
    if (postCopy) {
      // Post-copy: CRIU writes every image but the lazy pages, then serves those from the frozen tree on its
      // page server until the restoring host has them all, and only then kills the tree and returns. The
      // checkpoint is complete (for containerd to tar) at CRIU's status-ready, when the page server listens.
      const abort = new AbortController();
      // The caller's abort counts until the page server listens (the Checkpoint's answer); after it, post-copy.ts owns the dump.
      const callerAbort = () => abort.abort(signal.reason);
      signal.addEventListener("abort", callerAbort, { once: true });
      let ready!: () => void;
      const listening = new Promise<void>((r) => (ready = r));
      const call = input.criu.dump(opts, { signal: abort.signal, ...(input.killNow ? { killNow: input.killNow } : {}), onNotify: (e) => void (e.action === "status-ready" && ready()) });
      call.catch(() => {}); // its owner (post-copy.ts) handles a later failure; an early one is thrown below
      const first = await Promise.race([listening.then(() => undefined), call]).finally(() => signal.removeEventListener("abort", callerAbort));
      if (first !== undefined) throw new CryoError(Code.UNKNOWN, `${label}: criu dump returned before its page server listened`);
      // What CRIU has written so far is the checkpoint; its statistics come only when the pages are all sent.
      const ms = performance.now() - t0;
      dumped = { stats: {}, events: [], callMs: ms, durationMs: ms, warm: false };
      serving = { done: call, abort: (reason) => abort.abort(reason), pageServer: plan.pageServer! };
    } else {
      // No notify events are needed here: CRIU then skips its notify round trips (some in the frozen window).
      // On an abort the tree is frozen before CRIU dies, which releases it (dump-abort.ts).
      const freezeFirst = useFreezer
        ? () => (freezingBeforeKill = (async () => void (await (await openCgroup({ runcCgroupPaths: state.cgroup_paths })).freeze({ timeoutMs: FREEZE_BEFORE_KILL_MS })))())
        : undefined;
      // A dump CRIU finished as the container's own timeout passed is kept: the caller still waits for it, and without
      // leave-running its tasks have already ended.
      const keepFinished = (reason: unknown) => timeout !== undefined && reason === timeout.signal.reason;
      const call = { notify: false, signal, keepFinished, ...(input.killNow ? { killNow: input.killNow } : {}), ...(freezeFirst ? { beforeKill: freezeFirst } : {}) };
      dumped = plan.preDump ? await input.criu.preDump(opts, call) : await input.criu.dump(opts, call);
    }
  } catch (err) {
    if (pageEntry) rmSync(pageEntry, { recursive: true, force: true });
    throw await dumpCallError(err, {
      label,
      input,
      pid,
      state,
      plan,
      logFile: join(workDir, opts.logFile ?? "dump.log"),
      signal,
      ownNetns,
      cgroupDir,
      useFreezer,
      freezingBeforeKill: () => freezingBeforeKill,
      imagesDir,
      imagesDirGone: stopWatch.gone,
    });
  } finally {
    clearTimeout(timer);
    stopWatch();
    // Paused before the call, paused after it (CRIU released the tasks it seized; containerd resumes them).
    await refreeze?.().catch((err: unknown) => input.log.warn(`${label}: freeze again after the dump: ${err instanceof Error ? err.message : String(err)}`));
  }
  let localPages: CheckpointMetadata["localPages"];
  if (pageEntry) {
    try {
      localPages = finishEntry(pageEntry, imagesDir, input.containerdAddress);
    } catch (err) {
      rmSync(pageEntry, { recursive: true, force: true });
      throw CryoError.from(err).wrap(`${label}: images of page store entry ${pageEntry} into ${imagesDir}`);
    }
    input.log.info(`${label}: page images kept in the page store`, { dir: localPages.dir, files: localPages.files.length, bytes: localPages.files.reduce((s, f) => s + f.bytes, 0) });
  }
  try {
    const finishedAt = new Date();
    const tCriu = performance.now();
    const [{ METADATA_VERSION, writeCheckpointMetadata }, { readStats }, compression, { loopbackUpIndex }] = await afterModules;
    // A warm helper learnt CRIU's version while it waited; otherwise ask (once per shim: the caller caches it).
    const version = dumped.criuVersion !== undefined ? Promise.resolve(dumped.criuVersion) : input.criuVersion();
    version.catch(() => {});

    // containerd tars only the images directory: bring CRIU's log and statistics into it.
    if (workDir !== imagesDir) {
      for (const f of [opts.logFile ?? "dump.log", plan.preDump ? "stats-pre-dump" : "stats-dump"]) copyRegularFile(join(workDir, f), join(imagesDir, f));
      // A post-copy dump's CRIU still works there (its log, then its statistics): the work dir goes when it is done.
      if (ownWork && serving) {
        const s = serving;
        s.done = s.done.finally(() => rmSync(workDir, { recursive: true, force: true }));
        s.done.catch(() => {});
      } else if (ownWork) rmSync(workDir, { recursive: true, force: true });
    }
    if (plan.preDump) return { plan, imagesDir, leftRunning: true, metadata: undefined };
    // containerd 2.1+'s CRI CheckpointContainer takes CRIU's statistics and log from its own directory for the
    // container (2.3.2+: from the ctrd-checkpoint directory it made there), where runc's CRIU writes them
    // (cri-container-dir.ts).
    const criDir = criContainerDir(spec, id);
    if (criDir !== undefined) {
      const filesDir = criCheckpointFilesDir(criDir);
      for (const f of ["dump.log", "stats-dump"]) {
        try {
          if (existsSync(join(imagesDir, f))) copyInto(join(imagesDir, f), filesDir, f);
        } catch (err) {
          input.log.warn(`${label}: ${f} into CRI's directory ${filesDir}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
    // Network images that restore nothing go: each would cost the restore an ip/iptables process (net-images.ts).
    try {
      const pruned = pruneNoopNetImages(imagesDir, loopbackUpIndex);
      if (pruned.length > 0) input.log.debug(`${label}: network images that restore nothing removed`, { files: pruned });
    } catch (err) {
      input.log.warn(`${label}: network images left as CRIU wrote them: ${err instanceof Error ? err.message : String(err)}`);
    }

    let compressed: CheckpointMetadata["compressed"] = false;
    if (plan.compression === "zstd") {
      const c = await compression!.compressImages(imagesDir, { level: plan.compressionLevel });
      const plain = c.files.filter((f) => f.leftPlain === true);
      const packed = c.files.filter((f) => f.leftPlain !== true);
      // Images whose sample did not compress stay plain: zstd would only have cost time (compression.ts).
      input.log.info(`${label}: page images ${packed.length > 0 ? "compressed" : "left plain: they do not compress"}`, {
        files: packed.length,
        bytes: c.bytes,
        compressedBytes: c.compressedBytes,
        ms: Math.round(c.durationMs),
        ...(plain.length > 0 ? { leftPlain: plain.map((f) => `${f.name} (sample saved ${((f.sampleSaving ?? 0) * 100).toFixed(1)}%)`) } : {}),
      });
      if (packed.length > 0) compressed = { algorithm: "zstd", level: c.level };
    }

    const stats = dumped.stats.dump ? dumped.stats : await readStats(imagesDir).catch(() => ({ dump: undefined }));
    const linux = (spec.linux ?? {}) as { cgroupsPath?: string };
    const metadata: CheckpointMetadata = {
      version: METADATA_VERSION,
      containerId: id,
      namespace: input.namespace,
      imagesDir: ".",
      parent: plan.parentPath,
      pid,
      runcState: rawState,
      spec,
      stdio: { descriptors, terminal: false, criuKeys: stdio.map((s) => s.criuKey) },
      cgroups: { version: state.cgroup_paths.freezer !== undefined || state.cgroup_paths.memory !== undefined ? 1 : 2, paths: state.cgroup_paths, cgroupsPath: linux.cgroupsPath },
      host: { hostname: hostname(), kernel: release(), arch: process.arch, criuVersion: await version, cryoVersion: input.cryoVersion },
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      options: plan,
      stats: stats.dump ? { dump: stats.dump } : {},
      compressed,
      paused: input.paused,
    };
    const recordedImage = imageRead ? await imageRead : null;
    if (recordedImage) metadata.image = { ...recordedImage, labels: { ...recordedImage.labels } };
    if (metadata.parent === undefined) delete metadata.parent;
    if (metadata.cgroups.cgroupsPath === undefined) delete metadata.cgroups.cgroupsPath;
    const terminal = ((spec.process ?? {}) as { terminal?: boolean }).terminal === true;
    metadata.stdio.terminal = terminal;
    if (localPages) metadata.localPages = localPages;
    if (emptyTmpfs.length > 0) metadata.emptyTmpfs = emptyTmpfs.map((t) => ({ ...t }));
    if (threadStates.length > 0) metadata.threads = threadStates;
    // What the restore checks the checkpoint against: every image as it is now, pruned and compressed.
    metadata.images = listImages(imagesDir);
    await writeCheckpointMetadata(imagesDir, metadata);
    const d = stats.dump;
    input.log.debug(`${label}: timings`, {
      prepareMs: Math.round(t0 - prepStart),
      criuCallMs: Math.round(dumped.callMs),
      helperMs: Math.round(dumped.durationMs),
      warmHelper: dumped.warm,
      afterMs: Math.round(performance.now() - tCriu),
      freezingUs: d?.freezingTimeUs,
      frozenUs: d?.frozenTimeUs,
      memdumpUs: d?.memdumpTimeUs,
      memwriteUs: d?.memwriteTimeUs,
    });
    return { plan, imagesDir, leftRunning: plan.leaveRunning, metadata, ...(serving ? { serving } : {}) };
  } catch (err) {
    // The checkpoint failed after the dump: its page store entry goes too, and a post-copy dump stops serving.
    if (localPages) rmSync(localPages.dir, { recursive: true, force: true });
    serving?.abort(err);
    // The log, metadata or compressed images written into a full or read-only images directory: named, in words.
    throw fsError(label, err, imagesDir);
  } finally {
    // containerd removes its directory when its request ends, also when its caller went away while this part ran
    // (the watch above ends with CRIU's call); what was written here after its listing would keep the directory.
    // Only containerd's own directory: a caller of the task API may move the images out of its own at once.
    if (!plan.preDump && !serving && CONTAINERD_CHECKPOINT_NAME.test(basename(imagesDir)))
      sweepEmptied(imagesDir, (when) => {
        // Nobody has this checkpoint: its pages in the store would be referenced by nothing.
        if (localPages) rmSync(localPages.dir, { recursive: true, force: true });
        input.log.warn(`${label}: its images directory ${imagesDir} was emptied by another (containerd: its caller went away) while the checkpoint was being completed; removed what was left ${when === "late" ? "after the checkpoint's end" : "at its end"}${localPages ? `, and its page store entry ${localPages.dir}` : ""}`);
      });
  }
}
