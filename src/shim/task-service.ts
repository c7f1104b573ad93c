/**
 * The task service: containerd.task.v2.Task (and the same methods as containerd.task.v3.Task),
 * the only place where API messages become internal types and back. Every method finds its
 * container, then hands plain values to Container, whose serial queue orders the work.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { checkpointOptionsFromAny } from "../checkpoint/request-options.ts";
import { alreadyExists, CryoError, failedPrecondition, invalidArgument, notFound } from "../errors.ts";
import { ProcessDetailsSchema } from "../gen/containerd/runc/options/oci_pb.ts";
import type { Task } from "../gen/containerd/runtime/task/v2/shim_pb.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import { parsePreciseJson } from "../sys/precise-json.ts";
import type { CallContext, ServiceImpl } from "../ttrpc/index.ts";
import { unlessCallerGone } from "./cancel.ts";
import { Container, DEFAULT_EXEC_SLOTS, type ContainerDeps } from "./container.ts";
import { createFairLimiter } from "./fair-limiter.ts";
import { pseudoFsOf } from "./pseudo-fs.ts";
import { terminalMismatch } from "./terminal-check.ts";
import { checkIdentifier } from "./identifiers.ts";
import type { ProcessState } from "./process-state.ts";
import type { ShimProcess } from "./process.ts";
import { decodeShimOptions, type ShimOptions } from "./runtime-options.ts";
import { SHIM_VERSION } from "./version.ts";

export { SHIM_VERSION } from "./version.ts";

/** The service's methods, as protobuf-es names them. */
export type TaskServiceImpl = ServiceImpl<(typeof Task)["method"]>;

/** What the task service needs beside the container deps. */
export interface TaskServiceDeps extends ContainerDeps {
  /** The namespace from the daemon's command line (used when a call carries none). */
  namespace: string;
  /** Options the daemon was started with (from `start`'s stdin); Create's own options win. */
  defaultOptions: ShimOptions;
  /** Called by Shutdown when the daemon may exit (no container left); `now`: without its idle linger. */
  onShutdown(now: boolean): void;
  /** Policy admission at Create, before anything is created (throws PERMISSION_DENIED on a deny); none = admit all. */
  admit?(c: { id: string; namespace: string; bundle: string; configPath: string; restore: boolean; checkpoint: string }): Promise<{ changedBy: string[] } | void>;
}

/** The task service and the daemon-level view of its containers. */
export interface TaskService {
  readonly impl: TaskServiceImpl;
  /** Containers being served. */
  readonly containers: ReadonlyMap<string, Container>;
  /** True when no container is served or being created (the daemon may exit). */
  idle(): boolean;
}

/** SIGRTMAX on Linux: the largest signal number. */
export const MAX_SIGNAL = 64;

/** Go's zero time.Time (0001-01-01T00:00:00Z) as a protobuf Timestamp. */
export const GO_ZERO_TIME = { seconds: -62135596800n, nanos: 0 } as const;

const statusOf: Record<ProcessState, Status> = {
  created: Status.CREATED,
  restoring: Status.CREATED,
  running: Status.RUNNING,
  paused: Status.PAUSED,
  stopped: Status.STOPPED,
  deleted: Status.STOPPED,
};

function packAny(typeUrl: string, value: Uint8Array): Any {
  return create(AnySchema, { typeUrl, value });
}

