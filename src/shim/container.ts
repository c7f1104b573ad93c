/**
 * A container in the daemon: its init process, its exec processes, and one serial queue through
 * which every mutating call and every exit runs, so that events leave in lifecycle order
 * (create < start < exit < delete; exec-added < exec-started < exit) without locks.
 *
 * Exits: when a pid is launched its exit is awaited from the reaper; the exit then queues a job that
 * records the exit (State says stopped, Wait answers) and publishes TaskExit at once, as containerd's runc shim
 * does. The process's output is copied on until every writer is gone (a process it left in the background may
 * still write: CRI's ExecSync reads it all, as with runc's shim); Delete then waits for that drain, at most
 * EXEC_OUTPUT_LINGER_MS for a copy a leftover process still holds (runc's shim waits 2 s there too), before it
 * closes the IO. Delete of a process that was never started kills it and records its exit inline.
 *
 * An exec's Start is the exception: its checks run in the queue, its `runc exec` in the daemon's exec slots outside it
 * (startExec), and the calls that must not meet a launch under way wait for the container's launches in their turn.
 */
import { availableParallelism } from "node:os";
import { killCriuAtOnce } from "../criu/abort-reason.ts";
import type { CheckpointRequestOptions } from "../checkpoint/index.ts";
import { Code, CryoError, alreadyExists, failedPrecondition, invalidArgument, isCode, notFound, notImplemented } from "../errors.ts";
import { TaskCreateSchema, TaskDeleteSchema, TaskExecAddedSchema, TaskExecStartedSchema, TaskExitSchema, TaskOOMSchema, TaskPausedSchema, TaskResumedSchema, TaskStartSchema } from "../gen/containerd/events/task_pb.ts";
import { wallClock } from "../sys/clock.ts";
import { callerAbortReason, callerGoneWords } from "./cancel.ts";
import { Topic, type Publisher } from "./events.ts";
import type { Logger } from "./logger.ts";
import type { ContainerMetrics, Engine, ExitStatus, InitSpec, StdioSpec } from "./ports.ts";
import { invalidTransition, type ProcessEvent } from "./process-state.ts";
import { ShimProcess } from "./process.ts";
import { createFairLimiter, type FairLimiter } from "./fair-limiter.ts";
import { createSerialQueue, type SerialQueue } from "./serial-queue.ts";


const SIGKILL = 9;
/** The signal a task traps on when CRIU ends while its parasite or an injected syscall is in the task. */
const SIGTRAP = 5;
/** How long a Kill whose signal failed waits for the exit of an init an aborted dump had killed (see kill). */
const KILLED_EXIT_WAIT_MS = 2_000;
/** How long an exit waits for the process's output to drain before it is reported anyway. */
export const DRAIN_TIMEOUT_MS = 5000;
/** The exit status of an exec whose Start failed (runc exec's own when it cannot start the process). */
export const EXEC_START_FAILED_STATUS = 255;
/** How long Delete of a never-started process waits for it to die after `runc delete --force`. */
export const KILL_WAIT_MS = 5000;
/**
 * How long Delete of an init waits for containerd to have its /tasks/delete event before it answers. The
 * event queue is the daemon's, shared by its containers: a shared daemon with busy neighbours had it reach
 * containerd after containerd's own /containers/delete, even after the next /containers/create of the same
 * id (5 of 1597 `ctr run --rm` under churn). A forward that fails is retried after 1 s; Delete does not wait
 * for that.
 */
export const DELETE_EVENT_WAIT_MS = 1000;
/**
 * How long a Pause, Checkpoint or exec Start that met an init no longer alive (exiting, a zombie, or gone) waits for
 * the reaper to report its end, before it answers as for a stopped task (see initEndedMeanwhile).
 */
export const INIT_END_WAIT_MS = 1000;

/** What the daemon shares with every container. */
export interface ContainerDeps {
  engine: Engine;
  publisher: Publisher;
  log: Logger;
  /** The daemon's exec slots (`runc exec` at once, fair between containers); none: DEFAULT_EXEC_SLOTS slots of the container's own. */
  execSlots?: FairLimiter;
}

/**
 * `runc exec` launches at once in a daemon unless its config says otherwise (`[shim] max_parallel_execs`,
 * docs/config.md): the CPUs it may use, at least 2. A launch is mostly CPU (runc's start, nsexec, the process's
 * setup), and more at once only slowed every other call of the daemon (docs/shim.md, "Floods").
 */
export const DEFAULT_EXEC_SLOTS = Math.max(2, availableParallelism());

