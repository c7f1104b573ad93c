/**
 * The long-running shim daemon (the binary run with no action): child subreaper and reaper, the
 * events publisher, the engine, and the ttrpc server with containerd.task.v2.Task and
 * containerd.task.v3.Task on the socket `start` chose. It exits when Shutdown finds no container
 * left (or on SIGTERM/SIGINT), after answering in-flight calls and draining events.
 */
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { Code, CryoError } from "../errors.ts";
import { Task as TaskV2 } from "../gen/containerd/runtime/task/v2/shim_pb.ts";
import { Task as TaskV3 } from "../gen/containerd/runtime/task/v3/shim_pb.ts";
import { createReaper, setCloexec, sweepConsoleSockets } from "../sys/index.ts";
import { readRegularFile } from "../sys/regular-file.ts";
import { createServer } from "../ttrpc/index.ts";
import { dropAddedEnv, takeListenFd } from "./daemon-env.ts";
import { createEngine } from "./engine.ts";
import { createPublisher, createTtrpcForwarder } from "./events.ts";
import type { ShimFlags } from "./flags.ts";
import { createGroupSeal, GROUP_KEY_ENV } from "./grouping-seal.ts";
import { createLogFollower } from "./log-follow.ts";
import { createLogger } from "./logger.ts";
import { defaultShimOptions } from "./runtime-options.ts";
import { clearAllPending, clearPending, freshPending, LINGER_ENV, lockSocket } from "./socket-lock.ts";
import { sweepDeadSockets } from "./socket-sweep.ts";
import { ANNOTATION_PREFIX } from "../checkpoint/annotations.ts";
import type { LoadedConfig } from "../config/find.ts";
import type { StampedConfig } from "../config/config-cache.ts";
import { readAnnotations, selfCommand } from "./start.ts";
import { ensureStandby, takeStandbyPath, warmStandbyForRestore } from "./standby.ts";
import { checkRequestIds, createTaskService } from "./task-service.ts";
import { DEFAULT_EXEC_SLOTS, EXEC_SLOT_LEASE_MS } from "./container.ts";
import { createFairLimiter } from "./fair-limiter.ts";
import type { ShimSettings } from "../config/schema.ts";

/** How long after its first Create a daemon sweeps the socket directory (socket-sweep.ts). */
const SWEEP_DELAY_MS = 1000;
/** How often the daemon checks whether it serves nothing and should exit without a Shutdown. */
export const IDLE_CHECK_MS = 30_000;
/** containerd's environment may set another interval (ms, 1 s to 1 h), e.g. a test that must not be saved by the check. */
export const IDLE_CHECK_ENV = "CRYO_SHIM_IDLE_CHECK_MS";

/** The idle check's interval from the environment, else IDLE_CHECK_MS. */
export function idleCheckTime(env: Record<string, string | undefined>): number {
  const ms = Number(env[IDLE_CHECK_ENV] ?? "");
  return Number.isFinite(ms) && ms >= 1000 && ms <= 3_600_000 ? ms : IDLE_CHECK_MS;
}
/** How long a closed pod's daemon waits for a Shutdown after its last container's Delete before it exits anyway. */
const SEALED_EXIT_DELAY_MS = 1000;
/** How long the daemon waits for queued events at exit. */
export const EVENT_DRAIN_MS = 5000;

/** The idle linger from the environment (0 when absent or malformed). */
export function lingerTime(env: Record<string, string | undefined>): number {
  const ms = Number(env[LINGER_ENV] ?? "0");
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, 600_000) : 0;
}

