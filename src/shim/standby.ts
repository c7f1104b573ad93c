/**
 * The standby daemon: one shim daemon kept booted (modules loaded, nothing served) per containerd,
 * namespace and environment, so that a container that needs a daemon of its own takes one that is ready
 * instead of waiting for a new process to load (~40 ms of CPU here, docs/shim.md "Speed").
 *
 * - `start`, when no daemon serves the container's group, asks the standby (takeStandby) over its socket
 *   `<socket dir>/standby-<hash>.sock`: the standby binds the container's socket, takes the bundle's log
 *   FIFO as its stdout/stderr, becomes that group's daemon and answers with its pid. No standby (or a
 *   failed hand-over): `start` launches a daemon as before.
 * - Every daemon, after its first Create, makes sure a standby is there for the next container
 *   (ensureStandby), off the path of the `start` that is waiting; a marker file keeps concurrent daemons
 *   from launching more than one.
 * - A standby not taken within CRYO_SHIM_STANDBY_MS (default 60 s) exits; 0 turns the standby off.
 *
 * The hash covers everything a daemon inherits from `start` that is the same for every container: this
 * binary (path, inode, size, mtime), containerd's addresses, the namespace, -debug, the socket dir and
 * containerd's environment. The standby's process runs standby-main.ts.
 */
import { closeSync, existsSync, openSync, rmSync, statSync, writeFileSync } from "node:fs";
import { LINGER_ENV } from "./socket-lock.ts";
import { GROUP_KEY_ENV } from "./grouping-seal.ts";
import { daemonEnv, LISTEN_FD_ENV } from "./daemon-env.ts";
import { binaryIdentity } from "./grouping.ts";

/** containerd's environment variable (inherited by every shim) that sets the standby's idle time in ms; 0: no standby. */
export const STANDBY_MS_ENV = "CRYO_SHIM_STANDBY_MS";
/** How long a standby waits to be taken by default. */
export const DEFAULT_STANDBY_MS = 60_000;
/** Set in a daemon's environment: the standby socket path its group's `start` computed (the daemon launches the next standby there). */
export const STANDBY_PATH_ENV = "CRYO_SHIM_STANDBY";
/** The argument that runs the binary as a standby: `__standby <socket path> -address <containerd> -namespace <ns> <padding>`. */
export const STANDBY_ARG = "__standby";
/** Room for the daemon's command line once taken (setProcTitle rewrites the standby's in place). */
const TITLE_PADDING = " ".repeat(2048);
/**
 * Set in a standby's environment by the daemon that launches it (taken out at once, never passed on): "restore" when
 * that daemon has restored or checkpointed a container, so the standby loads the restore's modules while it idles.
 */
export const STANDBY_WARM_ENV = "CRYO_SHIM_STANDBY_WARM";
/** The line a daemon sends a listening standby to make it load the restore's modules (warmStandbyForRestore). */
export const WARM_RESTORE_LINE = "warm restore";
/** A launch marker older than this is taken for a standby that died while loading. */
export const MARKER_STALE_MS = 10_000;
/** How long `start` waits for the standby's answer before launching a daemon instead. */
const TAKE_TIMEOUT_MS = 2_000;

/** The standby's idle time from the environment (DEFAULT_STANDBY_MS when absent or malformed, 0: off). */
export function standbyMs(env: Readonly<Record<string, string | undefined>>): number {
  const v = env[STANDBY_MS_ENV];
  if (v === undefined || !/^\d+$/.test(v)) return DEFAULT_STANDBY_MS;
  return Math.min(Number(v), 3_600_000);
}

/** Variables that differ between daemons of one containerd: left out of the standby's key and environment. */
const PER_DAEMON_ENV = new Set([LINGER_ENV, GROUP_KEY_ENV, LISTEN_FD_ENV, STANDBY_PATH_ENV, STANDBY_WARM_ENV]);

