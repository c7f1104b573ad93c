/**
 * The calling side of CRIU: `createCriu()` runs each libcriu call in a helper process and returns
 * promises, so the shim's event loop keeps serving other requests while CRIU works.
 *
 * One helper per call. Notify events arrive in order on the helper's stdout and are handed to
 * `onNotify`; for actions listed in `waitFor`, CRIU stays blocked until `onNotify` settles (a throw
 * makes CRIU abort, and the thrown error becomes the call's error). Lazy pages run the criu binary's
 * `lazy-pages` mode directly: CRIU's RPC has no request for it.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Code, CryoError } from "../errors.ts";
import { criuOptsSchema, type CriuOpts } from "./options.ts";
import type { HelperRequest, NotifyAction, ResultMessage } from "./protocol.ts";
import { helperCommand, killHelper, prejoinCriuHelper, prewarmCriuHelper, releaseJoinedCriuHelper, spawnHelper, takeJoinedCriuHelper, takeWarmCriuHelper, WARM_IDLE_MS, type HelperProcess } from "./warm.ts";
import { criuBinary, criuStopsDumpsOnSigterm } from "./binary.ts";
import { killsAtOnce } from "./abort-reason.ts";
import { checkHelperMessage } from "./wire.ts";
import { criuLogLastLine, readCriuLogErrors } from "./log.ts";
import type { CriuStats } from "./stats.ts";
import { childrenOf, close, innermostPid, isAlive, killTree, processEnd, processTree, readProcStat, takeFdFromProcess, tracerPidOf, wchanOf, zombieEnd } from "../sys/index.ts";

/** A notify event CRIU sent during a call. */
export interface NotifyEvent {
  action: string;
  /** Root task pid CRIU reported (0 when the action has none). */
  pid: number;
  /** True when CRIU waits for onNotify to settle. */
  wait: boolean;
  /** orphan-pts-master: the master's fd inside the helper. */
  fd?: number;
  /** orphan-pts-master on a restore: the master, already copied into this process (RestoreResult.ptsMaster owns it). */
  ptsMaster?: number;
  helperPid: number;
}

/** Per-call options. */
export interface CriuCallOptions {
  signal?: AbortSignal;
  /**
   * Once `signal` has aborted, this one's abort kills CRIU at once, without waiting out the rest of the grace a stop
   * request gives it (a Kill with SIGKILL that comes after the caller's deadline aborted the dump: the tasks die anyway).
   */
  killNow?: AbortSignal;
  /** Called for every notify event, in order. */
  onNotify?: (event: NotifyEvent) => void | Promise<void>;
  /**
   * On an abort, run before the helper and CRIU are killed (at most BEFORE_KILL_MS): a dump freezes the container's
   * cgroup here, so that its tasks, released by CRIU's death, do not run before what CRIU left is undone.
   */
  beforeKill?: () => Promise<void>;
  /** Actions for which CRIU blocks until onNotify settles (e.g. "setup-namespaces", "network-lock"). */
  waitFor?: NotifyAction[];
  /**
   * false: CRIU sends no notify events (the result's events are empty): it then makes none of its notify
   * round trips to the helper, several of which fall inside a dump's frozen window. Default true.
   */
  notify?: boolean;
  /**
   * An aborted dump or pre-dump whose CRIU, asked to stop, answered that it had already finished: true makes the call
   * succeed with that result instead of failing (CriuStoppedError with finished). For an abort whose caller still waits
   * for the checkpoint (the container's own timeout), given the reason the signal aborted with.
   */
  keepFinished?: (reason: unknown) => boolean;
  /** Descriptors of the caller handed to CRIU as `--inherit-fd fd[N]:key` (N is renumbered for the helper). */
  inheritFds?: { fd: number; key: string }[];
  /**
   * Dump/pre-dump/restore: a directory (usually the images dir, when the work dir is elsewhere) into
   * which the helper copies CRIU's log and stats-<op> after the call, whether it succeeded or not.
   * The copy runs in the helper process, off the caller's event loop.
   */
  copyLogsTo?: string;
}

/** Restore call options. */
export interface CriuRestoreCallOptions extends CriuCallOptions {
  /** Restore as the helper's child (rst_sibling, default) so the tree reparents to the caller's subreaper. */
  restoreChild?: boolean;
  /** Cgroup directories the helper (hence criu and the restored tree) joins first; see HelperRequest.joinCgroups. */
  joinCgroups?: string[];
  /**
   * The pids, as the checkpoint recorded them, of the tasks that are alive in it (pstree.img, zombies left out). With
   * restoreChild, the call also fails when one of them dies before CRIU answers while CRIU sleeps in one of its
   * waits for the tree: CRIU does not notice such a death once the dead task's parent has its own SIGCHLD action
   * back (or once CRIU ignores SIGCHLD itself) and would wait for ever. See runHelper's watchdog.
   */
  liveTasks?: readonly number[];
}

/** What a dump or pre-dump produced. */
export interface DumpResult {
  stats: CriuStats;
  logFile?: string;
  events: NotifyEvent[];
  /** Wall time of the helper's whole call, measured by the helper (from the request's arrival). */
  durationMs: number;
  /** Wall time from the call to its result, as the caller saw it (helper start included when cold). */
  callMs: number;
  /** True when a warm (pre-started) helper ran the call. */
  warm: boolean;
  /** CRIU's version (libcriu's number): dumps and pre-dumps report it (asked by the first one's helper, then known). */
  criuVersion?: number;
}

/** What a restore produced. */
export interface RestoreResult extends DumpResult {
  /** Pid of the restored root task, as seen from the caller's pid namespace. */
  pid: number;
  /**
   * With `orphanPtsMaster` (a terminal container): the pty master CRIU made for the restored tree's
   * terminal, copied out of the helper with pidfd_getfd (close-on-exec set). The caller owns it
   * (hand it to the console, close it when done). Absent when CRIU sent none.
   */
  ptsMaster?: number;
}

/** Kernel/CRIU features as libcriu's feature check reports them. */
export interface CriuFeatures {
  memTrack: boolean;
  lazyPages: boolean;
  pidfdStore: boolean;
}