/** Serves until shutdown; resolves with the exit code. */
export async function serveDaemon(flags: ShimFlags): Promise<number> {
  const log = createLogger({ level: flags.debug ? "debug" : "info", fields: { namespace: flags.namespace, pid: process.pid } });
  if (!flags.socket) {
    log.error("serve: no -socket given (the daemon is started by `start`)");
    return 1;
  }
  process.on("SIGPIPE", () => {});
  dropAddedEnv();
  // The daemon starts in the bundle of the container whose `start` launched it, which containerd removes
  // with that container while a shared daemon goes on serving others. Bun refuses to run in a deleted
  // directory ("The current working directory was deleted"): every CRIU helper and plugin runner the daemon
  // launched after that failed, so a checkpoint or restore of the group's other containers did. Every path
  // the daemon uses is absolute.
  process.chdir("/");
  // The listening socket `start` handed over: close-on-exec at once, so runc and hooks never inherit it.
  const listenFd = takeListenFd();
  if (listenFd !== undefined) setCloexec(listenFd, true);
  const reaper = createReaper();
  const forwarder = createTtrpcForwarder(flags.ttrpcAddress);
  const publisher = createPublisher(forwarder, log);
  // Checkpoint/restore consult the policy plugins of the container's config (loaded on first use, shared with admission).
  const engine = createEngine({
    reaper,
    log,
    policyFor: async (configPath) => {
      // No plugin of the config has a checkpoint or restore hook: nothing to ask, and the plugin host is not
      // loaded (7-17 ms of a daemon's first checkpoint, measured). A broken config throws its error here.
      const { config, stamp } = await (await configs()).forConfigPath(configPath);
      if (!config.plugins.some((p) => p.hooks.includes("checkpoint") || p.hooks.includes("restore"))) return undefined;
      return (policies ??= await loadPolicies()).forConfigPath(configPath, stamp);
    },
    configFor: async (configPath) => await (await configs()).forConfigPath(configPath),
    imageFor: (namespace, id) => readContainerImage(flags.address, namespace, id, log),
    containerdAddress: flags.address,
  });
  const server = createServer({ onError: (e) => log.warn(`ttrpc: ${e.message}`) });

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping = false;
  let recheck: ReturnType<typeof setTimeout> | undefined;
  // Exit is decided under the socket lock: a `start` for this group either sees the socket gone (and
  // launches a new daemon) or leaves a pending marker that keeps this one serving until its Create.
  const lingerMs = lingerTime(process.env);
  // A pod's group is never joined again once its sandbox container is deleted: then no linger.
  const seal = createGroupSeal(process.env[GROUP_KEY_ENV] ?? "");
  delete process.env[GROUP_KEY_ENV];
  // The standby for this containerd's next daemon (standby.ts), launched after the first Create with
  // containerd's environment as this daemon got it.
  const standby = takeStandbyPath();
  const standbyEnv = { ...process.env };
  delete standbyEnv[LINGER_ENV];
  let standbyDue = standby !== undefined;
  // Whether this daemon has swept the socket directory (after its first Create).
  let swept = false;
  // Whether this daemon has restored or checkpointed a container: its standby then loads the restore's modules ahead.
  let restores = false;
  const later = (ms: number, fn: () => void) => {
    clearTimeout(recheck);
    recheck = setTimeout(fn, ms);
  };
  const stop = async (why: string, force: boolean, lingered = false): Promise<void> => {
    if (stopping) return;
    let shutdown: Promise<void>;
    const unlock = await lockSocket(flags.socket);
    try {
      if (stopping) return;
      if (!force) {
        if (!service.idle()) return;
        const pending = freshPending(flags.socket);
        if (pending.length > 0) {
          log.debug("not exiting: Create pending", { containers: pending.join(",") });
          later(1000, () => void stop(why, false, lingered));
          return;
        }
        if (lingerMs > 0 && !lingered && !seal.sealed) {
          // Stay reachable a little: the next container of this group reuses the daemon.
          later(lingerMs, () => void stop(why, false, true));
          return;
        }
      }
      stopping = true;
      clearTimeout(recheck);
      clearAllPending(flags.socket);
      log.info(`shutting down: ${why}`);
      shutdown = server.shutdown(); // stops listening and removes the socket before the lock is released
    } finally {
      unlock();
    }
    try {
      await shutdown;
    } catch (err) {
      log.warn(`server shutdown: ${err instanceof Error ? err.message : String(err)}`);
    }
    await publisher.drain(EVENT_DRAIN_MS);
    forwarder.close();
    await policies?.close();
    reaper[Symbol.dispose]();
    resolveDone(0);
  };
  const requestStop = (why: string, force: boolean) =>
    void stop(why, force).catch((err) => log.error(`stop: ${err instanceof Error ? err.message : String(err)}`));

  let policies: import("../plugins/index.ts").PolicyEngines | undefined;
  // The config file, once per config path for the daemon's life; a broken one is logged once and then
  // fails every Create/Checkpoint that uses it with the same INVALID_ARGUMENT (the daemon keeps serving).
  // config-cache.ts, not the config index: the index also loads the checkpoint plan's defaults mapping.
  let configCache: Promise<import("../config/config-cache.ts").ConfigCache> | undefined;
  const configs = () =>
    (configCache ??= import("../config/config-cache.ts").then(({ createConfigCache }) => createConfigCache({}, (e) => log.error(`config error: ${e.message}`))));
  // Plugins' log lines and fail-open warnings go to the daemon's log (containerd's), with its fields.
  const loadPolicies = async () => (await import("../plugins/index.ts")).createPolicyEngines({}, { log: (level, message) => log[level](message) });
  const admitByPlugins = async (c: { id: string; namespace: string; bundle: string; configPath: string; restore: boolean }, { config, stamp }: StampedConfig) => {
    // Every plugin of the config is loaded and checked (its file, imports, and an export for each hook) at
    // the first Create that uses the config, whatever its hooks: a broken checkpoint or restore plugin fails
    // this Create, not a later checkpoint.
    const engine = (policies ??= await loadPolicies()).forConfigPath(c.configPath, stamp);
    if (!config.plugins.some((p) => p.hooks.includes("admit"))) return [];
    const { admitBundle } = await import("../plugins/index.ts");
    // The image is read through containerd only when a plugin will see it (the admitBundle calls it lazily).
    const image = () => readContainerImage(flags.address, c.namespace, c.id, log);
    return (await admitBundle(engine, { ...c, image })).changedBy;
  };
  // `runc exec` launches at once, for every container of the daemon; the daemon's config may set another number.
  const execSlots = createFairLimiter(DEFAULT_EXEC_SLOTS, { leaseMs: EXEC_SLOT_LEASE_MS });
  const applyShimSettings = (settings: ShimSettings) => {
    const want = settings.max_parallel_execs ?? DEFAULT_EXEC_SLOTS;
    if (execSlots.limit !== want) {
      execSlots.limit = want;
      log.info(`exec launches at once: ${want}`);
    }
  };
  const service = createTaskService({
    engine,
    execSlots,
    publisher,
    log,
    namespace: flags.namespace,
    defaultOptions: defaultShimOptions(),
    // No container left (task-service.ts). `now` skips the linger; the exit is still decided under the socket lock,
    // where a Create that `start` announced (a pending marker) keeps the daemon.
    onShutdown: (now) => void stop(now ? "shutdown now and no container left" : "shutdown requested and no container left", false, now).catch((err) => log.error(`stop: ${CryoError.from(err).message}`)),
    admit: async (c) => {
      // Loaded on first Create so that `start`/`delete` and daemon start-up stay light.
      // A broken config: the error logged once, thrown at every Create.
      let loaded: StampedConfig;
      let changedBy: string[];
      try {
        // The daemon's own settings come from its config (CRYO_CONFIG or /etc/cryo), read again when it changed.
        // A broken one keeps the slots as they were (its error was logged, and fails the Creates that use it).
        if (c.configPath !== "") await (await configs()).forConfigPath("").then((d) => applyShimSettings(d.config.shim), () => {});
        loaded = await (await configs()).forConfigPath(c.configPath);
        if (c.configPath === "") applyShimSettings(loaded.config.shim);
        // No plugin configured: nothing to ask, and the plugin host is not even loaded (the spec fields cryo
        // relies on are validated by the Create itself, bundle-spec.ts).
        changedBy = loaded.config.plugins.length > 0 ? await admitByPlugins(c, loaded) : [];
      } catch (err) {
        // A restore refused here (a plugin's deny, a broken config) never reaches the engine, which removes
        // containerd's extraction of the checkpoint on any other refused Create: a whole copy of the checkpoint
        // was left per refused restore (a helper session: 258 MiB for a 256 MiB memhog).
        if (c.restore) {
          const { containerdExtraction } = await import("./restore-source.ts");
          if (containerdExtraction(c.checkpoint)) rmSync(c.checkpoint, { recursive: true, force: true });
        }
        throw err;
      }
      // The checkpoint options the container would be dumped with (the config's [checkpoint] under its
      // annotations, as the admit plugins left them), resolved now: a value out of range or options that cannot
      // go together fail `ctr run`, not the checkpoint an hour later. A restore's are the checkpoint's own.
      if (!c.restore) await checkCheckpointOptions(c.bundle, loaded);
      return { changedBy };
    },
  });
  // A shared daemon's log moves with its live containers (log-follow.ts).
  const logFollower = createLogFollower(flags.bundle);
  const impl: typeof service.impl = {
    ...service.impl,
    async create(req, ctx) {
      // The id names the pending marker beside the socket: checked first (an id "../x" removed a file there).
      checkRequestIds("create", req, ctx);
      clearPending(flags.socket, req.id);
      logFollower.creating(req.bundle);
      let r: Awaited<ReturnType<typeof service.impl.create>>;
      try {
        r = await service.impl.create(req, ctx);
      } catch (err) {
        // A pod whose sandbox could not be created (runc refused its sysctls, its pause image's binary is missing):
        // CRI's RunPodSandbox fails, and no container joins this group again. As runc's shim, the daemon then exits
        // with containerd's Shutdown instead of lingering 3 s after it (a helper session, comparing the handlers).
        seal.createFailed(req.id, () => readAnnotations(req.bundle));
        if (seal.sealed && service.idle()) setTimeout(() => requestStop("the pod's sandbox was not created", false), SEALED_EXIT_DELAY_MS);
        // No container left: stop as containerd's Shutdown after a failed Create would. When the Create failed because
        // containerd went away (SIGTERMed, killed), no Shutdown comes, and the daemon stayed until its idle check
        // (30 s), while the restarted containerd, which had connected during the Create, kept a task for it that
        // answered "not found" (a helper's chaos run, seed 52).
        else if (service.idle()) requestStop(`the Create of ${req.id} failed and no container is left`, false);
        throw err;
      }
      seal.created(req.id, () => readAnnotations(req.bundle));
      logFollower.created(req.id, req.bundle);
      if (req.checkpoint !== "") restores = true;
      if (!swept) {
        swept = true;
        // Once, a second after the reply (the container's Start and IO come first): the files of daemons killed
        // after their last Delete (socket-sweep.ts), and the console sockets of daemons killed during a terminal
        // create or exec (src/sys/console-socket.ts).
        const sweep = () => {
          void sweepDeadSockets(dirname(flags.socket), flags.socket).then(
            (gone) => gone.length > 0 && log.info(`removed the socket files of dead daemons: ${gone.join(" ")}`),
            (err) => log.warn(`sweep ${dirname(flags.socket)}: ${CryoError.from(err).message}`),
          );
          const ptys = sweepConsoleSockets();
          if (ptys.length > 0) log.info(`removed the console sockets of dead daemons: ${ptys.join(" ")}`);
        };
        setTimeout(sweep, SWEEP_DELAY_MS).unref();
      }
      if (standbyDue) {
        standbyDue = false;
        // After the reply: the container's Start comes first.
        setTimeout(() => ensureStandby(standby!, standbyEnv, selfCommand(), { grpcAddress: flags.address, namespace: flags.namespace, warmRestore: restores }), 0);
      }
      return r;
    },
    // A containerd restarted in the middle of a Create loads the bundle through Connect, which is NOT_FOUND for an id
    // the daemon does not serve (task-service.ts): its Create never came, or failed when containerd went away (no
    // Shutdown follows). containerd cleans up after it (`delete`, the bundle removed). The container's pending
    // marker, or nothing, kept the daemon up until the idle check (30 s; a stale marker first, 30 s): the chaos run
    // saw such daemons after everything was removed. The daemon drops the marker and stops now when left idle.
    async connect(req, ctx) {
      try {
        return await service.impl.connect(req, ctx);
      } catch (err) {
        if (CryoError.from(err).code === Code.NOT_FOUND) {
          if (freshPending(flags.socket).includes(req.id)) clearPending(flags.socket, req.id);
          if (service.idle()) requestStop(`containerd cleans up after ${req.id}, which it does not serve`, false);
        }
        throw err;
      }
    },
    async checkpoint(req, ctx) {
      const r = await service.impl.checkpoint(req, ctx);
      restores = true;
      // A restore of this checkpoint in a daemon of its own takes the standby: it loads the restore's modules now.
      if (standby !== undefined) warmStandbyForRestore(standby);
      return r;
    },
    async delete(req, ctx) {
      const r = await service.impl.delete(req, ctx);
      if (req.execId === "") {
        seal.deleted(req.id);
        logFollower.deleted(req.id);
        // A sealed pod's last container: nothing can join and no Shutdown may come. containerd 2.x sends none
        // after deleting a container of a sandbox (its sandbox controller shuts the shim down, when it deletes the
        // sandbox's own task); when the sandbox went first (its pause killed), that Shutdown found this container
        // still here, and the daemon waited for its idle check. A second first: where a Shutdown does follow
        // (containerd 1.6 after every delete, 2.x after the sandbox's own), that one ends the daemon as usual.
        if (seal.sealed && service.idle()) setTimeout(() => requestStop("the closed pod's last container deleted", false), SEALED_EXIT_DELAY_MS);
      }
      return r;
    },
  };
  if (flags.debug) timeCalls(impl, log);
  server.register(TaskV2, impl);
  server.register(TaskV3, impl);
  if (listenFd !== undefined) {
    server.listenFd(listenFd, flags.socket); // bound and listening since `start` (start.ts)
  } else {
    rmSync(flags.socket, { force: true });
    server.listen(flags.socket, { mode: 0o600 });
  }
  log.info("serving", { socket: flags.socket });
  // The default config (CRYO_CONFIG or /etc/cryo) is checked right away, after the socket is up, so that a broken file is reported at start.
  void configs().then(
    async (c) => {
      if ((await c.check("")) === undefined) applyShimSettings((await c.forConfigPath("")).config.shim);
    },
    (err) => log.error(`config: ${CryoError.from(err).message}`),
  );
  // A daemon whose containers are gone without a Shutdown (containerd died, or a Create that
  // `start` announced never came and its marker went stale) exits on its own.
  const idleCheck = setInterval(() => {
    if (service.idle()) void stop("no container left", false, true).catch((err) => log.error(`stop: ${CryoError.from(err).message}`));
  }, idleCheckTime(process.env));
  done.then(() => clearInterval(idleCheck));
  process.on("SIGTERM", () => requestStop("SIGTERM", true));
  process.on("SIGINT", () => requestStop("SIGINT", true));
  return done;
}