/**
 * Left out of the standby's key too, and given by the request that takes it: PATH. containerd's CRI plugin adds
 * `:/opt/nri/bin` to its own PATH when it runs its first pod sandbox (NRI's legacy client), so the first pod after
 * every containerd start keyed its standby apart from every later pod's, and that standby idled out unused (~43 MB
 * for 60 s; a helper saw two standbys after every containerd start).
 */
const KEY_EXCLUDED_ENV = new Set([...PER_DAEMON_ENV, "PATH"]);

/**
 * What `start` does with the standby for a new daemon: `take` it (else launch a daemon), and whether that daemon
 * launches the next one (`launchNext`).
 * - A daemon placed in a `ShimCgroup` takes none: the standby booted where the daemon that launched it runs, and
 *   the memory it touched then stays charged to that cgroup when it moves (cgroup v2, and v1 without
 *   move_charge_at_immigrate), so the shim cgroup would not account for all of its shim's memory. Nor does it
 *   launch one: that standby would boot in the shim cgroup, charged there, and serve some other container.
 * - A per-namespace daemon takes one but launches none: there is no next group.
 */
export function standbyUse(group: { key: string; shimCgroup?: string }): { take: boolean; launchNext: boolean } {
  if (group.shimCgroup) return { take: false, launchNext: false };
  return { take: true, launchNext: !group.key.startsWith("namespace/") };
}