/** Options of a lazy-pages daemon (`criu lazy-pages`). */
export interface LazyPagesOptions {
  imagesDir: string;
  /** Must be the restore's work dir: the daemon's socket lives there. */
  workDir?: string;
  logLevel?: number;
  /** A page server to fetch pages from instead of the images directory. */
  pageServer?: { address: string; port: number };
  signal?: AbortSignal;
}

/** How a lazy-pages daemon finished: every page was handed to the restored tree. */
export interface LazyPagesSummary {
  /** From the daemon's readiness to its exit. */
  durationMs: number;
  /** Pages the daemon copied in, and the total it had to, summed over tasks (from its log at level 4; absent below). */
  transferredPages?: number;
  totalPages?: number;
}

/** A running lazy-pages daemon; it exits by itself once every page is restored. */
export interface LazyPagesServer extends AsyncDisposable {
  pid: number;
  logFile: string;
  /** Resolves with the daemon's exit code. */
  exited: Promise<number>;
  /** The exit code once the daemon has exited (null while it serves pages). */
  readonly exitCode: number | null;
  /**
   * Resolves once the daemon exited 0 ("all pages back"); rejects with a CryoError carrying the
   * log's error lines when it failed or was killed. Safe to leave unawaited.
   */
  done: Promise<LazyPagesSummary>;
}

/** A lazy restore's result: the tree runs (its pid), while its memory still streams in. */
export interface LazyRestoreResult extends RestoreResult, AsyncDisposable {
  /** The daemon serving the pages; `lazyPages.done` is "all pages back". */
  lazyPages: LazyPagesServer;
}

/** Options of a lazy restore call. */
export interface CriuLazyRestoreCallOptions extends CriuRestoreCallOptions {
  /** The daemon's log level (default 4: the per-task transfer summary is logged at 4 only). */
  lazyLogLevel?: number;
}

/** The CRIU operations cryo uses. */
export interface Criu {
  dump(opts: CriuOpts, call?: CriuCallOptions): Promise<DumpResult>;
  preDump(opts: CriuOpts, call?: CriuCallOptions): Promise<DumpResult>;
  restore(opts: CriuOpts, call?: CriuRestoreCallOptions): Promise<RestoreResult>;
  /**
   * Restore with lazy pages: starts the lazy-pages daemon on the images (and waits for its readiness
   * on the status fd, as CRIU requires it to listen before the restore connects), then restores with
   * `lazy-pages`; resolves as soon as the tree runs. Await `result.lazyPages.done` for "all pages
   * back"; dispose the result (or the daemon) to kill a daemon still running. A failed restore kills
   * the daemon before rejecting. opts.pageServer makes the daemon fetch pages from a page server.
   */
  restoreLazy(opts: CriuOpts, call?: CriuLazyRestoreCallOptions): Promise<LazyRestoreResult>;
  lazyPages(opts: LazyPagesOptions): Promise<LazyPagesServer>;
  /**
   * With `warm`: starts a helper now (if none is waiting) so that the next dump/pre-dump/restore skips
   * the helper's start (~70-300 ms here, most of it loading modules). It waits on its stdin, is used for one call, and is killed
   * after `warmIdleMs` unused. Without `warm`: does nothing.
   */
  prewarm(): void;
  /**
   * With `warm`: takes the waiting helper now and has it join these cgroup directories (a restore's
   * joinCgroups), so that the cgroup moves overlap the caller's remaining work; the next restore with the same
   * joinCgroups uses that helper. Without a waiting helper: does nothing (the restore's helper joins then).
   */
  prejoin?(dirs: string[]): void;
  /** Kills a helper that prejoin took for these dirs and no restore used (it sits in the cgroups: they could not be removed). */
  releaseJoin?(dirs: string[]): void;
  check(): Promise<void>;
  version(): Promise<number>;
  features(): Promise<CriuFeatures>;
}

/** How to start the helper and CRIU. */
export interface CriuConfig {
  /** argv of the helper; default: see helperCommand(). */
  helper?: string[];
  /**
   * The criu binary for lazy-pages and for libcriu's swrk. Default: chosen at each call by criuBinary()
   * (src/criu/binary.ts): cryo's own build, whose kernel-facts cache works where /run is no tmpfs, else "criu".
   */
  criuBinary?: string;
  /**
   * Keep one helper started ahead of the calls: after every dump/pre-dump/restore (and on prewarm())
   * a new helper is started, waiting for the next call (modules and libcriu loaded), and
   * killed after warmIdleMs without a call. A helper that died while waiting is replaced by a cold
   * start. Default false: one helper started per call.
   */
  warm?: boolean;
  /** How long a warm helper waits for a call before it is killed (default 60 s). */
  warmIdleMs?: number;
}


/** How long after a call its successor warm helper is started. */
const REWARM_DELAY_MS = 2_000;