/**
 * How long one `runc exec` launch holds an exec slot at most: one that hangs (runc's own timeout is 120 s) runs on
 * uncounted, so that two stuck launches do not hold every container's execs in the daemon (a launch takes 50-100 ms
 * here, a few seconds under a flood on a loaded machine).
 */
export const EXEC_SLOT_LEASE_MS = 10_000;

/** The inputs of Create, as internal types: what the engine's createInit/createRestore take. */
export type CreateConfig = InitSpec;

/** A container and its processes. */
export class Container {
  readonly init: ShimProcess;
  readonly execs = new Map<string, ShimProcess>();
  readonly queue: SerialQueue = createSerialQueue();
  private stopOom: (() => void) | undefined;
  /**
   * A checkpoint with `exit` stopped the init (containerd still sends its Resume afterwards). The init counts as
   * stopped from then on (checkInit), before its exit is recorded through the queue.
   */
  private stoppedByCheckpoint = false;
  /**
   * A Kill with SIGKILL reached the init (runc signalled it): it is ending. It counts as stopped from then on
   * (checkInit), as after a checkpoint with `exit`, before its exit is recorded through the queue.
   */
  private killedInit = false;
  /**
   * The reaper reported the init's end: it has exited (on its own, or killed from elsewhere). It counts as stopped from
   * then on (checkInit), as after a Kill with SIGKILL, while its exit waits for its output to be handed on and then for
   * its turn in the queue.
   */
  private initReaped = false;
  /** A Start from a checkpoint is running its restore (Kill with SIGKILL and Delete cancel it). */
  private restoreInFlight = false;
  private readonly execSlots: FairLimiter;
  /** Execs whose Start is launching them (startExec), each with a promise that resolves when that is over. */
  private readonly launching = new Map<ShimProcess, Promise<void>>();
  /** Aborts the checkpoint running now (its caller's deadline or a SIGKILL Kill: CRIU is killed, the container let go). */
  private checkpointAbort: AbortController | undefined;
  /** Aborted by a Kill with SIGKILL that comes after checkpointAbort was: CRIU, asked to stop, is killed at once. */
  private checkpointKill: AbortController | undefined;

  private constructor(
    readonly config: CreateConfig,
    private readonly deps: ContainerDeps,
  ) {
    this.init = new ShimProcess(config.id, "", config.stdio);
    this.execSlots = deps.execSlots ?? createFairLimiter(DEFAULT_EXEC_SLOTS, { leaseMs: EXEC_SLOT_LEASE_MS });
  }

  get id(): string {
    return this.config.id;
  }

  /** Runs runc create and publishes /tasks/create; the caller registered the id beforehand. */
  static async create(config: CreateConfig, deps: ContainerDeps): Promise<Container> {
    const c = new Container(config, deps);
    if (config.checkpoint) {
      // Restore-from-checkpoint is a state of the init: rootfs and IO now, the CRIU restore at Start.
      if (!deps.engine.createRestore) throw notImplemented("create from checkpoint");
      await deps.engine.createRestore({ ...config, checkpoint: config.checkpoint });
      c.init.state = "restoring";
    } else {
      const launched = await deps.engine.createInit({ ...config });
      c.init.pid = launched.pid;
      c.init.attachIo(launched.io);
      c.watchExit(c.init);
    }
    deps.publisher.publish(config.namespace, Topic.create, TaskCreateSchema, {
      containerId: config.id,
      bundle: config.bundle,
      rootfs: config.rootfs.map((m) => ({ type: m.type, source: m.source, target: m.target, options: m.options })),
      io: { stdin: config.stdio.stdin, stdout: config.stdio.stdout, stderr: config.stdio.stderr, terminal: config.stdio.terminal },
      checkpoint: config.checkpoint ?? "",
      pid: c.init.pid,
    });
    return c;
  }

  /** The init process or an exec; NOT_FOUND for an unknown exec id. */
  process(execId: string): ShimProcess {
    if (execId === "") return this.init;
    const p = this.execs.get(execId);
    if (!p) throw notFound(`exec ${execId} in container ${this.id}`);
    return p;
  }