/** The standby socket for a daemon that `start` would launch with env and these flags. */
export function standbyPath(socketDir: string, what: { grpcAddress: string; ttrpcAddress: string; namespace: string; debug: boolean }, env: Readonly<Record<string, string | undefined>>): string {
  const exe = binaryIdentity();
  const envText = Object.entries(env)
    .filter(([k, v]) => v !== undefined && !KEY_EXCLUDED_ENV.has(k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("\0");
  const h = new Bun.CryptoHasher("sha256").update([exe, what.grpcAddress, what.ttrpcAddress, what.namespace, String(what.debug), socketDir, envText].join("\0\0")).digest("hex");
  return `${socketDir}/standby-${h.slice(0, 32)}.sock`;
}

/** What `start` hands the standby: the daemon it becomes. */
export interface StandbyRequest {
  /** The container's socket, which the standby binds and serves (mode 0600). */
  socket: string;
  /** The bundle: the daemon's working directory, whose `log` FIFO becomes its stdout and stderr. */
  cwd: string;
  /** The daemon's flags (daemonArgs). */
  argv: string[];
  /** Per-daemon environment (linger, group key, standby path, containerd's addresses). */
  env: Record<string, string>;
}

/** The per-daemon variables a request may set in the standby's environment (start.ts perDaemonEnv). */
export const REQUEST_ENV: ReadonlySet<string> = new Set(["TTRPC_ADDRESS", "GRPC_ADDRESS", "NAMESPACE", "PATH", LINGER_ENV, GROUP_KEY_ENV, STANDBY_PATH_ENV]);

/**
 * Which file is at path (device, inode and change time), or undefined when none is: on a file system that gives a
 * new file the inode number of one just removed (ext4, where /run is on disk), the number alone could take another
 * standby's socket for this one's.
 */
export function fileIdOf(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

/**
 * Asks the standby at path to become the daemon described by request; resolves with its pid, or undefined
 * when it did not (no standby, a dead one, one taken by another `start`, one that failed, or no answer
 * within TAKE_TIMEOUT_MS): the caller then launches a daemon itself. Two phases, so that a standby and a
 * daemon the caller launched never both serve the socket: the standby binds the socket and answers with its
 * pid, and serves only once the caller confirms ("go"); a caller that gave up hangs up instead, and the
 * standby then unbinds (only the socket it bound) and exits.
 */
export async function takeStandby(path: string, request: StandbyRequest): Promise<number | undefined> {
  const fileId = fileIdOf(path);
  if (fileId === undefined) return undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let socket: Awaited<ReturnType<typeof Bun.connect>> | undefined;
  try {
    return await new Promise<number | undefined>((resolve) => {
      let text = "";
      Bun.connect({
        unix: path,
        socket: {
          open(s) {
            socket = s;
            s.write(`${JSON.stringify(request)}\n`);
            timer = setTimeout(() => resolve(undefined), TAKE_TIMEOUT_MS);
          },
          data(s, chunk) {
            text += new TextDecoder().decode(chunk);
            const nl = text.indexOf("\n");
            if (nl < 0) return;
            let pid: unknown;
            try {
              pid = (JSON.parse(text.slice(0, nl)) as { pid?: unknown }).pid;
            } catch {
              // not an answer: not taken
            }
            if (typeof pid === "number" && pid > 0) {
              s.write("go\n");
              resolve(pid);
            } else resolve(undefined);
          },
          close: () => resolve(undefined),
          error: () => resolve(undefined),
        },
      }).catch(() => {
        // Nothing listens: a standby that died left its socket file. Removed (if it is still that file), so
        // that the next daemon launches a new standby.
        if (fileIdOf(path) === fileId) rmSync(path, { force: true });
        resolve(undefined);
      });
    });
  } finally {
    clearTimeout(timer);
    socket?.end();
  }
}

/** The marker that a standby for path is being launched. */
export function standbyMarker(path: string): string {
  return `${path}.launching`;
}

/**
 * Launches a standby at path unless one is there or being launched (the marker, made exclusively). env is
 * containerd's environment as the daemon got it (without the per-daemon variables). Never throws: a standby
 * is an optimisation. Returns the launched pid, or undefined.
 */
export function ensureStandby(path: string, env: Readonly<Record<string, string | undefined>>, command: readonly string[], what: { grpcAddress: string; namespace: string; warmRestore?: boolean }): number | undefined {
  if (standbyMs(env) === 0 || existsSync(path)) return undefined;
  const marker = standbyMarker(path);
  try {
    const fd = openSync(marker, "wx", 0o600);
    writeFileSync(fd, String(process.pid));
    closeSync(fd);
  } catch {
    // Being launched by another daemon, or a marker left by a standby that died while loading.
    try {
      if (Date.now() - statSync(marker).mtimeMs < MARKER_STALE_MS) return undefined;
      rmSync(marker, { force: true });
    } catch {
      // gone meanwhile
    }
    return undefined;
  }
  try {
    const clean: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(env)) if (!PER_DAEMON_ENV.has(k)) clean[k] = v;
    const proc = Bun.spawn([...command, STANDBY_ARG, path, "-address", what.grpcAddress, "-namespace", what.namespace, TITLE_PADDING], {
      argv0: process.execPath,
      cwd: "/",
      env: daemonEnv(clean, { [STANDBY_PATH_ENV]: path, ...(what.warmRestore ? { [STANDBY_WARM_ENV]: "restore" } : {}) }),
      stdio: ["ignore", "ignore", "ignore"],
      detached: true,
    });
    proc.unref();
    return proc.pid;
  } catch {
    rmSync(marker, { force: true });
    return undefined;
  }
}

/**
 * Tells the standby listening at path (if any) to load the restore's modules now, while it idles: a daemon that has
 * just checkpointed a container does, since a restore of it in a new daemon (per container, a new pod) comes next more
 * often than not. Never throws, never waits for more than the connection: an optimisation, like the standby itself.
 */
export function warmStandbyForRestore(path: string): void {
  if (!existsSync(path)) return;
  Bun.connect({
    unix: path,
    socket: {
      open: (s) => void s.end(`${WARM_RESTORE_LINE}\n`), // its answer (when the modules are in) is not waited for
      data: () => {},
      error: () => {},
    },
  }).catch(() => {
    // nothing listens there now: no standby to warm
  });
}

/** The standby path recorded in a daemon's environment, taken out of it (runc and hooks do not inherit it). */
export function takeStandbyPath(env: Record<string, string | undefined> = process.env): string | undefined {
  const v = env[STANDBY_PATH_ENV];
  delete env[STANDBY_PATH_ENV];
  return v !== undefined && v.startsWith("/") ? v : undefined;
}