/** Creates the CRIU client. */
export function createCriu(config: CriuConfig = {}): Criu {
  const helper = config.helper ?? helperCommand();
  const binary = () => config.criuBinary ?? criuBinary();
  const withBinary = (opts: CriuOpts): CriuOpts => {
    if (opts.serviceBinary) return opts;
    const b = binary();
    return b === "criu" ? opts : { ...opts, serviceBinary: b };
  };

  let knownVersion: number | undefined;
  // The warm helper lives in warm.ts (one per process, so that it can be started before this module loads).
  const idleMs = config.warmIdleMs ?? WARM_IDLE_MS;
  const prewarm = () => {
    if (config.warm) prewarmCriuHelper(helper, idleMs);
  };
  const takeWarm = (): HelperProcess | undefined => (config.warm ? takeWarmCriuHelper(helper) : undefined);
  // Warm helpers told to join a restore's cgroups ahead of its request (prejoin): in warm.ts too.
  const releaseJoin = (dirs: string[]) => releaseJoinedCriuHelper(helper, dirs);

  async function imagesCall(op: "dump" | "pre-dump" | "restore", opts: CriuOpts, call: CriuRestoreCallOptions = {}) {
    const t0 = performance.now();
    const inherit = call.inheritFds ?? [];
    // The options are where callers' data enters src/criu: validated with zod here, before any helper is
    // taken or sees them (the helper re-checks the request line by hand only; wire.ts).
    const checked = criuOptsSchema.safeParse({ ...withBinary(opts), inheritFds: [...(opts.inheritFds ?? []), ...inherit] });
    if (!checked.success) throw new CryoError(Code.INVALID_ARGUMENT, `criu ${op}: options: invalid argument: ${checked.error.message}`);
    const waitFor = op === "restore" && opts.orphanPtsMaster ? [...new Set([...(call.waitFor ?? []), "orphan-pts-master" as const])] : call.waitFor;
    if (call.notify === false && (call.onNotify || waitFor?.length)) {
      throw new CryoError(Code.INVALID_ARGUMENT, `criu ${op}: notify=false with onNotify or waitFor: invalid argument`);
    }
    const own = opts.inheritFds?.length ?? 0;
    let warmProc: HelperProcess | undefined;
    const prejoined = op === "restore" && call.joinCgroups ? takeJoinedCriuHelper(helper, call.joinCgroups) : undefined;
    warmProc = prejoined ?? takeWarm();
    const req: HelperRequest = {
      op,
      // A cold helper gets the call's descriptors as its fds 3, 4, ...; a warm one copies them from this process.
      opts: { ...checked.data, inheritFds: checked.data.inheritFds?.map((f, i) => (i < own || warmProc ? f : { fd: 3 + i - own, key: f.key })) },
      waitFor,
      restoreChild: op === "restore" ? call.restoreChild : undefined,
      joinCgroups: op === "restore" ? call.joinCgroups : undefined,
      copyLogsTo: call.copyLogsTo,
      inheritFrom: warmProc && inherit.length > 0 ? process.pid : undefined,
      // Dumps record CRIU's version: the helper asks once, then this client knows it.
      reportVersion: op !== "restore" && knownVersion === undefined ? true : undefined,
    };
    if (req.reportVersion === undefined) delete req.reportVersion;
    if (call.notify === false) req.notify = false;
    if (req.copyLogsTo === undefined) delete req.copyLogsTo;
    if (req.inheritFrom === undefined) delete req.inheritFrom;
    if (req.opts?.inheritFds?.length === 0) delete req.opts.inheritFds;
    // CRIU writes stats-<op> into its working directory (the work dir), not the images dir. They are read
    // as soon as the result line arrives (CRIU has written them by then), beside the helper's exit.
    // The decoder (CRIU's stats protobufs, 11-15 ms to load in a fresh compiled binary) loads while CRIU works.
    const statsModule = import("./stats.ts");
    statsModule.catch(() => {});
    let statsRead: Promise<CriuStats> | undefined;
    const readAllStats = () => (statsRead ??= statsModule.then((m) => m.readStats(opts.workDir ?? opts.imagesDir)).catch((): CriuStats => ({})));
    // A dump or pre-dump by a CRIU that stops at a safe point on SIGTERM (cryo's build) is aborted that way first; a
    // post-copy dump only until its page server listens (CRIU's status-ready): past that it never looks again.
    // Why CRIU is killed at once rather than asked to stop (undefined: it is asked).
    const noStop =
      op === "restore"
        ? "a restore is not asked to stop"
        : criuStopsDumpsOnSigterm(checked.data.serviceBinary ?? "criu")
          ? undefined
          : "this CRIU cannot be asked to stop (no patch 0007)";
    const lazyDump = op !== "restore" && checked.data.lazyPages === true;
    let outcome;
    try {
      const liveTasks = op === "restore" && call.restoreChild !== false ? call.liveTasks : undefined;
      outcome = await runHelper(
        warmProc ?? helper,
        req,
        call,
        warmProc ? [] : inherit.map((f) => f.fd),
        op === "restore" && opts.orphanPtsMaster === true,
        (r) => {
          if (r.ok) void readAllStats();
        },
        liveTasks,
        { noStop, lazyDump },
      );
    } finally {
      // The next call's helper starts a little later, not while the caller finishes this call's work.
      if (config.warm) setTimeout(prewarm, REWARM_DELAY_MS).unref();
    }
    const { result, events } = outcome;
    const all = await readAllStats();
    const stats: CriuStats = op === "restore" ? { restore: all.restore } : { dump: all.dump };
    knownVersion ??= result.criuVersion;
    const extra = { callMs: performance.now() - t0, warm: warmProc !== undefined, ...(knownVersion !== undefined ? { criuVersion: knownVersion } : {}) };
    return { result, events, stats, extra };
  }

  const api: Criu = {
    async dump(opts, call) {
      const { result, events, stats, extra } = await imagesCall("dump", opts, call);
      return { stats, logFile: result.logFile, events, durationMs: result.durationMs, ...extra };
    },
    async preDump(opts, call) {
      const { result, events, stats, extra } = await imagesCall("pre-dump", opts, call);
      return { stats, logFile: result.logFile, events, durationMs: result.durationMs, ...extra };
    },
    prewarm,
    prejoin(dirs) {
      if (config.warm) prejoinCriuHelper(helper, dirs);
    },
    releaseJoin,
    async restore(opts, call) {
      const { result, events, stats, extra } = await imagesCall("restore", opts, call);
      const restored: RestoreResult = { pid: result.rc, stats, logFile: result.logFile, events, durationMs: result.durationMs, ...extra };
      const ptsMaster = events.findLast((e) => e.ptsMaster !== undefined)?.ptsMaster;
      if (ptsMaster !== undefined) restored.ptsMaster = ptsMaster;
      return restored;
    },
    async check() {
      await runHelper(helper, { op: "check", opts: withBinary({ imagesDir: "/" }) }, {}, []);
    },
    async version() {
      if (knownVersion !== undefined) return knownVersion;
      const { result } = await runHelper(helper, { op: "version", opts: withBinary({ imagesDir: "/" }) }, {}, []);
      knownVersion = result.rc;
      return result.rc;
    },
    async features() {
      const { result } = await runHelper(helper, { op: "features", opts: withBinary({ imagesDir: "/" }) }, {}, []);
      if (!result.features) throw new CryoError(Code.UNKNOWN, "criu feature check: unknown: no features in the result");
      return result.features;
    },
    async restoreLazy(opts, call = {}) {
      const daemon = await startLazyPages(binary(), {
        imagesDir: opts.imagesDir,
        workDir: opts.workDir,
        logLevel: call.lazyLogLevel ?? 4,
        pageServer: opts.pageServer,
        signal: call.signal,
      });
      let restored: RestoreResult;
      try {
        const { pageServer: _daemonOnly, ...restoreOpts } = opts;
        restored = await api.restore({ ...restoreOpts, lazyPages: true }, call);
      } catch (err) {
        await daemon[Symbol.asyncDispose]();
        throw err;
      }
      return { ...restored, lazyPages: daemon, [Symbol.asyncDispose]: () => daemon[Symbol.asyncDispose]() };
    },
    lazyPages: (opts) => startLazyPages(binary(), opts),
  };
  return api;
}