function parseJsonAny(any: Any | undefined, what: string): Record<string, unknown> {
  if (!any || any.value.length === 0) throw invalidArgument(what, { detail: "missing" });
  let v: unknown;
  try {
    v = parsePreciseJson(new TextDecoder().decode(any.value)); // an rlimit's RLIM_INFINITY, a 64-bit limit: exact
  } catch (err) {
    throw invalidArgument(what, { cause: err, detail: "not valid JSON" });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalidArgument(what, { detail: "not a JSON object" });
  return v as Record<string, unknown>;
}

/**
 * The largest LinuxResources an Update may carry (JSON bytes). What containerd's CRI sends is the spec's resources with
 * the new limits, about 1 KB; 1000 device rules and 1000 block-device throttles with every hugepage size make 105 KiB.
 * A bigger one is refused before it is parsed: parsing and validating 1.6 MB of device rules took 240 ms of the event
 * loop every container of the daemon shares (bench/update-validate.ts).
 */
export const MAX_UPDATE_RESOURCES_BYTES = 256 * 1024;

/** An Update's resources as a JSON object: INVALID_ARGUMENT, before any parsing, for more than MAX_UPDATE_RESOURCES_BYTES. */
export function updateResources(any: Any | undefined, id: string): Record<string, unknown> {
  const size = any?.value.length ?? 0;
  if (size > MAX_UPDATE_RESOURCES_BYTES) {
    throw invalidArgument(`container ${id} resources`, { detail: `${size} bytes; an Update's LinuxResources may be at most ${MAX_UPDATE_RESOURCES_BYTES} (a real one is a few KB)` });
  }
  return parseJsonAny(any, `container ${id} resources`);
}

/**
 * Checks a request's container id, exec id (when it names one; always for Exec) and the namespace of its metadata
 * against containerd's identifier rule (identifiers.ts), before anything else reads them: INVALID_ARGUMENT.
 */
export function checkRequestIds(method: string, req: { id?: unknown; execId?: unknown }, ctx: CallContext): void {
  if (ctx.namespace !== undefined) checkIdentifier("namespace", ctx.namespace);
  if (typeof req.id === "string") checkIdentifier("container id", req.id);
  if (typeof req.execId === "string" && (req.execId !== "" || method === "exec")) checkIdentifier("exec id", req.execId);
}

/** The path fields of the task API's requests (Create, Exec, Checkpoint), and those of Create's rootfs mounts. */
const PATH_FIELDS = ["bundle", "stdin", "stdout", "stderr", "checkpoint", "parentCheckpoint", "path"] as const;

/**
 * INVALID_ARGUMENT for a path field of a request, or a field of a rootfs mount, with a NUL byte: no file has one, and
 * node's file calls threw ERR_INVALID_ARG_VALUE, which came back UNKNOWN (an exec's stdout path, at its Start: found by
 * bench/ttrpc-fuzz.ts).
 */
export function checkRequestPaths(req: Record<string, unknown>): void {
  const nul = (field: string, v: unknown) => {
    if (typeof v === "string" && v.includes("\0")) throw invalidArgument(`${field} ${JSON.stringify(v)}`, { detail: "has a NUL byte" });
  };
  for (const f of PATH_FIELDS) nul(f, req[f]);
  // A FIFO path (not a URI) is resolved against the daemon's directory, "/", shared by all its containers (containerd's
  // runc shim runs in the bundle): relative, it named a FIFO below "/". containerd always sends absolute ones.
  for (const f of ["stdin", "stdout", "stderr"] as const) {
    const v = req[f];
    if (typeof v === "string" && v !== "" && !v.startsWith("/") && (f === "stdin" || !v.includes("://"))) {
      throw invalidArgument(`${f} ${JSON.stringify(v)}`, { detail: "a relative FIFO path; give an absolute path" });
    }
  }
  if (Array.isArray(req.rootfs)) {
    for (const m of req.rootfs as { type?: unknown; source?: unknown; target?: unknown; options?: unknown }[]) {
      nul("rootfs mount type", m.type);
      nul("rootfs mount source", m.source);
      nul("rootfs mount target", m.target);
      if (Array.isArray(m.options)) for (const o of m.options) nul("rootfs mount option", o);
    }
  }
}


/** A bundle's real path (links resolved), or its normalised path when it cannot be resolved (not there). */
function realBundle(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/** Creates the task service over the container deps. */
export function createTaskService(input: TaskServiceDeps): TaskService {
  // One set of exec slots for every container of the daemon (container.ts startExec).
  const deps: TaskServiceDeps = { ...input, execSlots: input.execSlots ?? createFairLimiter(DEFAULT_EXEC_SLOTS) };
  const containers = new Map<string, Container>();
  // Creates in progress, by id: a Delete that comes meanwhile waits for its Create (see delete).
  const creating = new Map<string, Promise<unknown>>();
  // The Deletes of inits under way, by container id (see connect).
  const deleting = new Map<string, Promise<unknown>>();
  // The real paths of the bundles of the containers served and being created, by id (see create).
  const bundles = new Map<string, string>();

  const get = (id: string): Container => {
    const c = containers.get(id);
    if (!c) throw notFound(`container ${id}`);
    return c;
  };
  const ns = (ctx: CallContext) => ctx.namespace ?? deps.namespace;
  // A process that has not exited: Go's zero time, as containerd's runc shim sends it (its time.Time{} as a Timestamp).
  // Left unset, containerd 2.x reads 1970-01-01 (Timestamp.AsTime of nil), where 1.6 read the zero time.
  const exitTime = (p: ShimProcess) => p.exit?.exitedAt ?? GO_ZERO_TIME;

  const impl: TaskServiceImpl = {
    async create(req, ctx) {
      // The id was checked by checkRequestIds (an empty one too: `container id: invalid argument: empty`).
      if (!req.bundle) throw invalidArgument(`container ${req.id}`, { detail: "bundle path is empty" });
      // The daemon's directory is "/" and shared by every container it serves (as for Checkpoint's path below): a
      // relative bundle or checkpoint was read from below "/". containerd always sends absolute paths.
      if (!req.bundle.startsWith("/")) throw invalidArgument(`container ${req.id}`, { detail: `bundle path ${JSON.stringify(req.bundle)} is relative; give an absolute path` });
      if (req.checkpoint !== "" && !req.checkpoint.startsWith("/")) {
        throw invalidArgument(`container ${req.id}`, { detail: `checkpoint path ${JSON.stringify(req.checkpoint)} is relative; give an absolute path` });
      }
      const checkpointOn = req.checkpoint !== "" ? pseudoFsOf(req.checkpoint) : undefined;
      if (checkpointOn !== undefined) {
        throw invalidArgument(`container ${req.id}`, { detail: `checkpoint path ${JSON.stringify(req.checkpoint)} is on ${checkpointOn}, not a checkpoint` });
      }
      if (containers.has(req.id) || creating.has(req.id)) throw alreadyExists(`container ${req.id}`);
      // Decoded before the bundle is recorded as this container's: options that do not decode (INVALID_ARGUMENT) left
      // the bundle recorded for ever, and every later Create with it was refused as another container's.
      const requested = req.options && req.options.typeUrl !== "" ? decodeShimOptions(req.options) : deps.defaultOptions;
      // A bundle is one container's: runc's pid file, log and cryo-runtime.json, the rootfs mount and admission's
      // rewrite of config.json all live there. A second Create with a served container's bundle (also through a link)
      // wrote over that container's files and, at its Delete, unmounted that container's rootfs.
      const bundle = realBundle(req.bundle);
      for (const [other, b] of bundles) if (b === bundle) throw failedPrecondition(`container ${req.id}`, { detail: `bundle ${req.bundle} is container ${other}'s` });
      bundles.set(req.id, bundle);
      // runc's state lives under <root>/<namespace>, as with containerd's runc shim: the same id in two namespaces never collides.
      const options = { ...requested, root: join(requested.root, ns(ctx)) };
      const made = (async () => {
        const admitted = await deps.admit?.({ id: req.id, namespace: ns(ctx), bundle: req.bundle, configPath: options.configPath, restore: req.checkpoint !== "", checkpoint: req.checkpoint });
        const changedBy = admitted?.changedBy ?? [];
        const c = await Container.create(
          {
            id: req.id,
            bundle: req.bundle,
            namespace: ns(ctx),
            rootfs: req.rootfs.map((m) => ({ type: m.type, source: m.source, target: m.target, options: [...m.options] })),
            stdio: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
            options,
            ...(req.checkpoint !== "" ? { checkpoint: req.checkpoint } : {}),
          },
          deps,
        ).catch((err: unknown) => {
          // What runc or the restore refused may be a plugin's change (a memory limit of 1 byte, a cpuset that does
          // not exist): the error says whose changes the spec carried.
          if (changedBy.length === 0) throw err;
          const e = CryoError.from(err);
          throw new CryoError(e.code, `${e.message} (the spec carried changes of admission plugin${changedBy.length > 1 ? "s" : ""} ${changedBy.join(", ")})`, { cause: e });
        });
        containers.set(req.id, c);
        return { pid: c.init.pid };
      })();
      creating.set(req.id, made);
      try {
        return await made;
      } finally {
        creating.delete(req.id);
        if (!containers.has(req.id)) bundles.delete(req.id);
      }
    },

    async start(req, ctx) {
      const c = get(req.id);
      const restoring = req.execId === "" && c.init.state === "restoring";
      try {
        // A restore is cancelled when the caller gives up (its deadline, its connection): see Container.start.
        return { pid: await c.start(req.execId, ctx.signal) };
      } catch (err) {
        // containerd logs nothing of a failed Start or Checkpoint; the daemon's log says what failed and why.
        if (restoring) deps.log.warn(`restore container ${req.id} failed: ${CryoError.from(err).message}`);
        throw err;
      }
    },

    async delete(req) {
      // containerd deletes a task whose Create it gave up on (its client went away): while that Create still runs
      // here, the Delete waits for it, then deletes what it made. Before, it answered NOT_FOUND at once, and the
      // Create then left a container no one would delete, keeping its FIFOs open and its daemon up (a helper
      // session's churn: 3 of 98 `ctr run --rm` killed around Create).
      const pending = creating.get(req.id);
      if (pending && req.execId === "") await pending.catch(() => {});
      const c = get(req.id);
      const deleted = c.delete(req.execId);
      if (req.execId === "") deleting.set(req.id, deleted);
      try {
        const r = await deleted;
        if (req.execId === "") {
          containers.delete(req.id);
          bundles.delete(req.id);
        }
        return { pid: r.pid, exitStatus: r.exit.status, exitedAt: r.exit.exitedAt };
      } finally {
        if (deleting.get(req.id) === deleted) deleting.delete(req.id);
      }
    },

    async state(req) {
      const c = get(req.id);
      const p = c.process(req.execId);
      // A running exec of a paused container is paused with it (containerd's runc shim reports the container's state).
      const paused = p !== c.init && p.state === "running" && c.init.state === "paused";
      return {
        id: req.execId === "" ? req.id : req.execId,
        bundle: c.config.bundle,
        pid: p.pid,
        status: paused ? Status.PAUSED : statusOf[p.state],
        stdin: p.stdio.stdin,
        stdout: p.stdio.stdout,
        stderr: p.stdio.stderr,
        terminal: p.stdio.terminal,
        exitStatus: p.exit?.status ?? 0,
        exitedAt: exitTime(p),
        execId: req.execId,
      };
    },

    async pids(req) {
      const list = await get(req.id).pids();
      return {
        processes: list.map(({ pid, execId }) => ({
          pid,
          info: execId === undefined ? undefined : packAny("containerd.runc.v1.ProcessDetails", toBinary(ProcessDetailsSchema, create(ProcessDetailsSchema, { execId }))),
        })),
      };
    },

    async pause(req, ctx) {
      await get(req.id).pause(ctx.signal);
      return {};
    },

    async resume(req, ctx) {
      await get(req.id).resume(ctx.signal);
      return {};
    },

    async checkpoint(req, ctx) {
      const c = get(req.id);
      if (!req.path) throw invalidArgument(`checkpoint container ${req.id}`, { detail: "path is empty" });
      // The daemon's directory is "/" and shared by every container it serves: a relative path was dumped below "/".
      // containerd always sends an absolute one, as for the work, image and status paths of the options.
      if (!req.path.startsWith("/")) throw invalidArgument(`checkpoint container ${req.id}`, { detail: `path ${JSON.stringify(req.path)} is relative; give an absolute path` });
      const pseudo = pseudoFsOf(req.path);
      if (pseudo !== undefined) throw invalidArgument(`checkpoint container ${req.id}`, { detail: `path ${JSON.stringify(req.path)} is on ${pseudo}; give a directory of a real file system` });
      // Only request-options.ts of src/checkpoint is loaded with the daemon (its protobufs are the runtime
      // options' own); the rest, with src/criu, loads with the engine's checkpoint code on first use.
      try {
        // The dump is cancelled when the caller gives up (a deadline: `ctr --timeout`, CRI's CheckpointContainer timeout).
        await c.checkpoint(req.path, checkpointOptionsFromAny(req.options), ctx.signal);
      } catch (err) {
        deps.log.warn(`checkpoint container ${req.id} failed: ${CryoError.from(err).message}`);
        throw err;
      }
      return {};
    },

    async kill(req) {
      // runc's driver refused it for the init alone: an exec's kill(2), and `all` of a container with its own PID
      // namespace (each of its processes signalled), failed with node's bare EINVAL (UNKNOWN).
      if (req.signal > MAX_SIGNAL) throw invalidArgument(`kill signal ${req.signal}`, { detail: `signals are 1 to ${MAX_SIGNAL} (0 checks that the process is there)` });
      await get(req.id).kill(req.execId, req.signal, req.all);
      return {};
    },

    async exec(req) {
      const c = get(req.id);
      const spec = parseJsonAny(req.spec, `exec ${req.execId} process spec`);
      terminalMismatch(`exec ${req.execId}`, req.terminal === true, spec.terminal === true);
      await c.addExec(req.execId, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal }, spec);
      return {};
    },

    async resizePty(req) {
      const p = get(req.id).process(req.execId);
      // An exec created but not started has no IO yet: nothing to resize, as runc's shim answers (a stopped process's
      // IO is gone too: runc's shim refuses that one, "cannot resize a stopped container").
      if (!p.io) {
        if (p.state === "stopped") throw failedPrecondition(`resize ${p.label}`, { detail: "it has stopped" });
        return {};
      }
      p.io.resize(req.width, req.height);
      return {};
    },

    async closeIO(req) {
      const p = get(req.id).process(req.execId);
      if (req.stdin) p.closeStdin();
      return {};
    },

    async update(req, ctx) {
      const c = get(req.id);
      const resources = updateResources(req.resources, req.id);
      await c.update(resources, ctx.signal);
      return {};
    },

    async wait(req, ctx) {
      const p = get(req.id).process(req.execId);
      // A caller gone (its connection closed, its deadline passed) is answered by no one: the call ends then, not
      // when the process exits, or every abandoned Wait kept its request, context and connection until then (a peer
      // that sent 100,000 Waits and closed left the daemon 300 MiB bigger each time).
      const st = await unlessCallerGone(p.exited, ctx.signal, `wait for ${p.label}`);
      return { exitStatus: st.status, exitedAt: st.exitedAt };
    },

    async stats(req) {
      const m = await get(req.id).stats();
      return { stats: packAny(m.typeUrl, m.value) };
    },

    // NOT_FOUND for an id this daemon neither serves nor is creating (runc's shim answers with task pid 0). A
    // containerd that restarts loads every bundle it finds through Connect, and a bundle whose Create it gave up on
    // (it stopped mid-Create) names a shared daemon that lives on for its other containers: answered, it became a
    // task containerd kept for ever (hidden from `ctr task ls`, its id refused: "already exists"). Refused, containerd
    // runs the shim's `delete` and removes the bundle.
    // A Connect for a container whose Delete is under way is answered once that Delete is over: a containerd killed
    // during its `ctr task rm` (the Delete waits for its /tasks/delete event) and restarted connected to it meanwhile,
    // and kept a task the daemon then no longer served ("container ID: not found" to every call) until the daemon
    // exited (a helper's chaos run, seed 62).
    async connect(req) {
      await deleting.get(req.id)?.catch(() => {});
      const c = containers.get(req.id);
      if (!c && !creating.has(req.id)) throw notFound(`container ${req.id}`);
      if (c?.config.checkpoint !== undefined && c.init.pid === 0) deps.engine.restoreConnected?.(req.id);
      return { shimPid: process.pid, taskPid: c?.init.pid ?? 0, version: SHIM_VERSION };
    },

    // Ignored while a container is served or being created, `now` or not, as containerd's runc shim does (its
    // Shutdown returns at once while s.containers is not empty). Before, `now` ended the daemon under its containers:
    // any peer of the socket could leave them without a shim (no exits reported, no IO copied).
    async shutdown(req) {
      if (containers.size === 0 && creating.size === 0) deps.onShutdown(req.now);
      return {};
    },
  };
  // Every method checks its request's identifiers and paths first (checkRequestIds, checkRequestPaths).
  const checked = Object.fromEntries(
    Object.entries(impl).map(([name, fn]) => [
      name,
      async (req: { id?: unknown; execId?: unknown }, ctx: CallContext) => {
        checkRequestIds(name, req, ctx);
        checkRequestPaths(req as Record<string, unknown>);
        return await (fn as (r: unknown, c: CallContext) => Promise<unknown>)(req, ctx);
      },
    ]),
  ) as unknown as TaskServiceImpl;
  return { impl: checked, containers, idle: () => containers.size === 0 && creating.size === 0 };
}