  /**
   * Checks an event against the init's state. An init a checkpoint with `exit` stopped is refused as a stopped one:
   * its exit reaches the queue only behind the calls that queued during the dump, which found it running (a Pause
   * froze the emptied cgroup and answered ok; a second Checkpoint was NOT_FOUND "init pid N is gone"). runc's shim
   * refuses both ("container does not exist"). So is an init a Kill with SIGKILL reached: a Pause queued behind that
   * Kill froze the dying init and answered ok (the task then STOPPED with its cgroup left FROZEN), a Checkpoint failed
   * on the exiting init with whatever CRIU met (NOT_FOUND, UNKNOWN "Unseizable non-zombie", UNAVAILABLE from a CRIU
   * crashed on a BUG()). And so is an init whose end the reaper reported (initReaped): one that exited on its own while
   * calls waited in the queue had them run on its emptied container (a Pause froze the empty cgroup, answered ok and
   * published /tasks/paused; a Checkpoint failed UNKNOWN `EINVAL ... /proc/N/mountinfo` or NOT_FOUND `init pid N is gone`).
   */
  private checkInit(event: ProcessEvent): void {
    if (this.initEnding() && this.init.state !== "deleted") throw invalidTransition(this.init.label, "stopped", event);
    this.init.check(event);
  }

  /**
   * After a Pause, Checkpoint or exec Start on the init's container: true when the init turns out to have ended while
   * it ran (initEnding, or it is exiting, a zombie or gone and the reaper reports its end within INIT_END_WAIT_MS). The
   * init died before the reaper saw it, and the call met what was left (CRIU's UNKNOWN `EINVAL ... /proc/N/mountinfo`,
   * runc exec's UNKNOWN `error writing config to pipe: write init-p: broken pipe`, a freeze of the emptied cgroup that
   * answered ok). A live init costs the engine's look at it (processEnded: one read of /proc/<pid>/stat).
   */
  private async initEndedMeanwhile(): Promise<boolean> {
    if (this.initEnding()) return true;
    const reaped = this.init.reaped;
    if (reaped === undefined || !this.deps.engine.processEnded?.(this.init.pid)) return false;
    return await Promise.race([reaped.then(() => true, () => false), Bun.sleep(INIT_END_WAIT_MS).then(() => false)]);
  }

  /** The init has ended or is ending (a checkpoint with `exit`, a Kill with SIGKILL, its end reaped) before its exit is recorded. */
  private initEnding(): boolean {
    return this.stoppedByCheckpoint || this.killedInit || this.initReaped;
  }

  private publish: Publisher["publish"] = (ns, topic, schema, event) => this.deps.publisher.publish(ns, topic, schema, event);

  private watchExit(p: ShimProcess): void {
    const pid = p.pid;
    p.reaped = this.deps.engine.waitExit(pid);
    p.reaped.then(
      async (status) => {
        if (p === this.init) this.initReaped = true;
        // A terminal's output is still on its way when its process is reaped (in the terminal, the copy, the FIFO): the
        // exit waits for it, outside the queue. Told of the exit, ctr 1.6 closes its FIFO at once and loses what is unread.
        await p.io?.handedOn?.();
        void this.queue.run(() => this.handleExit(p, status));
      },
      (err) => this.deps.log.error(`wait for pid ${pid}: ${err instanceof Error ? err.message : String(err)}`),
    );
  }

  /** Records an exit and publishes /tasks/exit (once); Delete drains the output. */
  private async handleExit(p: ShimProcess, status: ExitStatus): Promise<void> {
    if (p.exit) return;
    if (!p.recordExit(status)) return;
    if (p === this.init) {
      this.stopOom?.();
      this.stopOom = undefined;
    }
    this.deps.log.debug(`${p.label} exited`, { pid: p.pid, status: status.status });
    this.publish(this.config.namespace, Topic.exit, TaskExitSchema, {
      containerId: this.id,
      id: p.execId === "" ? this.id : p.execId,
      pid: p.pid,
      exitStatus: status.status,
      exitedAt: status.exitedAt,
    });
  }

  /**
   * Waits until what the process wrote has been handed on: its output copies at EOF, or EXEC_OUTPUT_LINGER_MS from
   * now when a process it left behind still holds them (a terminal: once its master reports EIO); at most
   * DRAIN_TIMEOUT_MS.
   */
  private async drain(p: ShimProcess): Promise<void> {
    if (!p.io || !p.exit) return;
    const drained = await Promise.race([p.io.drained().then(() => true), Bun.sleep(DRAIN_TIMEOUT_MS).then(() => false)]);
    if (!drained) this.deps.log.warn(`${p.label}: output not drained after ${DRAIN_TIMEOUT_MS} ms`);
  }

