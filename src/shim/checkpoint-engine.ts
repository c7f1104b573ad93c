/**
 * The engine's checkpoint and restore methods (ports.ts `Engine.checkpoint`, `createRestore`,
 * `startRestore`, `discardRestore`), spread into the real engine by engine.ts.
 *
 * Checkpoint: checkpoint-dump.ts in a CRIU helper process; with `exit`, a container that was paused
 * is thawed afterwards so CRIU's SIGKILL takes effect and the reaper reports the exit.
 * Restore: Create mounts the rootfs, reads and checks the checkpoint and prepares the IO (pid 0);
 * Start runs restore-container.ts with the new task's stdio and hands the restored init to the caller,
 * after telling the engine which runc manages it (so kill, ps, exec and delete go through runc).
 */
import { existsSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { readRuncState, type Runc } from "../runtime/index.ts";
import { openCgroup } from "../cgroups/open.ts"; // not the index: it would load the metrics encoder (Stats only)
import type { Criu } from "../criu/index.ts";
import { helperCommand, prejoinCriuHelper, prewarmCriuHelper, releaseJoinedCriuHelper } from "../criu/warm.ts";
import { checkpointOverrides, type CryoConfig, type RestoreDefaults } from "../config/index.ts";
import { Code, CryoError, failedPrecondition, notFound } from "../errors.ts";
import { close as closeFd } from "../sys/index.ts";
import { runcFor, writeRuntimeFile } from "./bundle-runc.ts";
import type { ImageFor, PolicyFor } from "./checkpoint-policy.ts";
import type { Logger } from "./logger.ts";
import type { PolicyEngine } from "../plugins/index.ts";
import type { CheckpointSpec, Engine, InitSpec, Launched } from "./ports.ts";
import { lazyModule } from "./lazy-module.ts";
import type { PostCopyWatch } from "./post-copy.ts";
import type { PreparedRestore } from "./restore-container.ts";
import type { RestoreSource } from "./restore-source.ts";
import { mountRootfs, unmountRootfs } from "./rootfs.ts";
import { holdOutputReader, prepareIo, terminalIo, type PreparedIo } from "./stdio.ts";
import { readBundleSpec } from "./bundle-spec.ts";
import { callerAbortReason, isCallerGone } from "./cancel.ts";
import { outputWasPipe } from "./checkpoint-stdio.ts";
import { markRestoring, recordExtraction, recordRestoreCgroups, recordRestoreCgroupsPath, unmarkRestoring } from "./orphaned-criu.ts";
import { VERSION_WITH_REVISION } from "./version.ts";

// Loaded on first use, not with this module: a restore's Create needs neither. The CRIU client brings zod's
// CriuOpts schema (CRIU's stats protobufs it loads during its first call: a daemon's first protobuf descriptor
// boots descriptor.proto's, 8-25 ms measured in a compiled scratch binary); a restore loads it between
// Create's reply and Start.
const criuModule = lazyModule("the CRIU client (src/criu/client.ts)", () => import("../criu/client.ts"));
const dumpModule = lazyModule("the checkpoint dump (src/shim/checkpoint-dump.ts)", () => import("./checkpoint-dump.ts"));
// Each side loads only its own: a daemon's first checkpoint does not load the restore's modules, nor a restore the dump's.
const postCopyModule = lazyModule("the post-copy watch (src/shim/post-copy.ts)", () => import("./post-copy.ts"));
const restoreModule = lazyModule("the restore (src/shim/restore-container.ts)", () => import("./restore-container.ts"));
// What a restore's Create needs before it answers: the checkpoint's reading and checks (restore-source.ts). The rest of
// the restore (restoreModule) loads after the answer.
const sourceModule = lazyModule("the restore's checkpoint reader (src/shim/restore-source.ts)", () => import("./restore-source.ts"));

/**
 * Loads what a restore's Create and Start load (the checkpoint reader, the restore, the CRIU client), ahead of any
 * restore: a standby daemon that is likely to serve one does it while idle (standby-main.ts). In a new daemon these
 * modules are 25-35 ms of evaluation between Create's answer and the CRIU call, on the restore's critical path.
 */
export async function preloadRestoreModules(): Promise<void> {
  await Promise.all([sourceModule(), restoreModule(), criuModule()]);
}

/** cryo's version as recorded in checkpoints. */
export const CRYO_CHECKPOINT_VERSION = VERSION_WITH_REVISION;

/** The checkpoint/restore part of the engine. */
export type CheckpointEngine = Required<Pick<Engine, "checkpoint" | "createRestore" | "startRestore" | "discardRestore" | "cancelRestore" | "restoreConnected">> & {
  /**
   * Stops a post-copy dump still serving the container's pages (post-copy.ts), because the container is
   * signalled or deleted; resolves once CRIU is gone and the tree is let go (at most a few seconds).
   */
  stopServing(id: string, reason: string): Promise<void>;
};

/** What the checkpoint engine needs from the engine that embeds it. */
export interface CheckpointEngineDeps {
  log: Logger;
  /** A restored container is now runc's to manage; with killAllOnExit (no PID namespace of its own), its other processes end with its init. */
  adopt(id: string, runc: Runc, init?: { pid: number; killAllOnExit: boolean; notifySocket?: string }): void;
  /** The CRIU client (default: helper processes of this binary). */
  criu?: Criu;
  /** The policy plugins for a config path (checkpoint and restore hooks); none: no plugins. */
  policyFor?: PolicyFor;
  /** The config file for a runtime options' config path (checkpoint defaults, restore settings); throws its INVALID_ARGUMENT. */
  /** The config file for a config path (read again when it changed), and where it was found (null: none). */
  configFor?: (configPath: string) => Promise<{ source: string | null; config: CryoConfig }>;
  /** A container's image through containerd (the checkpoint hook's input, recorded in the metadata); none: image null. */
  imageFor?: ImageFor;
  /** containerd's address (the shim's -address): recorded in a local-pages entry, for `cryo pages prune`. */
  containerdAddress?: string;
}

interface PendingRestore {
  spec: InitSpec & { checkpoint: string };
  source: RestoreSource;
  /** The prepared IO; none for a terminal task (its pty master comes from CRIU at Start). */
  io: PreparedIo | undefined;
  restore: RestoreDefaults | undefined;
  /** Start has begun. */
  started?: boolean;
  /** Aborts the running restore of a Start (cancelRestore). */
  abort?: AbortController;
  /** Worked out between Create's reply and Start (see createRestore). */
  prepared?: PreparedRestore;
  policy?: Promise<PolicyEngine | undefined>;
  /** containerd's Connect came (restoreConnected): the work ahead of Start may begin. */
  connected?: () => void;
}

/**
 * How long the work ahead of a restore's Start waits for containerd's Connect (containerd 1.6 and 2.x send it right
 * after Create, from the Create of their own task service, which answers its client only then).
 */
const CONNECT_WAIT_MS = 20;

/**
 * containerd makes the directory of a Checkpoint under its temp dir (`ctd-checkpoint*` in 1.6, `ctrd-checkpoint*` in
 * 2.x; read in their services/tasks) and removes it when the call returns. A containerd that went away during the
 * dump (restarted: its connection closed, which aborts the dump) never will: what CRIU wrote there (up to the
 * container's memory) is removed here instead. Only this Checkpoint's own directory: the path containerd gave it.
 */
function discardOrphanedCheckpointDir(spec: CheckpointSpec, log: Logger): void {
  if (!spec.signal?.aborted || !isCallerGone(spec.signal.reason) || !/^ct(r)?d-checkpoint/.test(basename(spec.path))) return;
  try {
    rmSync(spec.path, { recursive: true, force: true });
    log.warn(`checkpoint container ${spec.id}: containerd went away during the dump: its checkpoint directory ${spec.path} removed`);
  } catch (err) {
    log.warn(`checkpoint container ${spec.id}: remove ${spec.path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Creates the checkpoint/restore methods. */
export function createCheckpointEngine(deps: CheckpointEngineDeps): CheckpointEngine {
  let criu: Criu | undefined = deps.criu;
  // Warm helpers: after a CRIU call (and at a restore's Create, before its Start) the next helper is
  // started ahead, saving its start (a Bun process, 100-300 ms here) on the next call.
  // One client, also when the first calls overlap (its warm and joined helpers are its own); a failed load is tried again next time.
  let criuLoading: Promise<Criu> | undefined;
  const criuClient = async (): Promise<Criu> =>
    criu ??
    (criuLoading ??= criuModule().then(
      (m) => (criu = m.createCriu({ warm: true })),
      (err: unknown) => {
        criuLoading = undefined;
        throw err;
      },
    ));
  // The client's own prewarm, or (client not loaded yet) warm.ts's, whose helper the client then takes.
  const prewarm = () => (criu ? criu.prewarm() : prewarmCriuHelper());
  // Likewise for a restore's cgroups, joined by the warm helper before the client may have loaded.
  const prejoin = (dirs: string[]) => (criu ? criu.prejoin?.(dirs) : prejoinCriuHelper(helperCommand(), dirs));
  const releaseJoin = (dirs: string[]) => (criu ? criu.releaseJoin?.(dirs) : releaseJoinedCriuHelper(helperCommand(), dirs));
  let version: Promise<number> | undefined;
  const criuVersion = () => {
    version ??= criuClient().then((c) => c.version());
    version.catch(() => (version = undefined));
    return version;
  };
  const pending = new Map<string, PendingRestore>();
  // Post-copy dumps still serving pages after their Checkpoint answered, by container id.
  const serving = new Map<string, PostCopyWatch>();
  // Lazy restores whose lazy-pages daemon still brings pages in, by container id: settles when it is done.
  const filling = new Map<string, Promise<void>>();

  return {
    async checkpoint(spec: CheckpointSpec) {
      prewarm(); // the dump's helper starts while the modules load and the options, plugins and stdio are worked out
      // A container whose lazy restore is still filling has pages that are not in its memory yet: CRIU would dump
      // the tree without them, and the checkpoint would restore corrupt (a helper session: 38,910 of 262,153 pages
      // of a 1 GiB memhog, which then died of SIGSEGV; the dump's log showed nothing wrong). Its daemon brings the
      // rest in also while the tree is frozen (containerd pauses first): the dump waits for it.
      const fill = filling.get(spec.id);
      if (fill) {
        deps.log.info(`checkpoint container ${spec.id}: waiting for its lazy restore to bring every page in first`);
        await untilSettledOrAborted(fill, spec.signal, `checkpoint container ${spec.id}`);
      }
      const [loaded, { dumpContainer }, client] = await Promise.all([deps.configFor?.(spec.options.configPath), dumpModule(), criuClient()]);
      const outcome = await dumpContainer({
        id: spec.id,
        bundle: spec.bundle,
        namespace: spec.namespace,
        runcRoot: spec.options.root,
        path: spec.path,
        request: spec.request,
        defaults: loaded ? checkpointOverrides(loaded.config.checkpoint) : undefined,
        ...(loaded?.source ? { defaultsLabel: `config ${loaded.source} [checkpoint]` } : {}),
        paused: spec.paused,
        criu: client,
        criuVersion,
        cryoVersion: CRYO_CHECKPOINT_VERSION,
        log: deps.log,
        policyFor: deps.policyFor,
        configPath: spec.options.configPath,
        image: deps.imageFor ? () => deps.imageFor!(spec.namespace, spec.id) : undefined,
        ...(spec.signal ? { signal: spec.signal } : {}),
        ...(spec.killNow ? { killNow: spec.killNow } : {}),
        ...(deps.containerdAddress ? { containerdAddress: deps.containerdAddress } : {}),
      }).catch((err: unknown) => {
        discardOrphanedCheckpointDir(spec, deps.log);
        throw err;
      });
      if (outcome.serving) {
        const { watchPostCopy, postCopyTimeoutMs } = await postCopyModule();
        const watch = watchPostCopy({
          id: spec.id,
          pid: outcome.metadata?.pid ?? 0,
          serving: outcome.serving,
          networkLock: outcome.plan.networkLock,
          ...(outcome.plan.statusPath !== undefined ? { statusPath: outcome.plan.statusPath } : {}),
          timeoutMs: postCopyTimeoutMs(process.env),
          log: deps.log,
          thaw: async () => {
            if (spec.isPaused?.()) return;
            const state = readRuncState(spec.options.root, spec.id);
            await (await openCgroup({ runcCgroupPaths: state.cgroup_paths })).thaw();
          },
        });
        serving.set(spec.id, watch);
        void watch.ended.then(() => serving.get(spec.id) === watch && serving.delete(spec.id));
      }
      if (!outcome.leftRunning && spec.paused) {
        // CRIU killed the tree (or, post-copy, will once the pages are sent), but a frozen task dies only once thawed.
        try {
          const state = readRuncState(spec.options.root, spec.id);
          await (await openCgroup({ runcCgroupPaths: state.cgroup_paths })).thaw();
        } catch (err) {
          deps.log.warn(`checkpoint ${spec.id}: thaw after exit: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      // A post-copy source is not stopped yet: it serves its pages, frozen, and runs on if no restore takes them (its
      // exit, once CRIU ends it, comes from the reaper). The container takes it as left running (containerd's Resume
      // after the checkpoint does what it did before).
      return { leftRunning: outcome.leftRunning || outcome.serving !== undefined };
    },

    async createRestore(spec) {
      try {
        const restore = (await deps.configFor?.(spec.options.configPath))?.config.restore;
        prewarm(); // Start follows: its CRIU helper starts now, beside Create's own work
        const { readRestoreSource, containerdExtraction } = await sourceModule();
        const source = await readRestoreSource(spec.checkpoint);
        // A terminal task gets the pty CRIU makes for the restored tree (orphan pts master), so the checkpoint needs one.
        if (spec.stdio.terminal && !source.metadata.stdio.terminal) throw failedPrecondition(`restore container ${spec.id}`, { detail: "the task has a terminal but the checkpointed container had none" });
        writeRuntimeFile(spec.bundle, spec.options);
        let mounted = false;
        try {
          if (spec.rootfs.length > 0) {
            await mountRootfs(spec.bundle, spec.rootfs);
            mounted = true;
          }
          // A task whose output was a pipe gets pipes again, copied into its FIFOs (checkpoint-stdio.ts outputWasPipe).
          const copyOutput = outputWasPipe(source.descriptors, source.metadata.stdio.criuKeys);
          const io = spec.stdio.terminal ? undefined : await prepareIo(spec.stdio, { id: spec.id, namespace: spec.namespace, log: deps.log, copyOutput, holdOutput: copyOutput, bundle: spec.bundle });
          // For `delete` after this daemon died: the container's cgroups and processes are the restore's, and
          // containerd's extraction of the checkpoint is removed (cleanup.ts).
          markRestoring(spec.bundle);
          if (containerdExtraction(spec.checkpoint)) recordExtraction(spec.bundle, spec.checkpoint);
          const entry: PendingRestore = { spec, source, io, restore };
          pending.set(spec.id, entry);
          // Start comes after containerd's own round trips (15-30 ms here), in which the daemon would sit idle: the
          // rest of the restore's modules are loaded (6-25 ms of evaluation, which Create paid before its answer), the
          // bundle's spec and the checkpoint's runc state are validated (zod's first parses are slow), the
          // container's cgroups made and joined by the waiting CRIU helper (the join is 10-15 ms of the kernel's;
          // done at Start, the CRIU call waited for it), and the policy plugins loaded then, after Create's reply.
          // A failure here is left to Start, which does the work again (also when Start came first: it then loads the
          // modules itself); discardRestore undoes the cgroups.
          // It begins once containerd's Connect is answered (or after CONNECT_WAIT_MS without one): containerd answers
          // its client's Create only after that Connect, and this work (20-50 ms that hold the event loop) made it
          // wait; now containerd's round trips to Start run beside it.
          let begin: (() => void) | undefined = () => {
            begin = undefined;
            clearTimeout(fallback);
            setImmediate(prepareAhead);
          };
          const fallback = setTimeout(() => begin?.(), CONNECT_WAIT_MS);
          entry.connected = () => begin?.();
          const prepareAhead = async () => {
            if (pending.get(spec.id) !== entry || entry.started) return;
            let restoreParts: Awaited<ReturnType<typeof restoreModule>>;
            try {
              restoreParts = await restoreModule();
            } catch {
              return; // Start reports it
            }
            if (pending.get(spec.id) !== entry || entry.started) return;
            const { prepareRestore, startRestoreCgroups } = restoreParts;
            try {
              const prepared = prepareRestore(spec.id, spec.bundle, source, spec.options.root, spec.namespace);
              // A runc container of this id already there fails Start; its cgroups are left alone.
              if (!existsSync(join(spec.options.root, spec.id, "state.json"))) {
                if (prepared.cgroupsPath !== undefined) recordRestoreCgroupsPath(spec.bundle, prepared.cgroupsPath);
                prepared.cgroups = startRestoreCgroups(prepared, prejoin);
                recordRestoreCgroups(spec.bundle, prepared.cgroups.before, prepared.cgroupsPath);
              }
              entry.prepared = prepared;
            } catch {
              // Start reports it
            }
            if (deps.policyFor) {
              entry.policy = deps.policyFor(spec.options.configPath);
              entry.policy.catch(() => {});
            }
            criuClient().catch(() => {}); // a failed load is retried (and reported) at Start
          };
        } catch (err) {
          if (mounted) await unmountRootfs(spec.bundle);
          throw err;
        }
      } catch (err) {
        // containerd extracted the checkpoint for this Create and never removes the copy: a refused Create leaves
        // nothing behind, as a failed Start does (discardRestore). Seen: 65 MiB left per refused restore.
        const { containerdExtraction } = await sourceModule();
        if (containerdExtraction(spec.checkpoint)) rmSync(spec.checkpoint, { recursive: true, force: true });
        throw err;
      }
    },

    restoreConnected(id) {
      pending.get(id)?.connected?.();
    },

    async startRestore(id): Promise<Launched> {
      const p = pending.get(id);
      if (!p) throw notFound(`container ${id}`, { detail: "no checkpoint to restore" });
      p.started = true;
      const abort = new AbortController();
      p.abort = abort;
      const policyFor = deps.policyFor;
      const early = p.policy;
      const slot = (s: number | "ignore" | undefined) => (s === "ignore" ? undefined : s);
      const { restoreContainer, containerdExtraction } = await restoreModule();
      // A terminal task: its output FIFO's reader before the restored tree can write, held until terminalIo opened the
      // FIFO (holdOutputReader; a task without one waited at Create, in prepareIo).
      let outHold = p.spec.stdio.terminal ? await holdOutputReader(p.spec.stdio.stdout, deps.log) : -1;
      const releaseOut = () => {
        if (outHold >= 0) closeFd(outHold);
        outHold = -1;
      };
      const restored = await restoreContainer({
        id,
        bundle: p.spec.bundle,
        runcRoot: p.spec.options.root,
        source: p.source,
        stdio: [slot(p.io?.stdio[0]), slot(p.io?.stdio[1]), slot(p.io?.stdio[2])],
        criu: await criuClient(),
        log: deps.log,
        namespace: p.spec.namespace,
        // The plugins loaded ahead, or (that load failed or never ran) loaded now.
        policyFor: policyFor && (early ? (configPath) => early.catch(() => policyFor(configPath)) : policyFor),
        configPath: p.spec.options.configPath,
        restore: p.restore,
        prepared: p.prepared,
        terminal: p.spec.stdio.terminal,
        signal: abort.signal,
        removeSource: containerdExtraction(p.source.dir),
      }).catch((err: unknown) => {
        // The failed restore undid its cgroups and killed their helper: a Start tried again makes them anew.
        p.prepared = undefined;
        releaseOut();
        throw err;
      });
      pending.delete(id);
      unmarkRestoring(p.spec.bundle); // runc has the container's state now
      let bundleSpec: ReturnType<typeof readBundleSpec> = { killAllOnExit: false };
      try {
        bundleSpec = readBundleSpec(p.spec.bundle);
      } catch (err) {
        deps.log.warn(`restored container ${id}: its spec: ${CryoError.from(err).message}`); // read and checked before the restore
      }
      const init = { pid: restored.pid, killAllOnExit: bundleSpec.killAllOnExit };
      deps.adopt(id, runcFor(p.spec.bundle, p.spec.options), bundleSpec.notifySocket !== undefined ? { ...init, notifySocket: bundleSpec.notifySocket } : init);
      deps.log.info(`restored container ${id}`, { pid: restored.pid, criuMs: Math.round(restored.criuMs), lazyPagesPid: restored.lazyPagesPid, ...restored.stats });
      if (restored.lazyPagesExited) {
        const done = restored.lazyPagesExited;
        filling.set(id, done);
        void done.then(() => {
          if (filling.get(id) === done) filling.delete(id);
        });
      }
      if (p.io && restored.ptsMaster === undefined) return { pid: restored.pid, io: await p.io.launched() };
      // The checkpointed tree had a terminal, and its stdio is CRIU's new pty whatever the new task asked for (ctr
      // cannot ask for a terminal at restore). So the task's IO is the pty's: stdout FIFO <- master <- stdin FIFO,
      // as for a terminal task; the pipes prepared for a task without one are not used (released once terminalIo
      // holds the stdout FIFO: a reader left without a writer for a moment would read EOF). (Undrained, the tree
      // would block once the pty's buffer is full; closed, it would get a hangup.)
      // CRIU's new pty master goes into the same copy path as a console socket's (stdout FIFO <- master <- stdin FIFO, resize).
      const master = restored.ptsMaster!;
      try {
        return { pid: restored.pid, io: terminalIo(master, p.spec.stdio, deps.log) };
      } catch (err) {
        closeFd(master);
        throw err;
      } finally {
        p.io?.abort();
        releaseOut();
      }
    },

    async stopServing(id, reason) {
      const watch = serving.get(id);
      if (!watch) return;
      watch.stop(reason);
      await Promise.race([watch.ended, Bun.sleep(5_000)]);
    },

    cancelRestore(id, reason) {
      const p = pending.get(id);
      if (!p?.abort || p.abort.signal.aborted) return false;
      deps.log.warn(`restore container ${id}: cancelled: ${reason}`);
      p.abort.abort(new CryoError(Code.CANCELLED, `restore container ${id}: cancelled: ${reason}`));
      return true;
    },

    async discardRestore(id) {
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      p.io?.abort();
      unmarkRestoring(p.spec.bundle);
      // Nothing restores from containerd's extraction of the image any more (containerd leaves it).
      const { containerdExtraction } = await restoreModule();
      if (containerdExtraction(p.source.dir)) rmSync(p.source.dir, { recursive: true, force: true });
      const cgroups = p.prepared?.cgroups;
      if (!cgroups) return;
      try {
        await (await restoreModule()).discardRestoreCgroups(cgroups, releaseJoin, { runcRoot: p.spec.options.root, id });
      } catch (err) {
        deps.log.warn(`restore container ${id}: discard: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
  };
}

/** Waits for p, or throws the caller's abort reason (its deadline, its connection, a SIGKILL Kill) first. */
async function untilSettledOrAborted(p: Promise<void>, signal: AbortSignal | undefined, what: string): Promise<void> {
  if (!signal) return await p;
  signal.throwIfAborted();
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason instanceof CryoError ? signal.reason : callerAbortReason(what, signal));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([p, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