/**
 * Runs one helper process to completion (cmd: start one now; or a warm helper already waiting);
 * resolves with its result or rejects with a classified error.
 */
async function runHelper(
  cmd: string[] | HelperProcess,
  req: HelperRequest,
  call: CriuCallOptions,
  extraFds: number[],
  takePtsMaster = false,
  onResult?: (result: ResultMessage) => void,
  liveTasks?: readonly number[],
  // How an abort ends CRIU: asked to stop unless noStop says why not (then killed at once); lazyDump: a post-copy dump,
  // asked only until its page server listens.
  stopRequest: { noStop: string | undefined; lazyDump: boolean } = { noStop: "it cannot be asked to stop", lazyDump: false },
): Promise<{ result: ResultMessage; events: NotifyEvent[] }> {
  const what = describe(req);
  let { noStop } = stopRequest;
  const { lazyDump } = stopRequest;
  if (call.signal?.aborted && !Array.isArray(cmd)) cmd.kill("SIGKILL");
  call.signal?.throwIfAborted();
  const proc = Array.isArray(cmd) ? spawnHelper(cmd, extraFds) : cmd;
  const stderr = new Response(proc.stderr).text();
  // The helper's output is read until it ends, or STDOUT_GRACE_MS after the helper exited (see talk()): a process
  // CRIU left behind may hold the pipes open.
  const outputGone = proc.exited.then(() => Bun.sleep(STDOUT_GRACE_MS));
  const stderrText = () => Promise.race([stderr, outputGone.then(() => "")]);
  const events: NotifyEvent[] = [];
  let callbackError: unknown;
  let result: ResultMessage | undefined;
  // An abort kills the helper and CRIU, and the call fails once they are gone, or after ABORT_WAIT_MS when they
  // are not (a process in a frozen cgroup, or in an uninterruptible sleep, dies only later): the call's own end
  // then releases what it would have returned.
  let cancel: ((err: unknown) => void) | undefined;
  const cancelled = new Promise<never>((_, reject) => (cancel = reject));
  cancelled.catch(() => {});
  // What the helper's stdout is (its pipe or socket), read while it lives: CRIU and every process CRIU forks inherit
  // it, which is how processes CRIU left behind are found once it is gone (see killCriuLeftovers).
  const out = fdTarget(proc.pid, 1);
  const helperOut = out !== undefined && /^(pipe|socket):\[\d+\]$/.test(out) ? out : undefined;
  const stopHelper = () => {
    killHelper(proc.pid);
    if (helperOut !== undefined) killCriuLeftovers(helperOut);
  };
  // What the caller does before CRIU is killed (the tree frozen), for BEFORE_KILL_MS at most.
  const beforeKill = (): Promise<unknown> => (call.beforeKill ? Promise.race([call.beforeKill().catch(() => {}), Bun.sleep(BEFORE_KILL_MS)]) : Promise.resolve());
  let killing = false;
  // Why an abort killed CRIU (the first reason given), for the caller's error (CriuKilledError).
  let killedBecause = "";
  const killAbort = (why: string) => {
    if (killing) return;
    killing = true;
    killedBecause = why;
    void beforeKill().then(() => {
      stopHelper();
      void Promise.race([proc.exited, Bun.sleep(ABORT_WAIT_MS)]).then(() => cancel?.(new CriuKilledError(`${what}: context canceled`, { cause: call.signal?.reason }, why)));
    });
  };
  // A CRIU killed while it runs a syscall inside a task through ptrace (compel's infection and cure) leaves the task
  // with the injected code and CRIU's registers: it dies of SIGTRAP once it runs (seen here, 2 times in 3, and every
  // time with CRIU held at that point). cryo's CRIU (patch 0007) takes SIGTERM during a dump as a request to stop at its
  // next safe point and undo the dump itself: it is asked that way first, and killed only when it has not answered
  // after ABORT_GRACE_MS (hung in a write, stopped). Before the helper calls libcriu (its calling mark) the helper is
  // killed at once: nothing has been seized. So is CRIU for an abort whose tasks are being killed (killCriuAtOnce).
  let askedToStop = false;
  // The helper's mark that libcriu's call (which starts CRIU) comes next.
  let criuCalled = false;
  // A pre-dump runs in a child CRIU's service forks for it (cr-service.c's pre_dump_using_req) while the service waits:
  // only that child sets up the stop request's handler, and the service itself dies of SIGTERM (its child then worked
  // on, to be killed by the watchdog in the middle of an infection: the task died of SIGTRAP). Until that child exists
  // nothing has been seized.
  const criuChild = (pid: number) => childrenOf(pid).find((kid) => readProcStat(kid)?.comm === "criu");
  // CRIU had answered before the abort came (the helper is on its way out, having copied CRIU's log), or its answer is
  // waited for because no CRIU was there after the calling mark (below): nothing is left to stop or kill, and the answer
  // counts as CRIU's own end of the call.
  let awaitingAnswer = false;
  const askToStop = (): boolean => {
    const service = criuChild(proc.pid);
    const criu = service !== undefined && req.op === "pre-dump" ? criuChild(service) : service;
    if (criu === undefined) return false;
    askedToStop = true;
    signalProcess(criu, "SIGTERM");
    const grace = setTimeout(() => killAbort(`asked to stop, it had not ended ${ABORT_GRACE_MS / 1000} s later`), ABORT_GRACE_MS);
    void proc.exited.then(() => clearTimeout(grace));
    return true;
  };
  const onAbort = () => {
    if (noStop !== undefined) return killAbort(noStop);
    if (killsAtOnce(call.signal?.reason)) return killAbort("its tasks are being killed");
    if (result !== undefined) {
      awaitingAnswer = true;
      return;
    }
    if (askToStop()) return;
    // No CRIU. Before the helper's calling mark, libcriu has not been called: nothing is seized, the helper goes. After
    // it, CRIU is about to be forked or has ended and its answer is on its way (an abort that came in the milliseconds
    // between CRIU's exit and the helper's answer killed the helper and lost the answer, a finished dump too): it is
    // looked for every 5 ms, asked to stop when it comes, and the helper is killed if neither happens in ABORT_GRACE_MS.
    if (!criuCalled) return killAbort("before it started");
    awaitingAnswer = true;
    const until = performance.now() + ABORT_GRACE_MS;
    const look = setInterval(() => {
      if (result !== undefined) return clearInterval(look);
      if (askToStop()) return clearInterval(look);
      if (performance.now() < until) return;
      clearInterval(look);
      killAbort(`neither CRIU nor its answer came within ${ABORT_GRACE_MS / 1000} s`);
    }, 5);
    void proc.exited.then(() => clearInterval(look));
  };
  call.signal?.addEventListener("abort", onAbort, { once: true });
  // An abort already under way (CRIU asked to stop, or its answer awaited) turned into a kill: CRIU goes now. Before the
  // first abort it does nothing; an answer already in counts as CRIU's end, as for onAbort.
  const onKillNow = () => {
    if (call.signal?.aborted && result === undefined) killAbort("asked to stop, then its tasks were killed");
  };
  call.killNow?.addEventListener("abort", onKillNow, { once: true });
  // CRIU itself (the helper's `criu swrk` child) dead while the helper still waits for its answer: CRIU's own
  // children hold the other end of its socket, so the helper would wait for ever (seen here: CRIU killed at the
  // start of a restore, the restore hung). The helper is killed, and the call fails naming CRIU's end.
  // libcriu reaps CRIU right after a normal end, so only a zombie seen on two looks in a row counts.
  // A restore's tree (restoreChild: CRIU's rst_sibling) is the helper's other child, which CRIU ptraces from its fork on:
  // that tells them apart (the root gets its recorded pid, and may start in CRIU's clock tick: neither pid nor start
  // time orders them). Until then, CRIU is taken for the first child started.
  //
  // A restore's tree losing a task (liveTasks: one alive in the checkpoint; killed from outside, or by the OOM killer)
  // while CRIU sleeps waiting for the tree: CRIU learns of a task's death only through SIGCHLD, its own handler's in
  // itself (for the root, which it ptraces) and in the tasks still running its code. Once the dead task's parent has its
  // own SIGCHLD action back with every signal blocked (the restorer's CR_STATE_RESTORE_SIGCHLD stage) and CRIU has set
  // its own to SIG_DFL (ignore_kids), the task never ends its stage and CRIU waits on the stage's futex for ever; a dead
  // root (a pid namespace's init) waits in exit() for zombies CRIU ptraces, while CRIU waits on a futex or, having
  // noticed and killed the root itself, in waitpid() for that root (both seen here: SIGKILL to a task late in a
  // restore). Seen on two looks in a row, the tree and the helper are killed and the call fails naming the task. A CRIU sleeping
  // elsewhere (on the socket, in a notify round trip) is left alone, and after CRIU resumed the tree it sleeps in
  // neither: a task of the resumed tree that exits then, CRIU's answer on its way, is not taken for one.
  const live = liveTasks ? new Set(liveTasks) : undefined;
  let criuEnd: string | undefined;
  let zombieSeen: number | undefined;
  let criuSeen: number | undefined;
  let deadSeen: number | undefined;
  let criuPid: number | undefined;
  const watchdog = setInterval(() => {
    const kids = childrenOf(proc.pid)
      .map((pid) => readProcStat(pid))
      .filter((st) => st !== undefined)
      .sort((a, b) => (a.startTime < b.startTime ? -1 : a.startTime > b.startTime ? 1 : a.pid - b.pid));
    if (kids.length > 1) {
      const tracers = new Set(kids.map((k) => tracerPidOf(k.pid)));
      criuPid = kids.find((k) => tracers.has(k.pid))?.pid ?? criuPid;
    }
    const criu = criuPid === undefined ? kids[0] : kids.find((k) => k.pid === criuPid);
    if (criu === undefined) return;
    if (criu.comm === "criu") criuSeen = criu.pid;
    // Any child named criu that is a zombie: CRIU, or the tree's root while it still runs CRIU's code. The
    // identification above may not hold yet when CRIU is killed at the start of a restore (before it ptraces the
    // root, which may start in its clock tick with a lower pid after a pid wrap): seen, the restore then hung.
    for (const k of kids) {
      if (k.comm !== "criu") continue;
      const end = zombieEnd(k.pid);
      if (end === undefined) continue;
      if (zombieSeen === k.pid) return fail(`CRIU (pid ${k.pid}) ${end} before it answered`);
      zombieSeen = k.pid;
      return;
    }
    if (!live || !/futex|^do_wait$/.test(wchanOf(criu.pid) ?? "")) {
      deadSeen = undefined;
      return;
    }
    for (const root of kids.filter((k) => k !== criu)) {
      for (const pid of processTree(root.pid)) {
        const end = processEnd(pid);
        if (end === undefined) continue;
        const vpid = innermostPid(pid);
        if (vpid === undefined || !live.has(vpid)) continue;
        if (deadSeen !== pid) {
          deadSeen = pid;
          return;
        }
        killTree(root.pid); // the whole tree: without a pid namespace of its own, killing its root leaves the rest
        const opts = req.opts;
        const errors = opts ? readCriuLogErrors(join(opts.workDir ?? opts.imagesDir, opts.logFile ?? `${req.op}.log`)) : [];
        const said = errors.length > 0 ? `; CRIU's log: ${errors.slice(-3).join("; ")}` : "";
        return fail(`task ${vpid} (pid ${pid}) of the tree being restored ${end} before CRIU answered, and CRIU waited for the tree for ever${said}`);
      }
    }
    deadSeen = undefined;
  }, CRIU_WATCH_MS);
  function fail(end: string): void {
    criuEnd = end;
    clearInterval(watchdog);
    stopHelper();
  }
  void proc.exited.then(() => clearInterval(watchdog));
  const body = talk();
  if (!call.signal) return await body;
  body.catch(() => {}); // after an abort it fails on its own (CANCELLED), unobserved
  try {
    return await Promise.race([body, cancelled]);
  } finally {
    call.signal.removeEventListener("abort", onAbort);
    call.killNow?.removeEventListener("abort", onKillNow);
  }

  async function talk(): Promise<{ result: ResultMessage; events: NotifyEvent[] }> {
    // Descriptors taken from the helper: closed unless the call succeeds (then the result owns them).
    const owned: number[] = [];
    let succeeded = false;
    try {
      writeLine(proc, req);
      // The helper's stdout ends when the last holder of its pipe closes it. CRIU's children inherit it, and one that
      // CRIU left behind when it was killed (reparented to this daemon, the subreaper) may hold it for ever: once the
      // helper has exited, what it wrote is read for STDOUT_GRACE_MS more, then the call ends with what it has.
      const stdout = lines(proc.stdout)[Symbol.asyncIterator]();
      const gone = outputGone.then(() => ({ done: true, value: undefined }) as const);
      for (;;) {
        const next = await Promise.race([stdout.next(), gone]);
        if (next.done) break;
        const line = next.value;
        let msg;
        try {
          msg = checkHelperMessage(JSON.parse(line));
        } catch {
          continue;
        }
        if (!msg) continue;
        if (msg.type === "calling") {
          criuCalled = true;
          continue;
        }
        if (msg.type === "result") {
          result = msg;
          onResult?.(msg);
          continue;
        }
        // A post-copy dump's page server listens: CRIU no longer looks at a stop request, so an abort from here kills it.
        if (lazyDump && msg.action === "status-ready") noStop ??= "past its page server's start, a post-copy dump is not asked to stop";
        const event: NotifyEvent = { action: msg.action, pid: msg.pid, wait: msg.wait, helperPid: msg.helperPid };
        if (msg.fd !== undefined) event.fd = msg.fd;
        events.push(event);
        let ok = true;
        let message: string | undefined;
        try {
          // The helper waits here (the client added the action to waitFor), so its fd is still open.
          if (takePtsMaster && msg.action === "orphan-pts-master" && msg.fd !== undefined && msg.fd >= 0) {
            event.ptsMaster = takeFdFromProcess(msg.helperPid, msg.fd);
            owned.push(event.ptsMaster);
          }
          await untilAborted(call.onNotify?.(event), call.signal);
        } catch (err) {
          ok = false;
          callbackError ??= err;
          message = err instanceof Error ? err.message : String(err);
        }
        if (msg.wait) {
          // The helper may be gone already (killed on abort): its exit and the abort decide the outcome, not EPIPE.
          writeLine(proc, { type: "reply", seq: msg.seq, ok, message });
        }
      }
      await proc.exited;
      if (call.signal?.aborted) {
        // A tree CRIU had restored just as the abort came goes too (the killed helper took only its root with it);
        // the descriptors taken from the helper are closed below.
        if (req.op === "restore" && result?.ok && result.rc > 0) killTree(result.rc);
        // Asked to stop (or done first) and answered before any kill: CRIU ended the dump itself, through its own
        // cleanup; or it had finished it, which the caller may keep. Not a CRIU that died without an answer (libcriu's
        // ECOMM: SIGTERM before its handler was set, or a crash): what it did is the caller's to undo, and what it had
        // forked goes.
        const died = result !== undefined && !result.ok && result.rc === -E.ECOMM;
        if (died && helperOut !== undefined) killCriuLeftovers(helperOut);
        const ownEnd = (askedToStop || awaitingAnswer) && !killing && result !== undefined && !died;
        if (ownEnd && result!.ok && call.keepFinished?.(call.signal.reason)) {
          succeeded = true;
          return { result: result!, events };
        }
        if (ownEnd) {
          throw new CriuStoppedError(Code.CANCELLED, `${what}: context canceled`, { cause: call.signal.reason }, result!.ok, result!.logFile);
        }
        if (killing) throw new CriuKilledError(`${what}: context canceled`, { cause: call.signal.reason }, killedBecause);
        throw new CryoError(Code.CANCELLED, `${what}: context canceled`, { cause: call.signal.reason });
      }
      if (!result) {
        // The watchdog ended the call: CRIU ended without an answer (dead, or killed with the helper), so what it had
        // done stays for the caller to undo (CriuLostError). A plain error here left a dump's freeze and network lock
        // in place when the helper was too slow to reap CRIU (a loaded machine) and the watchdog came first.
        if (criuEnd !== undefined) throw new CriuLostError(Code.UNAVAILABLE, `${what}: unavailable: ${criuEnd}`);
        const tail = (await stderrText()).trim().split("\n").slice(-5).join("; ");
        const ended = `${what}: unavailable: helper exited with ${proc.exitCode ?? proc.signalCode} without a result${tail ? `: ${tail}` : ""}`;
        // The helper killed from outside (or by the OOM killer): CRIU, its child, was handed to this daemon (the
        // subreaper) and works on, holding the tree, with nobody to read its answer; when it ended by itself it left
        // the tree as it found it (a paused container frozen again while containerd says RUNNING: a helper session).
        // It goes as on an abort (the tree frozen first), and the caller undoes what it left (CriuLostError).
        const left = helperOut !== undefined ? criuLeftovers(helperOut) : [];
        if (left.length === 0) throw new CriuLostError(Code.UNAVAILABLE, ended);
        await beforeKill();
        for (const pid of left) signalProcess(pid, "SIGKILL");
        const deadline = Date.now() + ABORT_WAIT_MS;
        while (left.some(isAlive) && Date.now() < deadline) await Bun.sleep(20);
        throw new CriuLostError(Code.UNAVAILABLE, `${ended}; the CRIU it had started (pid ${left.join(", ")}) killed`);
      }
      // The watchdog ended the call (fail): its kill of CRIU closes CRIU's socket, and libcriu's answer to that (ECOMM,
      // "ended without an answer") can reach this side before the helper's own kill does (seen once under load, in a
      // restore whose task was killed). The watchdog's words say why; CRIU did end without an answer (CriuLostError).
      if (!result.ok && result.rc === -E.ECOMM && criuEnd !== undefined) throw new CriuLostError(Code.UNAVAILABLE, `${what}: unavailable: ${criuEnd}`);
      if (!result.ok) throw resultError(what, result, callbackError, await stderrText(), criuSeen, result.rc === -E.ECOMM && result.logFile ? criuLogLastLine(result.logFile) : undefined);
      succeeded = true;
      return { result, events };
    } finally {
      try {
        proc.stdin.end();
      } catch {
        // already closed
      }
      if (!succeeded) for (const fd of owned) close(fd);
    }
  }
}

