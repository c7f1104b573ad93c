/**
 * The `start` action: decide which daemon serves the container (grouping), start it if none
 * serves yet, write the `address` file into the bundle atomically, and print the address (legacy
 * handshake) or a BootstrapResult (containerd 2.x) on stdout and nothing else.
 *
 * The daemon is started detached (its own session, stdin /dev/null, stdout and stderr on the
 * bundle's `log` FIFO that containerd reads) because containerd reads `start`'s stdout and stderr
 * until EOF. As containerd's runc shim does, `start` binds and listens on the socket itself and hands
 * the listening descriptor to the daemon (fd 3), then returns without waiting for the daemon to load:
 * containerd's first call waits in the socket's backlog until the daemon accepts it. Two `start`s for the same group,
 * and a daemon deciding to exit, serialize on a lock file next to the socket (flock; socket-lock.ts).
 */
import { readRegularFile } from "../sys/regular-file.ts";
import { chmodSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, constants as fsc, closeSync } from "node:fs";
import { join } from "node:path";
import * as z from "zod/mini"; // light at every `start` (flags.ts)
import { invalidArgument, unavailable } from "../errors.ts";
import { daemonEnv, LISTEN_FD_ENV } from "./daemon-env.ts";
import { daemonArgs, type ShimFlags } from "./flags.ts";
import { DEFAULT_SOCKET_DIR, SOCKET_DIR_ENV, binaryIdentity, groupKey, keyedByBinary, resolveGrouping, socketAddress, socketPath } from "./grouping.ts";
import { GROUP_KEY_ENV } from "./grouping-seal.ts";
import type { StartInput } from "./handshake.ts";
import { LINGER_ENV, lockSocket, markPending } from "./socket-lock.ts";
import { STANDBY_PATH_ENV, standbyMs, standbyPath, standbyUse, takeStandby } from "./standby.ts";
import { unixSocketServed } from "../sys/unix-connect.ts";

const specSchema = z.looseObject({ annotations: z.optional(z.record(z.string(), z.string())) });

/** Reads the annotations of <bundle>/config.json; a missing or malformed spec is INVALID_ARGUMENT. */
export function readAnnotations(bundle: string): Record<string, string> {
  const path = join(bundle, "config.json");
  let value: unknown;
  try {
    value = JSON.parse(readRegularFile(path).toString("utf8")); // a FIFO there blocked `start`, or a daemon's Create
  } catch (err) {
    throw invalidArgument(`bundle spec ${path}`, { cause: err, detail: err instanceof Error ? err.message : String(err) });
  }
  const r = specSchema.safeParse(value);
  if (!r.success) throw invalidArgument(`bundle spec ${path}`, { detail: r.error.issues.map((i) => i.message).join("; ") });
  return r.data.annotations ?? {};
}

/** Writes a file atomically (temp + rename), as containerd's shim does for `address`. */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = join(path, "..", `.${path.split("/").pop()}.${process.pid}`);
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}

/** The default linger of a daemon whose group other containers can join (per-pod with a group, per-namespace). */
export const DEFAULT_LINGER_MS = 3000;

/**
 * How long the daemon of group key stays after its last container: a group of one container is
 * never joined again (0); a shared group keeps its daemon DEFAULT_LINGER_MS (or CRYO_SHIM_LINGER_MS
 * from containerd's environment) so that the next container does not pay a daemon launch. A pod's
 * daemon skips it once its sandbox container is deleted (grouping-seal.ts).
 */
export function lingerFor(key: string, env: Record<string, string | undefined>): number {
  if (key.startsWith("container/")) return 0;
  const ms = Number(env[LINGER_ENV] ?? DEFAULT_LINGER_MS);
  return Number.isFinite(ms) && ms >= 0 ? ms : DEFAULT_LINGER_MS;
}

/** The command that runs this same program as the daemon. */
export function selfCommand(): string[] {
  const main = Bun.main;
  // /proc/self/exe still runs this binary when `npm run build` replaced the file meanwhile.
  return main.startsWith("/$bunfs/") || main === process.execPath ? ["/proc/self/exe"] : [process.execPath, main];
}

function adjustOomScore(pid: number): void {
  try {
    const parent = Number(readFileSync(`/proc/${process.ppid}/oom_score_adj`, "utf8").trim());
    writeFileSync(`/proc/${pid}/oom_score_adj`, String(Math.min(1000, parent + 1)));
  } catch {
    // best effort, as containerd's shim
  }
}

/**
 * Binds the daemon's socket and launches the daemon with it as fd 3, detached, in the bundle, with the
 * bundle's `log` FIFO as stdout and stderr; returns its pid.
 */