  /** Aborts the restore a Start is running (outside the queue, where that Start holds its turn); true when one was running. */
  private cancelRestore(reason: string): boolean {
    return this.restoreInFlight && (this.deps.engine.cancelRestore?.(this.id, reason) ?? false);
  }

  /**
   * Aborts the checkpoint running now (outside the queue, where it holds its turn); true when one was running. The
   * tasks are being killed: CRIU is too, at once, not asked to stop and waited for. A checkpoint already aborted (the
   * caller's deadline, the container's own timeout, its images directory removed), whose CRIU was asked to stop and
   * given ABORT_GRACE_MS, has its CRIU killed now (checkpointKill: the dump's own aborts do not show in checkpointAbort).
   */
  private cancelCheckpoint(why: string): boolean {
    const abort = this.checkpointAbort;
    if (!abort) return false;
    const first = !abort.signal.aborted;
    if (first) abort.abort(killCriuAtOnce(new CryoError(Code.CANCELLED, `checkpoint container ${this.id}: cancelled: task ${why} while checkpointing`)));
    const kill = this.checkpointKill;
    const escalated = kill !== undefined && !kill.signal.aborted;
    kill?.abort();
    return first || escalated;
  }

  /**
   * Starts the init or an exec; returns its pid. A restore's Start ends like a Kill with SIGKILL when the caller's
   * signal aborts (its deadline passed, or its connection closed): CRIU is killed and the restore undone.
   */
  start(execId: string, signal?: AbortSignal): Promise<number> {
    if (execId !== "") return this.startExec(execId);
    return this.queue.run(async () => {
      const p = this.init;
      // An init a Kill with SIGKILL reached before its Start (or that died meanwhile) is refused as a stopped one; runc
      // start on it answered with whatever it found, "cannot start an already running container" while it was a zombie.
      this.checkInit("start");
      const { engine } = this.deps;
      // OOMs the watch sees before /tasks/start is out are published right after it, in the order containerd expects.
      let started = false;
      let oomBeforeStart = false;
      const onOom = () => {
        if (started) this.publish(this.config.namespace, Topic.oom, TaskOOMSchema, { containerId: this.id });
        else oomBeforeStart = true;
      };
      if (p.state === "restoring") {
        this.restoreInFlight = true;
        const onCallerGone = () => this.cancelRestore(callerGoneWords(signal));
        signal?.addEventListener("abort", onCallerGone, { once: true });
        if (signal?.aborted) onCallerGone();
        const restored = await engine.startRestore!(this.id).finally(() => {
          this.restoreInFlight = false;
          signal?.removeEventListener("abort", onCallerGone);
        });
        p.pid = restored.pid;
        p.attachIo(restored.io);
        this.watchExit(p);
      } else {
        // The memory cgroup is watched from before the init runs (runc create made it; the init waits in runc init
        // until runc start): a watch begun after runc start counted a kill that came first (a process filling its
        // limit at once, a busy machine) as one from before the watch, and CRI read reason "Error", not "OOMKilled".
        await this.watchOom(onOom);
        try {
          await engine.startInit(this.id, this.config.options, p.pid);
        } catch (err) {
          this.stopOom?.();
          this.stopOom = undefined;
          throw err;
        }
      }
      p.move("start");
      this.publish(this.config.namespace, Topic.start, TaskStartSchema, { containerId: this.id, pid: p.pid });
      started = true;
      if (oomBeforeStart) onOom();
      // A restore's cgroups are there once CRIU has restored the tree: watched from then on.
      if (this.stopOom === undefined) await this.watchOom(onOom);
      return p.pid;
    });
  }