/** The target of /proc/<pid>/fd/<fd> ("pipe:[123]", "socket:[456]"), or undefined when it cannot be read. */
function fdTarget(pid: number, fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/**
 * Kills the processes whose stdout is the helper's (out: fdTarget of the helper's fd 1): CRIU's children (and what
 * they ran, an action script's background process too), left behind when CRIU was killed. Only CRIU and what it
 * forks inherit that descriptor. One such (the child CRIU forks and ptraces to learn the kernel's ptrace features,
 * which sleeps until killed) held CRIU's socket and the helper's pipes open, reparented to the daemon: the call
 * waited for ever (seen here: a restore whose CRIU a test killed at its start). The restored tree's tasks are not
 * among them once CRIU has given them their own descriptors; before that, they are, and they go too.
 */
function killCriuLeftovers(out: string): void {
  for (const pid of criuLeftovers(out)) signalProcess(pid, "SIGKILL");
}

/** The processes whose stdout is out (the helper's): CRIU and what it forked (see killCriuLeftovers). */
function criuLeftovers(out: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid !== process.pid && fdTarget(pid, 1) === out) found.push(pid);
  }
  return found;
}

function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/** How often a running call looks whether CRIU died under its helper. */
const CRIU_WATCH_MS = 250;

/** How long the helper's output is read after the helper has exited (see talk()). */
const STDOUT_GRACE_MS = 1_000;

