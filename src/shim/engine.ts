/**
 * The real Engine: runc for the lifecycle, the reaper for exits, src/cgroups for freeze, stats,
 * update and OOM, mount(8) for the rootfs containerd asks for, stdio.ts for IO.
 *
 * Files the engine keeps in the bundle: `init.pid` (runc's pid file), `log.json` (runc's log),
 * `cryo-runtime.json` (runc binary and root, so that `delete` after a dead shim can clean up),
 * `.exec-<id>.pid` for exec processes (removed after use).
 */
import { existsSync, lstatSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Code, CryoError, fsError, notFound } from "../errors.ts";
// open.ts, not the index: the index would bring metrics.ts and resources.ts (lazy below) into the daemon's start-up.
import type { CgroupManager } from "../cgroups/manager.ts";
import { openCgroup } from "../cgroups/open.ts";
import { checkExecProcessShape, isRuncShimFailure, readPidFile, readRuncState, type Runc } from "../runtime/index.ts";
import { processEnd, readProcStat, type Reaper } from "../sys/index.ts";
import { runcFor } from "./bundle-runc.ts";
import { checkSystemdCgroup, readBundleSpec, SYSTEMD_RUNNING_DIR } from "./bundle-spec.ts";
import { writeRuntimeFile } from "./runtime-file.ts";
import type { CheckpointEngine, CheckpointEngineDeps } from "./checkpoint-engine.ts";
import type { PolicyFor } from "./checkpoint-policy.ts";
import { lazyModule } from "./lazy-module.ts";
import type { Logger } from "./logger.ts";
import type { ContainerMetrics, Engine, ExecSpec, InitSpec, Launched } from "./ports.ts";
import { mountRootfs, unmountRootfs } from "./rootfs.ts";
import type { ShimOptions } from "./runtime-options.ts";
import { prepareIo } from "./stdio.ts";
import { forwardNotify, type NotifyForwarder } from "./notify-forward.ts";
import { pidsInNamespaceTree, procReader } from "./pid-ns.ts";
import { awaitInitExec, INIT_EXEC_WAIT_MS } from "./init-exec.ts";

/** containerd's answer when a signal finds the process gone ("process already finished", NOT_FOUND). */
function killError(err: unknown, label: string): CryoError {
  const e = CryoError.from(err);
  if (e.code === Code.FAILED_PRECONDITION && /not running/i.test(e.message)) return notFound(label, { detail: "process already finished", cause: e });
  return e;
}

// Loaded on first use (lazy-module.ts): Stats needs the metrics protobufs, Update the resources schema;
// a plain create/start/delete needs neither, and every container's Create waits for a new daemon.
const metricsModule = lazyModule("the cgroup metrics encoder (src/cgroups/metrics.ts)", () => import("../cgroups/metrics.ts"));
const resourcesModule = lazyModule("the cgroup resources parser (src/cgroups/resources.ts)", () => import("../cgroups/resources.ts"));
const checkpointModule = lazyModule("checkpoint/restore (src/shim/checkpoint-engine.ts)", () => import("./checkpoint-engine.ts"));

/**
 * Makes runc's root (the runtime options' root and the namespace) as runc makes it (0700), before runc runs: a root
 * option naming a file or a FIFO, or below one, was runc's UNKNOWN "mkdir /x/fifo: not a directory" (found by
 * bench/ttrpc-fuzz.ts); now FAILED_PRECONDITION naming that part (fsError).
 */
function ensureRuncRoot(root: string): void {
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fsError(`runc root ${root}`, err, root);
  }
}