  /** Watches the container's memory cgroup for OOM kills (this.stopOom ends it); a watch that cannot begin is logged. */
  private async watchOom(onOom: () => void): Promise<void> {
    try {
      this.stopOom = await this.deps.engine.watchOom(this.id, this.config.options, onOom);
    } catch (err) {
      this.deps.log.warn(`watch OOM of ${this.id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Starts an exec; returns its pid. Only the checks and the launch's mark hold the container's queue: `runc exec`
   * runs outside it, in the daemon's exec slots (ContainerDeps.execSlots, fair between containers), so that a
   * flood of execs into one container neither holds up that container's Kill, State of an exec or Update behind
   * every one of them, nor runs more `runc exec` at once than the slots allow. Calls that must not meet a launch
   * under way (Pause, Checkpoint, Delete of the init or of that exec) wait for the launches in their turn.
   */
  private async startExec(execId: string): Promise<number> {
    let done!: () => void;
    const p = await this.queue.run(() => {
      const p = this.process(execId);
      // A second Start of an exec being launched is refused as a second Start of a running one is.
      if (this.launching.has(p)) throw invalidTransition(p.label, "running", "start");
      p.check("start");
      this.checkExecTarget(p);
      // Marked before the job ends, so that a Pause or Delete queued right behind this Start waits for the launch.
      this.launching.set(p, new Promise<void>((resolve) => (done = resolve)));
      return p;
    });
    try {
      const { engine } = this.deps;
      let launched: Awaited<ReturnType<typeof engine.exec>>;
      let refused = false;
      try {
        launched = await engine.exec({
          id: this.id,
          execId,
          bundle: this.config.bundle,
          namespace: this.config.namespace,
          stdio: p.stdio,
          process: p.processSpec ?? {},
          options: this.config.options,
          slot: (launch) =>
            this.execSlots.run(this.id, () => {
              // The init may have ended (or been killed) while this launch waited for its slot: refused then as it
              // would have been when asked (a Pause cannot come between: it waits for the launches).
              refused = true;
              this.checkExecTarget(p);
              refused = false;
              return launch();
            }),
        });
      } catch (err) {
        // The exec will never run: a Wait on it (ctr and CRI call Wait before Start) is answered now, as runc's shim
        // answers it, instead of at its Delete. Its exit status is runc exec's own on such a failure; no /tasks/exit,
        // since no process ran.
        p.recordExit({ status: EXEC_START_FAILED_STATUS, exitedAt: wallClock() });
        // Refused in its slot: the check's own error again (the engine's wrapping of it left out).
        if (refused) this.checkExecTarget(p);
        // runc exec failed because the init ended meanwhile: a state error, not runc's broken pipe.
        if (await this.initEndedMeanwhile()) throw failedPrecondition(p.label, { detail: "container is stopped", cause: err });
        throw err;
      }
      p.pid = launched.pid;
      p.attachIo(launched.io);
      p.move("start");
      this.watchExit(p);
      this.publish(this.config.namespace, Topic.execStarted, TaskExecStartedSchema, { containerId: this.id, execId, pid: p.pid });
      return p.pid;
    } finally {
      this.launching.delete(p);
      done();
    }
  }

  /** Refuses an exec's launch into a container whose init has ended or is not running (nor created). */
  private checkExecTarget(p: ShimProcess): void {
    const ended = this.initEnding();
    if (ended || (this.init.state !== "running" && this.init.state !== "created")) {
      throw failedPrecondition(p.label, { detail: `container is ${ended ? "stopped" : this.init.state}` });
    }
  }

  /** Waits until no exec of this container is being launched (called in a queue job: no new launch starts meanwhile). */
  private async launchesDone(): Promise<void> {
    while (this.launching.size > 0) await Promise.all(this.launching.values());
  }

  /** Registers an exec process (created, not started) and publishes /tasks/exec-added. */
  addExec(execId: string, stdio: StdioSpec, processSpec: Record<string, unknown>): Promise<void> {
    return this.queue.run(() => {
      if (execId === "") throw invalidArgument("exec id", { detail: "empty" });
      if (this.execs.has(execId)) throw alreadyExists(`exec ${execId}`);
      this.checkInit("exec");
      this.deps.engine.checkExecProcess?.(this.id, processSpec);
      this.execs.set(execId, new ShimProcess(this.id, execId, stdio, processSpec));
      this.publish(this.config.namespace, Topic.execAdded, TaskExecAddedSchema, { containerId: this.id, execId });
    });
  }

  /**
   * Sends a signal to the init (all: every process) or an exec. SIGKILL to an init whose restore is running
   * (a Start from a checkpoint, which can hang in CRIU) cancels the restore instead: the Start fails, nothing
   * of the restore is left, and the kill succeeds with nothing to signal. The task then ends as a killed one
   * does (stopped, 137, /tasks/exit): `ctr task rm -f` waits for that exit after its SIGKILL, and waited for ever
   * on a task left created (seen: a restore whose ctr was killed, then `ctr task rm -f`). An exec being launched is
   * signalled once its launch is over, outside the queue, as runc's shim's Kill waits for the exec's Start (its process
   * lock): refused as not started, CRI's ExecSync whose caller gave up during the Start (its Delete kills first) left
   * the exec running in the container and listed by the daemon.
   */
  async kill(execId: string, signal: number, all: boolean): Promise<void> {
    if (execId !== "") {
      // Looked up in the queue, so that a Start queued before this Kill has marked its launch (wrapped: the queue would
      // wait for a promise it was handed).
      const [launch] = await this.queue.run(() => [this.launching.get(this.process(execId))]);
      await launch;
    }
    const cancelled = execId === "" && signal === SIGKILL && this.cancelRestore("task killed while restoring");
    // A checkpoint holding the queue (CRIU may hang in a dump, the container frozen) is aborted: the kill then follows.
    const checkpointCancelled = execId === "" && signal === SIGKILL && this.cancelCheckpoint("killed");
    // A kill that failed on an init an aborted dump may have killed: its exit (recorded through the queue) is waited
    // for outside it.
    let failedOnDying: { err: unknown; init: ShimProcess } | undefined;
    await this.queue.run(async () => {
      // Also a task created from a checkpoint with no restore running (never started, or its restore failed, when a
      // Start may try again): no process to signal, so SIGKILL ends it as a killed task, its Wait answered. runc's shim
      // ran `runc kill` on a container runc does not know and failed; cryo refused it as "not running", and the Wait
      // of such a task waited until its Delete (found by bench/ttrpc-fuzz.ts).
      if ((cancelled || (execId === "" && signal === SIGKILL)) && this.init.state === "restoring") {
        await this.handleExit(this.init, { status: 128 + SIGKILL, exitedAt: wallClock() });
        return;
      }
      const p = this.process(execId);
      // The aborted dump may have given the init its SIGKILL already (checkpoint-dump.ts: before the thaw, so that it
      // dies of it): an init that has ended, or ends within KILLED_EXIT_WAIT_MS of a failed kill, is killed as asked.
      // Not `kill --all` of an init that has ended: that goes to runc below, for what is left in the cgroup (a
      // container without a pid namespace of its own keeps its other processes when its init dies).
      const dyingInit = checkpointCancelled && p === this.init;
      if (dyingInit && !all && p.state === "stopped") return;
      // `kill --all` of a stopped container goes to runc (`runc kill --all`), as containerd's runc shim sends it:
      // what is left in the cgroup gets the signal, and with nothing left it succeeds.
      const stoppedAll = all && p === this.init && p.state === "stopped" && p.pid !== 0;
      if (!stoppedAll) p.check("kill");
      if (p.pid === 0) throw failedPrecondition(p.label, { detail: "process not started" });
      try {
        await this.deps.engine.kill(this.id, this.config.options, { init: p === this.init, pid: p.pid, exited: stoppedAll }, signal, all && p === this.init);
        if (signal === SIGKILL && p === this.init) this.killedInit = true;
      } catch (err) {
        if (!dyingInit || stoppedAll) throw err;
        failedOnDying = { err, init: p };
      }
    });
    if (failedOnDying) {
      const { err, init } = failedOnDying;
      const ended = await Promise.race([init.exited.then(() => true), Bun.sleep(KILLED_EXIT_WAIT_MS).then(() => false)]);
      if (!ended) throw err;
    }
  }

  /**
   * Freezes the container (init running -> paused) and publishes /tasks/paused. Pause, Resume and Update whose
   * caller gave up while they waited for their turn (behind a long checkpoint) are not done: the caller was told
   * they failed (runc's shim, whose runc runs with the call's context, does not run them either).
   */
  pause(signal?: AbortSignal): Promise<void> {
    return this.queue.run(async () => {
      notGivenUp(signal, `pause container ${this.id}`);
      this.checkInit("pause");
      // runc exec into a cgroup frozen under it would hang until the thaw.
      await this.launchesDone();
      this.checkInit("pause");
      await this.deps.engine.freeze(this.id, this.config.options);
      // An init that died before the freeze left an empty cgroup frozen: not paused, and nothing to publish.
      if (await this.initEndedMeanwhile()) {
        await this.deps.engine.thaw(this.id, this.config.options).catch((err: unknown) => this.deps.log.warn(`thaw ${this.id} after its init ended: ${CryoError.from(err).message}`));
        throw invalidTransition(this.init.label, "stopped", "pause");
      }
      this.init.move("pause");
      this.publish(this.config.namespace, Topic.paused, TaskPausedSchema, { containerId: this.id });
    });
  }

  /** Thaws the container (paused -> running) and publishes /tasks/resumed; see pause for a caller gone meanwhile. */
  resume(signal?: AbortSignal): Promise<void> {
    return this.queue.run(async () => {
      notGivenUp(signal, `resume container ${this.id}`);
      // containerd resumes after every checkpoint, also one that stopped the container: nothing to do then.
      if (this.stoppedByCheckpoint) return;
      this.init.check("resume");
      await this.deps.engine.thaw(this.id, this.config.options);
      this.init.move("resume");
      this.publish(this.config.namespace, Topic.resumed, TaskResumedSchema, { containerId: this.id });
    });
  }

  /**
   * Checkpoints the container into path (containerd tars it afterwards). The container keeps its
   * state (running or paused); with `exit` it is killed by the dump and its exit comes from the reaper.
   * The dump is aborted when the caller's signal aborts (the request's deadline passed, or its connection closed)
   * or a Kill with SIGKILL comes: CRIU is killed and the container let go as it was (the engine's checkpoint).
   */
  checkpoint(path: string, request: CheckpointRequestOptions, signal?: AbortSignal): Promise<void> {
    return this.queue.run(async () => {
      this.checkInit("checkpoint");
      // CRIU would meet runc's setns process in the container.
      await this.launchesDone();
      this.checkInit("checkpoint");
      const { engine } = this.deps;
      if (!engine.checkpoint) throw notImplemented("checkpoint");
      // The caller gave up while the call waited for its turn: nothing was done.
      notGivenUp(signal, `checkpoint container ${this.id}`);
      const abort = new AbortController();
      const onCallerGone = () => abort.abort(callerAbortReason(`checkpoint container ${this.id}`, signal));
      signal?.addEventListener("abort", onCallerGone, { once: true });
      this.checkpointAbort = abort;
      const killNow = new AbortController();
      this.checkpointKill = killNow;
      try {
        const r = await engine.checkpoint({
          id: this.id,
          bundle: this.config.bundle,
          namespace: this.config.namespace,
          options: this.config.options,
          path,
          request,
          paused: this.init.state === "paused",
          isPaused: () => this.init.state === "paused",
          signal: abort.signal,
          killNow: killNow.signal,
        });
        if (!r.leftRunning) this.stoppedByCheckpoint = true;
      } catch (err) {
        // The init ended on its own during the dump: CRIU met a zombie or nothing (UNKNOWN EINVAL on its mountinfo,
        // NOT_FOUND "init pid N is gone"). Not an abort (a Kill's, the caller's): those say what stopped the dump.
        if (!abort.signal.aborted && (await this.initEndedMeanwhile())) {
          const failure = CryoError.from(err);
          // SIGTRAP is CRIU's: a CRIU that dies while it holds the tree (seized, its parasite in) leaves a task to
          // trap on CRIU's breakpoint. The dump's failure ended the init then, not the init itself: say so, with
          // the dump's error and code, rather than "cannot checkpoint a stopped container".
          if ((await this.init.reaped?.catch(() => undefined))?.status === 128 + SIGTRAP) {
            const message = `${failure.message}; the container's init died of it (SIGTRAP, exit status ${128 + SIGTRAP}: CRIU ended while it held the task)`;
            this.deps.log.error(message);
            throw new CryoError(failure.code, message, { cause: err });
          }
          this.deps.log.warn(`checkpoint container ${this.id}: its init ended during the dump, which failed with: ${failure.message}`);
          throw new CryoError(Code.FAILED_PRECONDITION, invalidTransition(this.init.label, "stopped", "checkpoint").message, { cause: err });
        }
        throw err;
      } finally {
        this.checkpointAbort = undefined;
        this.checkpointKill = undefined;
        signal?.removeEventListener("abort", onCallerGone);
      }
    });
  }

  /** Applies new resources (parsed LinuxResources JSON); see pause for a caller gone meanwhile. */
  update(resources: unknown, signal?: AbortSignal): Promise<void> {
    return this.queue.run(async () => {
      notGivenUp(signal, `update container ${this.id}`);
      this.checkInit("update");
      await this.deps.engine.update(this.id, this.config.options, resources);
    });
  }

  /** Reads the container's metrics. */
  stats(): Promise<ContainerMetrics> {
    if (this.init.state === "deleted") throw notFound(this.init.label);
    return this.deps.engine.stats(this.id, this.config.options);
  }

  /** Every pid in the container, with the exec id of those that are exec processes. */
  async pids(): Promise<{ pid: number; execId: string | undefined }[]> {
    // A Delete removes runc's container first, then unmounts the rootfs and waits for the output to be read (drain);
    // containerd keeps the task until Delete answers, and CRI's PodSandboxStats asks the Pids of every container it
    // still counts as running, failing the whole call on an error. A stopped init has no process left (its PID
    // namespace ended with it, or its exit killed the rest): an empty list, as runc's shim answers until its Delete
    // (which waits for the output before runc delete) has run runc delete.
    if (this.init.state === "deleted") return [];
    // Created from a checkpoint and not running (before its Start, or after a restore that failed), or stopped by a
    // kill that cancelled its restore: no process (runc has no container for it).
    if (this.init.state === "restoring" || (this.init.state === "stopped" && this.init.pid === 0)) return [];
    let pids: number[];
    try {
      pids = await this.deps.engine.pids(this.id, this.config.options);
    } catch (err) {
      // runc's container deleted by a Delete under way (see above), also while this runc ps ran (the state is read
      // again: the init may have exited meanwhile).
      if (isCode(err, Code.NOT_FOUND) && ["stopped", "deleted"].includes(this.init.state)) return [];
      throw err;
    }
    const byPid = new Map<number, string>();
    for (const [id, p] of this.execs) if (p.pid !== 0) byPid.set(p.pid, id);
    return pids.map((pid) => ({ pid, execId: byPid.get(pid) }));
  }

  /**
   * Deletes an exec (stopped or never started) or the init (stopped or created: runc delete, rootfs
   * unmounted) and publishes /tasks/delete for the init. Returns the process's pid and exit.
   */
  delete(execId: string): Promise<{ pid: number; exit: ExitStatus }> {
    if (execId === "") this.cancelRestore("task deleted while restoring");
    return this.queue.run(async () => {
      // An exec being launched is deleted once its launch is over (running then: refused, as runc's shim refuses it);
      // the init once none is, so that no runc exec runs after runc delete.
      const p = this.process(execId);
      await (p === this.init ? this.launchesDone() : this.launching.get(p));
      const wasCreated = p.state === "created" || p.state === "restoring";
      // Created from a checkpoint and never run (before its Start, after a failed restore, or ended by the SIGKILL
      // that cancelled its restore): what the restore had prepared goes.
      if (p === this.init && p.pid === 0 && this.config.checkpoint !== undefined) await this.deps.engine.discardRestore?.(this.id);
      p.check("delete");
      if (p !== this.init) {
        if (wasCreated) p.recordExit({ status: 0, exitedAt: wallClock() });
        p.move("delete");
        await this.drain(p);
        await p.io?.close();
        this.execs.delete(execId);
        return { pid: p.pid, exit: p.exit! };
      }
      for (const [id, e] of this.execs) {
        if (e.state === "running" || e.state === "paused") {
          throw failedPrecondition(p.label, { detail: `exec ${id} is still running` });
        }
      }
      const { engine } = this.deps;
      await engine.deleteInit(this.id, this.config.bundle, this.config.options);
      if (wasCreated && p.pid !== 0) {
        // runc delete --force killed the waiting init: record its exit now (the queued exit job is a no-op then).
        const st = await Promise.race([p.reaped ?? Promise.resolve(undefined), Bun.sleep(KILL_WAIT_MS).then(() => undefined)]);
        await this.handleExit(p, st ?? { status: 128 + 9, exitedAt: wallClock() });
      } else if (wasCreated) {
        p.recordExit({ status: 0, exitedAt: wallClock() });
      }
      p.move("delete");
      // An exec added and never started will not run now: its Waits (ctr and CRI Wait before Start) are answered as its
      // own Delete answers them. Before, they waited until their caller gave up: a shared daemon lives on after the
      // container, so a Wait without a deadline never ended, holding its connection.
      for (const e of this.execs.values()) if (e.state === "created") e.recordExit({ status: 0, exitedAt: wallClock() });
      await Promise.all([p, ...this.execs.values()].map((q) => this.drain(q)));
      const closing = [p.io?.close(), ...[...this.execs.values()].map((e) => e.io?.close())];
      this.stopOom?.();
      this.stopOom = undefined;
      await Promise.all(closing);
      const exit = p.exit!;
      const delivered = this.publish(this.config.namespace, Topic.delete, TaskDeleteSchema, {
        containerId: this.id,
        pid: p.pid,
        exitStatus: exit.status,
        exitedAt: exit.exitedAt,
      });
      await within(delivered, DELETE_EVENT_WAIT_MS);
      return { pid: p.pid, exit };
    });
  }
}

/** Throws the caller's reason when its signal aborted (its deadline passed, its connection closed) before the job's turn. */
function notGivenUp(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw CryoError.from(signal.reason).wrap(what);
}

/** Awaits p, at most ms (its timer cleared as soon as p settles). */
async function within(p: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