/** How long an aborted call's beforeKill may take before the helper is killed anyway. */
const BEFORE_KILL_MS = 2000;
/** How long a CRIU asked to stop an aborted dump (SIGTERM) has to answer before it is killed. */
const ABORT_GRACE_MS = 3_000;
/** How long an aborted call waits for its killed helper to be gone before it fails anyway. */
const ABORT_WAIT_MS = 2_000;

/** Writes one JSON line to the helper's stdin; a helper that has exited (EPIPE) is left to its exit status. */
function writeLine(proc: HelperProcess, msg: unknown): void {
  try {
    proc.stdin.write(`${JSON.stringify(msg)}\n`);
    const flushed = proc.stdin.flush();
    if (flushed instanceof Promise) flushed.catch(() => {});
  } catch {
    // gone: reading its stdout ends, and the missing result (or the abort) becomes the error
  }
}

/** Awaits p, or rejects as soon as signal aborts (a hung notify handler must not outlive an abort). */
function untilAborted(p: void | Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal || !(p instanceof Promise)) return Promise.resolve(p);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/**
 * CRIU ended in the middle of a call without an answer (killed from outside, crashed): it undid nothing of what it had
 * done (the freezer it thawed after seizing the tasks, its network lock, sockets in TCP repair), and the tasks it held
 * ran on the moment it died. The caller undoes what it can (src/shim/dump-abort.ts).
 */