async function launchDaemon(path: string, bundle: string, args: string[], env: Record<string, string | undefined>, id: string): Promise<number> {
  let logFd: number | "ignore" = "ignore";
  try {
    logFd = openSync(join(bundle, "log"), fsc.O_WRONLY | fsc.O_NONBLOCK);
  } catch {
    // no log FIFO (not started by containerd): the daemon logs nowhere
  }
  // bun:ffi's libc is loaded only here: a `start` that reuses a running daemon does not pay for it.
  const [{ listenUnixSocket }, { close: closeFd }] = await Promise.all([import("../sys/console-socket.ts"), import("../sys/fd.ts")]);
  let listenFd: number;
  try {
    listenFd = listenUnixSocket(path, { mode: 0o600 });
  } catch (err) {
    if (typeof logFd === "number") closeSync(logFd);
    throw err;
  }
  try {
    const proc = Bun.spawn([...selfCommand(), ...args], { argv0: process.execPath, cwd: bundle, env, stdio: ["ignore", logFd, logFd, listenFd], detached: true });
    proc.unref();
    return proc.pid;
  } catch (err) {
    rmSync(path, { force: true });
    throw unavailable(`shim daemon for ${id}`, { cause: err, detail: err instanceof Error ? err.message : String(err) });
  } finally {
    closeFd(listenFd);
    if (typeof logFd === "number") closeSync(logFd);
  }
}

/** The daemon's OOM score (containerd's + 1) and, when the runtime options name one, its shim cgroup; on failure the daemon is killed. */
async function placeDaemon(pid: number, shimCgroup: string | undefined, socket: string): Promise<void> {
  adjustOomScore(pid);
  if (!shimCgroup) return;
  try {
    await (await import("./shim-cgroup.ts")).placeInShimCgroup(pid, shimCgroup);
  } catch (err) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
    rmSync(socket, { force: true });
    throw err;
  }
}

/** Runs `start`; returns the bytes to print on stdout. */
export async function startShim(flags: ShimFlags, env: Record<string, string | undefined>, stdin: Uint8Array): Promise<Uint8Array> {
  if (!flags.id) throw invalidArgument("start", { detail: "-id is required" });
  // containerd 1.6 without runtime options sends nothing: then the protobuf code is never loaded.
  const handshake = stdin.length > 0 ? await import("./handshake.ts") : undefined;
  const input: StartInput | undefined = handshake?.decodeStartInput(stdin, flags.id, flags.namespace);
  const bundle = flags.bundle;
  const annotations = readAnnotations(bundle);
  const policy = resolveGrouping(input?.options.grouping, annotations, env);
  const key = groupKey(policy, flags.id, flags.namespace, annotations);
  const grpcAddress = input?.kind === "bootstrap" && input.grpcAddress ? input.grpcAddress : flags.address;
  const ttrpcAddress = input?.kind === "bootstrap" && input.ttrpcAddress ? input.ttrpcAddress : flags.ttrpcAddress;
  const dir = (input?.kind === "bootstrap" ? input.socketDir : undefined) || env[SOCKET_DIR_ENV] || DEFAULT_SOCKET_DIR;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const path = socketPath(dir, grpcAddress, flags.namespace, key, keyedByBinary(policy) ? binaryIdentity() : undefined);
  const address = socketAddress(path);

  const unlock = await lockSocket(path);
  try {
    if (!(await unixSocketServed(path))) {
      rmSync(path, { force: true });
      const debug = flags.debug || (input?.kind === "bootstrap" && input.debug);
      const args = daemonArgs({ ...flags, address: grpcAddress, bundle, debug }, path);
      const perDaemonEnv: Record<string, string> = {
        TTRPC_ADDRESS: ttrpcAddress,
        GRPC_ADDRESS: grpcAddress,
        NAMESPACE: flags.namespace,
        [LINGER_ENV]: String(lingerFor(key, env)),
        [GROUP_KEY_ENV]: key,
      };
      // A standby booted with another PATH (standby.ts KEY_EXCLUDED_ENV) takes this one: runc and hooks get it.
      if (env.PATH !== undefined) perDaemonEnv.PATH = env.PATH;
      // A standby daemon of this containerd, namespace and environment (standby.ts) becomes this group's
      // daemon at once; without one, a daemon is launched. After its first Create the daemon launches the
      // standby for the next group. Neither for a daemon in a shim cgroup, and no next one for a
      // per-namespace daemon (standbyUse).
      const standby = standbyMs(env) > 0 ? standbyPath(dir, { grpcAddress, ttrpcAddress, namespace: flags.namespace, debug }, env) : undefined;
      const use = standbyUse({ key, shimCgroup: input?.options.shimCgroup });
      if (standby && use.launchNext) perDaemonEnv[STANDBY_PATH_ENV] = standby;
      const taken = standby && use.take ? await takeStandby(standby, { socket: path, cwd: bundle, argv: args, env: perDaemonEnv }) : undefined;
      if (taken === undefined && standby && use.take) rmSync(path, { force: true }); // a standby that failed after binding it
      const pid = taken ?? (await launchDaemon(path, bundle, args, daemonEnv(env, { ...perDaemonEnv, [LISTEN_FD_ENV]: "3" }), flags.id));
      await placeDaemon(pid, input?.options.shimCgroup, path);
    }
    markPending(path, flags.id);
    writeFileAtomic(join(bundle, "address"), address);
  } finally {
    unlock();
  }
  return handshake && input ? handshake.encodeStartOutput(input, address) : new TextEncoder().encode(address);
}