/** Creates the engine over a reaper. */
export function createEngine(deps: { reaper: Reaper; log: Logger; policyFor?: PolicyFor; configFor?: CheckpointEngineDeps["configFor"]; imageFor?: CheckpointEngineDeps["imageFor"]; containerdAddress?: string }): Engine {
  /** One runc driver per container (its log is <bundle>/log.json). */
  const runcs = new Map<string, Runc>();
  const cgroups = new Map<string, CgroupManager>();
  /** Init pids of containers without their own PID namespace -> container id. */
  const killAllOnExit = new Map<number, string>();
  /** Containers with a PID namespace of their own (created or restored by this daemon). */
  const ownPidNs = new Set<string>();
  /** Containers created with a host sd_notify socket (bundle-spec.ts NOTIFY_ANNOTATION), from Create to Start: the socket and the init's pid. */
  const notifyPending = new Map<string, { socket: string; pid: number }>();
  /** Containers started by this daemon whose init's execve nobody has waited for yet (startInit, freeze): id -> init pid. */
  const execPending = new Map<string, number>();
  /** Their forwarders (notify-forward.ts), from Start (or the restore) to Delete. */
  const forwarders = new Map<string, NotifyForwarder>();
  const startForwarding = (id: string, root: string, hostSocket: string, pid: number) => {
    forwarders.get(id)?.stop();
    forwarders.set(id, forwardNotify({ socketPath: join(root, id, "notify", "notify.sock"), hostSocket, pid, log: deps.log, label: `container ${id}` }));
  };
  const runcOf = (id: string): Runc => {
    const r = runcs.get(id);
    if (!r) throw notFound(`container ${id}`, { detail: "not created by this shim" });
    return r;
  };

  /**
   * Sends signal to each process of the container's cgroup that is in its init's PID namespace tree. The cgroup is
   * frozen meanwhile, as runc's `kill --all` does: a process forked between the listing and the signals would
   * escape it (a helper session: 4 to 7 of a forking loop's children outlived `ctr task kill -a -s TERM`). A cgroup
   * that was frozen (paused) stays frozen: the signals wait for the resume (runc thaws it, and containerd then still
   * says PAUSED). An init already gone took its namespace with it: nothing to signal.
   */
  async function signalContainerProcesses(id: string, options: ShimOptions, initPid: number, signal: number): Promise<void> {
    const ns = procReader.pidNs(initPid);
    if (ns === undefined) return;
    const cgroup = await cgroupOf(id, options);
    const paused = (await cgroup.state()) === "frozen";
    if (!paused) await cgroup.freeze();
    try {
      for (const pid of pidsInNamespaceTree(await cgroup.pids(), ns)) {
        try {
          process.kill(pid, signal);
        } catch (err) {
          if ((err as { code?: string }).code !== "ESRCH") throw err;
        }
      }
    } finally {
      if (!paused) await cgroup.thaw();
    }
  }

  async function cgroupOf(id: string, options: ShimOptions): Promise<CgroupManager> {
    let cg = cgroups.get(id);
    if (!cg) {
      const state = readRuncState(options.root, id);
      cg = await openCgroup({ runcCgroupPaths: state.cgroup_paths });
      cgroups.set(id, cg);
    }
    return cg;
  }

  // Checkpoint and restore (checkpoint-engine.ts, with src/criu and src/checkpoint) load on first use: most
  // daemons never checkpoint, and every container's start waits for its daemon's start-up.
  // One checkpoint engine per daemon, also when the first calls overlap; a failed load is tried again next time.
  let checkpointEngine: CheckpointEngine | undefined;
  let loading: Promise<CheckpointEngine> | undefined;
  const ckpt = () =>
    (loading ??= checkpointModule().then(
      (m) => (checkpointEngine = m.createCheckpointEngine({ log: deps.log, adopt: (id, runc, init) => {
          runcs.set(id, runc);
          if (init?.killAllOnExit) killAllOnExit.set(init.pid, id);
          else if (init) ownPidNs.add(id);
          // A restored process's sd_notify socket (the restore made runc's directory for it when the checkpoint had one).
          if (init?.notifySocket !== undefined && existsSync(join(runc.root, id, "notify"))) {
            try {
              startForwarding(id, runc.root, init.notifySocket, init.pid);
            } catch (err) {
              deps.log.warn(`restored container ${id}: sd_notify socket: ${CryoError.from(err).message}`);
            }
          }
        }, policyFor: deps.policyFor, configFor: deps.configFor, imageFor: deps.imageFor, containerdAddress: deps.containerdAddress })),
      (err: unknown) => {
        loading = undefined;
        throw err;
      },
    ));

  return {
    // A restored container is then managed by runc like any other.
    checkpoint: async (spec) => (await ckpt()).checkpoint(spec),
    createRestore: async (spec) => (await ckpt()).createRestore(spec),
    startRestore: async (id) => (await ckpt()).startRestore(id),
    discardRestore: (id) => checkpointEngine?.discardRestore(id),
    restoreConnected: (id) => checkpointEngine?.restoreConnected(id),
    cancelRestore: (id, reason) => checkpointEngine?.cancelRestore(id, reason) ?? false,
    async createInit(spec: InitSpec): Promise<Launched> {
      const { bundle, id, options } = spec;
      const bundleSpec = readBundleSpec(bundle, { terminal: spec.stdio.terminal });
      checkSystemdCgroup(options.systemdCgroup, bundleSpec.cgroupsPath, () => lstatSync(SYSTEMD_RUNNING_DIR, { throwIfNoEntry: false })?.isDirectory() === true);
      ensureRuncRoot(options.root);
      const runc = runcFor(bundle, options);
      writeRuntimeFile(bundle, options);
      let mounted = false;
      let io: Awaited<ReturnType<typeof prepareIo>> | undefined;
      try {
        if (spec.rootfs.length > 0) {
          await mountRootfs(bundle, spec.rootfs);
          mounted = true;
        }
        io = await prepareIo(spec.stdio, { id, namespace: spec.namespace, log: deps.log, bundle });
        const pidFile = join(bundle, "init.pid");
        await runc.create(id, bundle, {
          pidFile,
          stdio: io.stdio,
          consoleSocket: io.consoleSocket?.path,
          noPivot: options.noPivotRoot,
          noNewKeyring: options.noNewKeyring,
          ...(bundleSpec.notifySocket !== undefined ? { notifySocket: bundleSpec.notifySocket } : {}),
        });
        const pid = readPidFile(pidFile);
        if (bundleSpec.notifySocket !== undefined) {
          notifyPending.set(id, { socket: bundleSpec.notifySocket, pid });
        }
        const pio = await io.launched();
        runcs.set(id, runc);
        if (bundleSpec.killAllOnExit) killAllOnExit.set(pid, id);
        else ownPidNs.add(id);
        return { pid, io: pio };
      } catch (err) {
        io?.abort();
        if (mounted) await unmountRootfs(bundle);
        throw err;
      }
    },

    async startInit(id, _options, pid) {
      const runc = runcOf(id);
      const notify = notifyPending.get(id);
      notifyPending.delete(id);
      // The container's socket is bound before its process runs, so that nothing it sends is lost.
      if (notify) startForwarding(id, runc.root, notify.socket, notify.pid);
      await runc.start(id);
      // runc start returns before its init's execve is through (init-exec.ts). Start answers at once, as runc's shim
      // does: a third of the time under load the execve was still under way, and waiting for it here cost every
      // `ctr run` up to ~8 ms. What must not meet runc init waits for it instead: the first freeze (a Pause, which
      // containerd's checkpoints begin with: a frozen runc init would never exec, and CRIU cannot dump runc's
      // executable) and a checkpoint (checkpoint-dump.ts).
      execPending.set(id, pid);
    },

    checkExecProcess: (id, process) => checkExecProcessShape(id, process),
    async exec(spec: ExecSpec): Promise<Launched> {
      const { id, execId } = spec;
      const runc = runcOf(id);
      const pidFile = join(spec.bundle, `.exec-${execId}.pid`);
      // A binary:// logger of an exec gets the exec's own id as CONTAINER_ID, as with containerd's runc shim.
      const io = await prepareIo(spec.stdio, { id: execId, namespace: spec.namespace, log: deps.log, copyOutput: true, bundle: spec.bundle });
      try {
        const launch = () => runc.exec(id, spec.process as never, { pidFile, stdio: io.stdio, consoleSocket: io.consoleSocket?.path });
        await (spec.slot ? spec.slot(launch) : launch());
        const pid = readPidFile(pidFile);
        return { pid, io: await io.launched() };
      } catch (err) {
        io.abort();
        // runc's own failure goes out as containerd's runc shim words it ("OCI runtime exec failed: ..."): containerd
        // names the exec around it (CRI: `failed to start exec "<id>": OCI runtime exec failed: ...`), and the exec's
        // id in front of it again was cryo's alone. Any other failure (the exec's IO) names the exec.
        const e = CryoError.from(err);
        throw isRuncShimFailure("exec", e.message) ? e : e.wrap(`exec ${execId}`);
      } finally {
        rmSync(pidFile, { force: true });
      }
    },

    async kill(id, options, target, signal, all) {
      if (!target.init) {
        try {
          process.kill(target.pid, signal);
        } catch (err) {
          if ((err as { code?: string }).code === "ESRCH") throw notFound(`process ${target.pid}`, { detail: "process already finished" });
          throw err;
        }
        return;
      }
      // `kill --all` after the init of a container with its own PID namespace exited: the kernel killed every process
      // of that namespace with its init, so nothing of the container is left. runc would signal every process in the
      // container's cgroup, which can be another container's too: `ctr containers restore` under a new name keeps the
      // spec's cgroupsPath, and `ctr task rm -f` of the copy (containerd kills with --all) killed the original, with
      // runc's shim as with cryo (seen here; a helper session's churn first).
      if (all && target.exited && ownPidNs.has(id)) return;
      // A post-copy source still held by CRIU's page server (ptrace-stopped) would neither take the signal
      // nor report its exit (a traced task's exit goes to its tracer first): the page server is stopped first.
      await checkpointEngine?.stopServing(id, `signal ${signal} sent to the container`);
      try {
        // `kill --all` of a running container with its own PID namespace: only its processes (pid-ns.ts), not all of
        // its cgroup's, which may be a running original's too (the copy's `ctr task rm -f` killed it, as with runc's
        // shim). SIGKILL to init ends every process of the namespace (the kernel kills them with it; runc thaws a
        // paused container for it); another signal goes to each of the container's processes.
        if (all && ownPidNs.has(id)) {
          if (signal === 9) {
            // An init that died but is not reaped yet took its namespace with it: nothing left (as `--all` found).
            await runcOf(id)
              .kill(id, signal, { all: false })
              .catch((err: unknown) => {
                if (killError(err, `container ${id}`).code !== Code.NOT_FOUND) throw err;
              });
          } else await signalContainerProcesses(id, options, target.pid, signal);
          return;
        }
        await runcOf(id).kill(id, signal, { all });
      } catch (err) {
        throw killError(err, `container ${id}`);
      }
    },

    async deleteInit(id, bundle, options) {
      await checkpointEngine?.stopServing(id, "container deleted");
      try {
        await (runcs.get(id) ?? runcFor(bundle, options)).delete(id, { force: true, cwd: bundle });
      } catch (err) {
        if (CryoError.from(err).code !== Code.NOT_FOUND) throw err;
      }
      cgroups.delete(id);
      runcs.delete(id);
      ownPidNs.delete(id);
      execPending.delete(id);
      notifyPending.delete(id);
      forwarders.get(id)?.stop();
      forwarders.delete(id);
      await unmountRootfs(bundle);
    },

    async pids(id, options) {
      const runc = runcOf(id);
      // The container's cgroup tree's cgroup.procs, read here, as `runc ps` reads them: the same list without a runc
      // process per call (a `runc ps` took 40-117 ms median on this machine under load; CRI's PodSandboxStats asks
      // every container's Pids). The cgroup may hold a running original's processes too (a copy restored under a new
      // name shares its cgroup): a container with its own PID namespace lists only its own (pid-ns.ts).
      const pids = await (await cgroupOf(id, options)).pids();
      if (!ownPidNs.has(id)) return pids;
      const ns = procReader.pidNs(readRuncState(runc.root, id).init_process_pid);
      return ns === undefined ? pids : pidsInNamespaceTree(pids, ns);
    },

    async waitExit(pid) {
      const e = await deps.reaper.watch(pid);
      const id = killAllOnExit.get(pid);
      if (id !== undefined) {
        // No PID namespace of its own: init's exit does not end the other processes; end them first.
        killAllOnExit.delete(pid);
        await runcs
          .get(id)
          ?.kill(id, 9, { all: true })
          .catch((err) => deps.log.debug(`kill --all after init exit of ${id}: ${CryoError.from(err).message}`));
      }
      return { status: e.status, exitedAt: e.exitedAt };
    },

    processEnded(pid) {
      // Gone, a zombie, or on its way out (PF_EXITING: its namespaces, mountinfo among them, may be gone already).
      return readProcStat(pid) === undefined || processEnd(pid) !== undefined;
    },

    async freeze(id, options) {
      const pid = execPending.get(id);
      if (pid !== undefined) {
        execPending.delete(id);
        // At most INIT_EXEC_WAIT_MS: an execve held longer (a seccomp agent's notify) is frozen as it is, and a
        // checkpoint of it is then refused (checkpoint-dump.ts).
        if (!(await awaitInitExec(pid))) deps.log.warn(`pause container ${id}: its init (pid ${pid}) is still runc init ${INIT_EXEC_WAIT_MS} ms after runc start returned (its execve is held up); frozen so`);
      }
      await (await cgroupOf(id, options)).freeze();
    },

    async thaw(id, options) {
      await (await cgroupOf(id, options)).thaw();
    },

    async stats(id, options): Promise<ContainerMetrics> {
      const { packMetrics } = await metricsModule();
      const any = packMetrics(await (await cgroupOf(id, options)).stats());
      return { typeUrl: any.typeUrl, value: any.value };
    },

    async update(id, options, resources) {
      const { parseLinuxResources } = await resourcesModule();
      const r = parseLinuxResources(resources); // parsed with its 64-bit integers exact (task-service parseJsonAny)
      await (await cgroupOf(id, options)).update(r);
    },

    async watchOom(id, options, onOom) {
      const w = (await cgroupOf(id, options)).watchOom(() => onOom());
      return () => w[Symbol.dispose]();
    },
  };
}