export class CriuLostError extends CryoError {}

/** An aborted call whose CRIU the client killed (CANCELLED); `why` says why it was not left to stop by itself. */
export class CriuKilledError extends CryoError {
  constructor(
    message: string,
    options: ErrorOptions,
    readonly why: string,
  ) {
    super(Code.CANCELLED, message, options);
  }
}

/**
 * An aborted dump or pre-dump that CRIU ended itself, asked with SIGTERM (see runHelper): it went through its own
 * cleanup, so the tasks run (or stay frozen, if their cgroup was), the network is unlocked and no socket is left in
 * repair mode; nothing is left for the caller to undo. finished: CRIU had already finished the dump when it was asked
 * (a dump without leave-running has then ended the tasks). logFile: CRIU's log of the call.
 */
export class CriuStoppedError extends CryoError {
  constructor(
    code: Code,
    message: string,
    options: ErrorOptions,
    readonly finished: boolean,
    readonly logFile: string | undefined,
  ) {
    super(code, message, options);
  }
}

/**
 * Turns a failed result into a CryoError carrying CRIU's log lines and the right code.
 * criuPid: the `criu swrk` the call's watchdog saw, if any. logTail: the last line of CRIU's log (read by the caller).
 */
export function resultError(what: string, result: ResultMessage, callbackError?: unknown, stderr = "", criuPid?: number, logTail?: string): CryoError {
  if (result.code !== undefined) return new CryoError(result.code as Code, `${what}: ${result.message ?? "failed"}`);
  if (callbackError !== undefined) return CryoError.from(callbackError).wrap(`${what}: refused at ${result.refusedBy ?? "notify"}`);
  const code = classify(result.rc, result.errno);
  const log = result.logFile ? ` (log: ${result.logFile})` : "";
  if (result.rc === -E.ECOMM) {
    // libcriu lost CRIU mid-call: its socket closed with no answer (libcriu then prints "Failed unpacking
    // response" with whatever errno was left over). CRIU logs nothing when it is killed, so its log's last
    // line says where it was; error lines it did log come first.
    const where = result.logErrors.length > 0 ? `: ${result.logErrors.join("; ")}` : logTail ? `; its log ends: ${logTail}` : "";
    return new CriuLostError(code, `${what}: unavailable: CRIU${criuPid ? ` (pid ${criuPid})` : ""} ended without an answer: it was killed or crashed${where}${log}`);
  }
  const lines = result.logErrors.length > 0 ? result.logErrors : stderr.trim().split("\n").filter((l) => l.length > 0).slice(-3);
  const detail = lines.length > 0 ? `: ${lines.join("; ")}` : "";
  return new CryoError(code, `${what}: ${kind(code)} (rc ${result.rc}, errno ${result.errno})${detail}${log}`);
}

