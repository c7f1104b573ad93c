/**
 * Modules the daemon loads on first use, not at start-up: containerd waits for a new daemon before
 * every container's Create, so whatever a plain create/start/delete does not need (checkpoint and
 * restore, stats, update) is imported where it is first called (docs/shim.md, "Speed").
 *
 *   const metrics = lazyModule("the cgroup metrics encoder", () => import("../cgroups/metrics.ts"));
 *   const { packMetrics } = await metrics();
 *
 * `load` must be a literal `() => import("...")` so that the bundler splits the module out. The
 * module is loaded once; a load that fails rejects with an INTERNAL CryoError naming what was being
 * loaded, and the next call tries again.
 */
import { Code, CryoError } from "../errors.ts";

/** Returns a function that loads the module once (cached) and resolves with it. */
export function lazyModule<T>(what: string, load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () =>
    (loading ??= load().catch((err: unknown) => {
      loading = undefined;
      throw new CryoError(Code.INTERNAL, `shim: loading ${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }));
}
