/**
 * The standby process (standby.ts): loads the daemon's modules, listens on its standby socket, and waits.
 * The first request it gets makes it that container's daemon: it binds the container's socket, moves into
 * the bundle with the bundle's `log` FIFO as stdout and stderr, answers `start` with its pid and, once
 * `start` confirms, rewrites its command line to the daemon's (so `ps` and containerd's tools find the
 * container's shim by its -id) and serves as if `start` had launched it. A `start` that hangs up instead
 * (it gave up waiting) leaves the socket to the daemon it launched: the standby removes only the socket it
 * bound, and exits. Not taken within its idle time, or on SIGTERM, it exits.
 */
import { constants as fsc, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as z from "zod/mini";
import { close, dup2, listenUnixSocket, setProcTitle } from "../sys/index.ts";
import { unixSocketServed } from "../sys/unix-connect.ts";
import { LISTEN_FD_ENV } from "./daemon-env.ts";
import { parseShimFlags } from "./flags.ts";
import { fileIdOf, REQUEST_ENV, STANDBY_PATH_ENV, STANDBY_WARM_ENV, standbyMarker, standbyMs, WARM_RESTORE_LINE, type StandbyRequest } from "./standby.ts";

const requestSchema = z.object({
  socket: z.string().check(z.minLength(2), z.startsWith("/")),
  cwd: z.string().check(z.minLength(1), z.startsWith("/")),
  argv: z.array(z.string()),
  env: z.record(z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/)), z.string()),
});

/** Runs the standby at path; resolves with the exit code (the daemon's, once taken). */
export async function runStandby(path: string): Promise<number> {
  const idleMs = standbyMs(process.env);
  const warmForRestore = process.env[STANDBY_WARM_ENV] === "restore";
  delete process.env[STANDBY_WARM_ENV];
  // Everything a daemon loads before it serves (daemon.ts and what it imports), what its first Create loads
  // (the config cache), and the protobuf codecs of its calls and events.
  const [{ serveDaemon }, { warmDaemonCodecs }] = await Promise.all([import("./daemon.ts"), import("./warm-codecs.ts"), import("../config/config-cache.ts")]);
  warmDaemonCodecs();
  // The restore's modules too, once a daemon of this containerd has restored or checkpointed a container (it says so
  // in the environment it launches this standby with, or on this socket later): ~1.3 MiB more heap in this process,
  // paid only where restores happen, and 25-35 ms less on a restore's critical path when it serves one.
  let restoreModules: Promise<string | undefined> | undefined;
  const loadRestoreModules = (): Promise<string | undefined> =>
    (restoreModules ??= import("./checkpoint-engine.ts").then(
      (m) => m.preloadRestoreModules().then(() => undefined),
      (err: unknown) => {
        restoreModules = undefined; // the daemon loads (and reports) them on first use
        return err instanceof Error ? err.message : String(err);
      },
    ));
  if (warmForRestore) await loadRestoreModules();
  // Another standby listening here already: it stays, this one leaves (a file nothing listens on is replaced).
  if (await unixSocketServed(path)) {
    rmSync(standbyMarker(path), { force: true });
    return 0;
  }
  let taken: ((r: Taken) => void) | undefined;
  const request = new Promise<Taken | undefined>((resolve) => {
    taken = resolve;
    setTimeout(() => resolve(undefined), idleMs).unref();
    process.once("SIGTERM", () => resolve(undefined));
  });
  const buffers = new Map<object, string>();
  // The caller's confirmation ("go") of a request being served, by connection; a hang-up is a no.
  const goes = new Map<object, (go: boolean) => void>();
  let listener: ReturnType<typeof Bun.listen>;
  try {
    rmSync(path, { force: true });
    listener = Bun.listen({
      unix: path,
      socket: {
        close(socket) {
          buffers.delete(socket);
          goes.get(socket)?.(false);
        },
        data(socket, chunk) {
          const buffered = (buffers.get(socket) ?? "") + new TextDecoder().decode(chunk);
          buffers.set(socket, buffered);
          const go = goes.get(socket);
          if (go) {
            if (buffered.includes("\n")) go(buffered.startsWith("go\n"));
            return;
          }
          const nl = buffered.indexOf("\n");
          if (nl < 0) return;
          buffers.set(socket, "");
          // A daemon's hint that a restore is likely (warmStandbyForRestore): not a request. Answered once the modules
          // are in ("loaded", or "loaded before" when they were already, or being loaded, before this hint).
          if (buffered.slice(0, nl) === WARM_RESTORE_LINE) {
            if (!taken) return void socket.end(`${JSON.stringify({ error: "taken" })}\n`);
            const before = restoreModules !== undefined;
            void loadRestoreModules().then((failed) => socket.end(`${JSON.stringify(failed === undefined ? { warm: before ? "loaded before" : "loaded" } : { error: `restore modules: ${failed}` })}\n`));
            return;
          }
          // One request is served; any other connection finds the standby taken.
          if (!taken) return void socket.end(`${JSON.stringify({ error: "taken" })}\n`);
          let parsed: StandbyRequest;
          try {
            parsed = checkStandbyRequest(JSON.parse(buffered.slice(0, nl)));
          } catch (err) {
            return void socket.end(`${JSON.stringify({ error: `bad request: ${err instanceof Error ? err.message : String(err)}` })}\n`);
          }
          const confirmed = new Promise<boolean>((resolve) => goes.set(socket, resolve));
          const take = taken;
          taken = undefined;
          take({ req: parsed, reply: (text) => socket.write(`${text}\n`), confirmed, hangUp: () => socket.end() });
        },
      },
    });
  } finally {
    rmSync(standbyMarker(path), { force: true });
  }
  const ownFile = fileIdOf(path);
  const t = await request;
  listener.stop(false);
  if (fileIdOf(path) === ownFile) rmSync(path, { force: true });
  if (!t) return 0;
  const { req } = t;
  let bound: string | undefined;
  try {
    process.chdir(req.cwd);
    // Only what the request sets: the path of the next standby is the caller's to give (none for a daemon that
    // must not launch one).
    delete process.env[STANDBY_PATH_ENV];
    Object.assign(process.env, req.env);
    const fd = listenUnixSocket(req.socket, { mode: 0o600 });
    bound = fileIdOf(req.socket);
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
    t.reply(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    t.hangUp();
    return 1;
  }
  t.reply(JSON.stringify({ pid: process.pid }));
  // The caller gave up meanwhile (and may have launched a daemon on the socket): leave, with only our socket.
  if (!(await t.confirmed)) {
    if (bound !== undefined && fileIdOf(req.socket) === bound) rmSync(req.socket, { force: true });
    return 1;
  }
  t.hangUp();
  setProcTitle([process.execPath, ...req.argv]);
  return await serveDaemon(parseShimFlags(req.argv, process.env, req.cwd));
}

/** A request being served: what to become, how to answer, and whether the caller confirmed. */
interface Taken {
  req: StandbyRequest;
  reply(text: string): void;
  confirmed: Promise<boolean>;
  hangUp(): void;
}

/** Validates a request: its shape, only the per-daemon variables, and a socket that is argv's -socket. */
export function checkStandbyRequest(value: unknown): StandbyRequest {
  const req = requestSchema.parse(value);
  const extra = Object.keys(req.env).filter((k) => !REQUEST_ENV.has(k));
  if (extra.length > 0) throw new Error(`environment variables ${extra.join(", ")} are not a daemon's own`);
  const i = req.argv.indexOf("-socket");
  if (i < 0 || req.argv[i + 1] !== req.socket) throw new Error("socket is not the -socket of argv");
  return req;
}
