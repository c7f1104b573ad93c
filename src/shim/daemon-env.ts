/**
 * The environment `start` gives the daemon: containerd's, plus Bun/JavaScriptCore settings that make a
 * long-running, mostly idle daemon small (measured in bench/shim.ts, see docs/shim.md "Memory"):
 *
 * - `BUN_JSC_useDFGJIT=0` and `BUN_JSC_useBaselineJIT=0`: no JIT tier at all, JavaScriptCore's
 *   interpreter (LLInt) runs everything. The daemon's work is I/O and small bursts of run-once code,
 *   and compiling that code cost more than it saved: without the baseline JIT a daemon answered its
 *   first call ~5 ms sooner and kept ~1.5 MiB less private memory (docs/shim.md "Memory"). The JIT
 *   itself stays on, since bun:ffi needs it (`BUN_JSC_useJIT=0` makes the daemon fail to start);
 * - `BUN_OPTIONS=--smol`: Bun's small-heap mode (collects more often).
 *
 * A variable containerd's environment already sets is left as it is. The daemon removes the ones
 * `start` added (listed in CRYO_SHIM_ADDED_ENV) from its own environment once running, so runc,
 * loggers and hooks do not inherit them.
 */

/** Lists the variables `start` added, comma-separated. */
export const ADDED_ENV = "CRYO_SHIM_ADDED_ENV";

/** The defaults start adds for the daemon. */
export const DAEMON_ENV_DEFAULTS: Readonly<Record<string, string>> = {
  BUN_JSC_useDFGJIT: "0",
  BUN_JSC_useBaselineJIT: "0",
  BUN_OPTIONS: "--smol",
};

/** The daemon's environment: env plus the defaults it lacks (and extra), with the added names recorded. */
export function daemonEnv(env: Record<string, string | undefined>, extra: Record<string, string>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env, ...extra };
  const added: string[] = [];
  for (const [k, v] of Object.entries(DAEMON_ENV_DEFAULTS)) {
    if (out[k] === undefined) {
      out[k] = v;
      added.push(k);
    }
  }
  if (added.length > 0) out[ADDED_ENV] = added.join(",");
  return out;
}

/** In the daemon: removes the variables start added, so that its children do not inherit them. */
export function dropAddedEnv(env: Record<string, string | undefined> = process.env): void {
  for (const k of (env[ADDED_ENV] ?? "").split(",")) if (k in DAEMON_ENV_DEFAULTS) delete env[k];
  delete env[ADDED_ENV];
}

/**
 * Set by `start` in the daemon's environment: the descriptor number of the listening socket it bound
 * at -socket and handed over (3). The daemon serves on it instead of binding the path itself.
 */
export const LISTEN_FD_ENV = "CRYO_SHIM_LISTEN_FD";

/** In the daemon: takes LISTEN_FD_ENV out of the environment; the inherited listening descriptor, or undefined. */
export function takeListenFd(env: Record<string, string | undefined> = process.env): number | undefined {
  const value = env[LISTEN_FD_ENV];
  delete env[LISTEN_FD_ENV];
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}
