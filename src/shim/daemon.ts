/**
 * The long-running shim daemon (the binary run with no action): child subreaper and reaper, the
 * events publisher, the engine, and the ttrpc server with containerd.task.v2.Task and
 * containerd.task.v3.Task on the socket `start` chose. It exits when Shutdown finds no container
 * left (or on SIGTERM/SIGINT), after answering in-flight calls and draining events.
 */
import { rmSync } from "node:fs";
import { Task as TaskV2 } from "../gen/containerd/runtime/task/v2/shim_pb.ts";
import { Task as TaskV3 } from "../gen/containerd/runtime/task/v3/shim_pb.ts";
import { createReaper } from "../sys/index.ts";
import { createServer } from "../ttrpc/index.ts";
import { createEngine } from "./engine.ts";
import { createPublisher, createTtrpcForwarder } from "./events.ts";
import type { ShimFlags } from "./flags.ts";
import { createLogger } from "./logger.ts";
import { defaultShimOptions } from "./runtime-options.ts";
import { createTaskService } from "./task-service.ts";

/** How long the daemon waits for queued events at exit. */
export const EVENT_DRAIN_MS = 5000;

/** Serves until shutdown; resolves with the exit code. */
export async function serveDaemon(flags: ShimFlags): Promise<number> {
  const log = createLogger({ level: flags.debug ? "debug" : "info", fields: { namespace: flags.namespace, pid: process.pid } });
  if (!flags.socket) {
    log.error("serve: no -socket given (the daemon is started by `start`)");
    return 1;
  }
  process.on("SIGPIPE", () => {});
  const reaper = createReaper();
  const forwarder = createTtrpcForwarder(flags.ttrpcAddress);
  const publisher = createPublisher(forwarder, log);
  const engine = createEngine({ reaper, log });
  const server = createServer({ onError: (e) => log.warn(`ttrpc: ${e.message}`) });

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`shutting down: ${why}`);
    setTimeout(async () => {
      try {
        await server.shutdown();
      } catch (err) {
        log.warn(`server shutdown: ${err instanceof Error ? err.message : String(err)}`);
      }
      await publisher.drain(EVENT_DRAIN_MS);
      forwarder.close();
      await policies?.close();
      rmSync(flags.socket, { force: true });
      reaper[Symbol.dispose]();
      resolveDone(0);
    }, 0);
  };

  let policies: import("../plugins/index.ts").PolicyEngines | undefined;
  const loadPolicies = async () => (await import("../plugins/index.ts")).createPolicyEngines();
  const service = createTaskService({
    engine,
    publisher,
    log,
    namespace: flags.namespace,
    defaultOptions: defaultShimOptions(),
    onShutdown: () => stop("shutdown requested and no container left"),
    admit: async (c) => {
      // Loaded on first Create so that `start`/`delete` and daemon start-up stay light.
      const { admitBundle } = await import("../plugins/index.ts");
      await admitBundle((policies ??= await loadPolicies()).forConfigPath(c.configPath), { ...c, image: null });
    },
  });
  server.register(TaskV2, service.impl);
  server.register(TaskV3, service.impl);
  rmSync(flags.socket, { force: true });
  server.listen(flags.socket, { mode: 0o600 });
  log.info("serving", { socket: flags.socket });
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  return done;
}
