/**
 * The standby process (standby.ts): loads the daemon's modules, listens on its standby socket, and waits.
 * The first request it gets makes it that container's daemon: it binds the container's socket, moves into
 * the bundle with the bundle's `log` FIFO as stdout and stderr, answers `start` with its pid, rewrites its
 * command line to the daemon's (so `ps` and containerd's tools find the container's shim by its -id) and
 * serves as if `start` had launched it. Not taken within its idle time, or on SIGTERM, it exits.
 */
import { constants as fsc, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setPriority } from "node:os";
import * as z from "zod/mini";
import { close, dup2, listenUnixSocket, setProcTitle } from "../sys/index.ts";
import { LISTEN_FD_ENV } from "./daemon-env.ts";
import { parseShimFlags } from "./flags.ts";
import { canConnect } from "./start.ts";
import { standbyMarker, standbyMs, type StandbyRequest } from "./standby.ts";

const requestSchema = z.object({
  socket: z.string().check(z.minLength(2), z.startsWith("/")),
  cwd: z.string().check(z.minLength(1), z.startsWith("/")),
  argv: z.array(z.string()),
  env: z.record(z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/)), z.string()),
});

/** Runs the standby at path; resolves with the exit code (the daemon's, once taken). */
export async function runStandby(path: string): Promise<number> {
  const idleMs = standbyMs(process.env);
  // It boots while the container that launched it is being started: at the lowest CPU priority, so that it
  // takes only what that container's runc and daemon leave. Taken, it runs as any daemon (priority 0), which
  // needs CAP_SYS_NICE: without it the standby keeps its priority throughout.
  const canRenice = canRaisePriority();
  const renice = (value: number) => {
    try {
      if (canRenice) setPriority(value);
    } catch {
      // refused (a seccomp filter, say): the priority stays
    }
  };
  renice(19);
  // Everything a daemon loads before it serves (daemon.ts and what it imports), what its first Create loads
  // (the config cache), and the protobuf codecs of its calls and events.
  const [{ serveDaemon }, { warmDaemonCodecs }] = await Promise.all([import("./daemon.ts"), import("./warm-codecs.ts"), import("../config/config-cache.ts")]);
  warmDaemonCodecs();
  let taken: ((r: StandbyRequest) => void) | undefined;
  const request = new Promise<StandbyRequest | undefined>((resolve) => {
    taken = resolve;
    setTimeout(() => resolve(undefined), idleMs).unref();
    process.once("SIGTERM", () => resolve(undefined));
  });
  let replyTo: ((text: string) => void) | undefined;
  const buffers = new Map<object, string>();
  let listener: ReturnType<typeof Bun.listen> | undefined;
  // Another standby listening here already: it stays, this one leaves (a file nothing listens on is replaced).
  if (await canConnect(path)) {
    rmSync(standbyMarker(path), { force: true });
    return 0;
  }
  try {
    rmSync(path, { force: true });
    listener = Bun.listen({
      unix: path,
      socket: {
        close(socket) {
          buffers.delete(socket);
        },
        data(socket, chunk) {
          const buffered = (buffers.get(socket) ?? "") + new TextDecoder().decode(chunk);
          buffers.set(socket, buffered);
          const nl = buffered.indexOf("\n");
          if (nl < 0) return;
          // One request is served; any other connection finds the standby taken.
          if (!taken) return void socket.end(`${JSON.stringify({ error: "taken" })}\n`);
          let parsed: StandbyRequest;
          try {
            parsed = requestSchema.parse(JSON.parse(buffered.slice(0, nl)));
          } catch (err) {
            return void socket.end(`${JSON.stringify({ error: `bad request: ${err instanceof Error ? err.message : String(err)}` })}\n`);
          }
          replyTo = (text) => socket.end(`${text}\n`);
          const take = taken;
          taken = undefined;
          take(parsed);
        },
      },
    });
  } finally {
    rmSync(standbyMarker(path), { force: true });
  }
  const req = await request;
  listener.stop(false);
  rmSync(path, { force: true });
  if (!req) return 0;
  try {
    process.chdir(req.cwd);
    Object.assign(process.env, req.env);
    const fd = listenUnixSocket(req.socket, { mode: 0o600 });
    process.env[LISTEN_FD_ENV] = String(fd);
    try {
      const log = openSync(join(req.cwd, "log"), fsc.O_WRONLY | fsc.O_NONBLOCK);
      dup2(log, 1);
      dup2(log, 2);
      close(log);
    } catch {
      // no log FIFO (not started by containerd): the daemon logs nowhere, as one `start` launches
    }
  } catch (err) {
    replyTo?.(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    return 1;
  }
  renice(0);
  replyTo?.(JSON.stringify({ pid: process.pid }));
  setProcTitle([process.execPath, ...req.argv]);
  return await serveDaemon(parseShimFlags(req.argv, process.env, req.cwd));
}

/** CAP_SYS_NICE (bit 23) among this process's effective capabilities: a nice value can be lowered again. */
function canRaisePriority(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 23n)) !== 0n;
  } catch {
    return false;
  }
}