/** How long a Create (or a checkpoint with plugins) waits for the image info before going on with `image: null`. */
const IMAGE_INFO_TIMEOUT_MS = 2_000;

/** The container's image through containerd's API, or null (with a warning) when it cannot be read in time. */
async function readContainerImage(address: string, namespace: string, id: string, log: ReturnType<typeof createLogger>) {
  if (address === "") return null;
  try {
    const { readImageInfo } = await import("../containerd/image-info.ts");
    return await readImageInfo({ address: address.replace(/^unix:\/\//, ""), namespace, containerId: id, timeoutMs: IMAGE_INFO_TIMEOUT_MS });
  } catch (err) {
    log.warn(`container ${id}: image info not available, plugins see image null: ${CryoError.from(err).message}`);
    return null;
  }
}

/** Logs each call's duration at debug level (the daemon runs with -debug when containerd logs at debug). */
function timeCalls(impl: Record<string, unknown>, log: ReturnType<typeof createLogger>): void {
  for (const [name, fn] of Object.entries(impl)) {
    if (typeof fn !== "function") continue;
    impl[name] = async (req: { id?: string; execId?: string }, ctx: unknown) => {
      const t = performance.now();
      try {
        return await (fn as (r: unknown, c: unknown) => Promise<unknown>)(req, ctx);
      } finally {
        log.debug(`${name} took ${(performance.now() - t).toFixed(1)} ms`, { id: req.id, exec: req.execId || undefined });
      }
    };
  }
}

/**
 * Resolves the checkpoint options a Create's container would be dumped with, and throws the INVALID_ARGUMENT a
 * checkpoint would (naming the annotation or config file that set each option). Nothing to load for a container
 * with no `cryo.checkpoint/` annotation under a config with no [checkpoint] (the usual `ctr run`).
 */
async function checkCheckpointOptions(bundle: string, loaded: LoadedConfig): Promise<void> {
  const noDefaults = Object.keys(loaded.config.checkpoint).length === 0;
  let annotations: Record<string, string>;
  try {
    // The usual Create (no such annotation, no [checkpoint]): one read and a substring search, no parse.
    if (noDefaults && !readRegularFile(join(bundle, "config.json")).toString("utf8").includes(ANNOTATION_PREFIX)) return;
    annotations = readAnnotations(bundle);
  } catch {
    return; // a missing or broken spec: the Create's own check names it (NOT_FOUND, INVALID_ARGUMENT; bundle-spec.ts)
  }
  if (noDefaults && !Object.keys(annotations).some((k) => k.startsWith(ANNOTATION_PREFIX))) return;
  const [{ resolveCheckpointPlan }, { checkpointOverrides }] = await Promise.all([import("../checkpoint/plan.ts"), import("../config/plan-defaults.ts")]);
  resolveCheckpointPlan({ defaults: checkpointOverrides(loaded.config.checkpoint), defaultsLabel: `config ${loaded.source ?? "(none)"} [checkpoint]`, annotations });
}