const E = { EPERM: 1, ESRCH: 3, EACCES: 13, EEXIST: 17, EINVAL: 22, ENOSPC: 28, EBADE: 52, ECOMM: 70, EBADMSG: 74, ECONNREFUSED: 111 };

/** libcriu's return value and errno -> gRPC code. */
export function classify(rc: number, errno: number): Code {
  if (rc === -E.ECONNREFUSED || rc === -E.ECOMM) return Code.UNAVAILABLE;
  if (rc === -E.EBADMSG || rc === -E.EINVAL) return Code.FAILED_PRECONDITION;
  switch (errno) {
    case E.ENOSPC:
      return Code.RESOURCE_EXHAUSTED;
    case E.EACCES:
    case E.EPERM:
      return Code.PERMISSION_DENIED;
    case E.ESRCH:
      return Code.NOT_FOUND;
    case E.EEXIST:
      return Code.ALREADY_EXISTS;
    default:
      return Code.UNKNOWN;
  }
}

const kindWords: Partial<Record<Code, string>> = {
  [Code.UNAVAILABLE]: "unavailable",
  [Code.FAILED_PRECONDITION]: "failed precondition",
  [Code.RESOURCE_EXHAUSTED]: "resource exhausted",
  [Code.PERMISSION_DENIED]: "permission denied",
  [Code.NOT_FOUND]: "not found",
  [Code.ALREADY_EXISTS]: "already exists",
};

function kind(code: Code): string {
  return kindWords[code] ?? "unknown";
}

function describe(req: HelperRequest): string {
  if (req.op === "dump" || req.op === "pre-dump") return `criu ${req.op} pid ${req.opts?.pid ?? "?"}`;
  if (req.op === "restore") return `criu restore ${req.opts?.imagesDir ?? ""}`;
  return `criu ${req.op}`;
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
  if (buffered.length > 0) yield buffered;
}

/** Starts `criu lazy-pages` and resolves once it reports readiness on its status fd. */
async function startLazyPages(criuBinary: string, opts: LazyPagesOptions): Promise<LazyPagesServer> {
  const workDir = opts.workDir ?? opts.imagesDir;
  const logFile = "lazy-pages.log";
  const args = [criuBinary, "lazy-pages", "--images-dir", opts.imagesDir, "--work-dir", workDir, "--log-file", logFile, `-v${opts.logLevel ?? 4}`, "--status-fd", "3"];
  if (opts.pageServer) args.push("--page-server", "--address", opts.pageServer.address, "--port", String(opts.pageServer.port));
  opts.signal?.throwIfAborted();
  await mkdir(workDir, { recursive: true });
  const proc = Bun.spawn(args, { stdio: ["ignore", "ignore", "pipe", "pipe"] });
  const statusFd = proc.stdio[3];
  if (typeof statusFd !== "number") throw new CryoError(Code.INTERNAL, "criu lazy-pages: no status pipe");
  const stderr = new Response(proc.stderr).text();
  const ready = (async () => {
    for await (const chunk of Bun.file(statusFd).stream()) if (chunk.length > 0) return true;
    return false;
  })();
  // Bun.file(fd) never closes the descriptor: our end of the status socketpair is closed here, once the
  // reader is done with it (first byte or end of file). Until the thirty-first session it stayed open, one
  // socket for each lazy restore, in a shim daemon that lives on.
  void ready.catch(() => false).then(() => close(statusFd));
  const abort = () => proc.kill("SIGKILL");
  opts.signal?.addEventListener("abort", abort, { once: true });
  const isReady = await Promise.race([ready, proc.exited.then(() => false)]);
  opts.signal?.removeEventListener("abort", abort);
  const logPath = join(workDir, logFile);
  if (!isReady) {
    proc.kill("SIGKILL");
    await proc.exited;
    const lines = existsSync(logPath) ? readFileSync(logPath, "utf8").split("\n").filter((l) => /Error|err/.test(l)).slice(-5) : [];
    const detail = lines.length > 0 ? lines.join("; ") : (await stderr).trim();
    throw new CryoError(Code.UNKNOWN, `criu lazy-pages ${opts.imagesDir}: unknown: exited before ready: ${detail} (log: ${logPath})`);
  }
  const readyAt = performance.now();
  const done = proc.exited.then(async (code): Promise<LazyPagesSummary> => {
    const durationMs = performance.now() - readyAt;
    const log = await readFile(logPath, "utf8").catch(() => "");
    if (code !== 0) {
      const lines = log.split("\n").filter((l) => /Error|err/.test(l)).slice(-5);
      const how = proc.signalCode ? `killed by ${proc.signalCode}` : `exited with ${code}`;
      throw new CryoError(Code.UNKNOWN, `criu lazy-pages ${opts.imagesDir}: unknown: ${how}${lines.length > 0 ? `: ${lines.join("; ")}` : ""} (log: ${logPath})`);
    }
    const summary: LazyPagesSummary = { durationMs };
    for (const m of log.matchAll(/UFFD transferred pages: \((\d+)\/(\d+)\)/g)) {
      summary.transferredPages = (summary.transferredPages ?? 0) + Number(m[1]);
      summary.totalPages = (summary.totalPages ?? 0) + Number(m[2]);
    }
    return summary;
  });
  done.catch(() => {}); // a caller that never awaits done must not see an unhandled rejection
  return {
    pid: proc.pid,
    logFile: logPath,
    exited: proc.exited,
    get exitCode() {
      return proc.exitCode ?? (proc.signalCode ? -1 : null);
    },
    done,
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}
