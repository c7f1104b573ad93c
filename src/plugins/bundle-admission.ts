/**
 * Admission at Create, bundle in hand: the two lines the shim's Create needs.
 *
 *   const engine = engines.forConfigPath(options.configPath);       // one engine per config file, cached
 *   await admitBundle(engine, { id, namespace, bundle, image });     // before `runc create`
 *
 * admitBundle reads the bundle's config.json, runs the admission chain, and when plugins changed the
 * spec writes config.json back (atomically) so runc sees the changed spec. A deny throws
 * PERMISSION_DENIED before anything is created.
 */
import { renameSync, writeFileSync } from "node:fs";
import { readRegularFile } from "../sys/regular-file.ts";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";
import { ociSpecSchema, type ImageInfo } from "./hook-schemas.ts";
import { loadPolicyEngine, type AdmitDecision, type PolicyEngine, type PolicyEngineOptions } from "./policy-engine.ts";
import type { ConfigSearch } from "./config-loader.ts";
import { parsePreciseJson, stringifyPreciseJson } from "../sys/precise-json.ts";

/** The container being created. */
export interface BundleAdmission {
  id: string;
  namespace: string;
  bundle: string;
  /** The image, when the shim could learn it from containerd; null otherwise. A function is called only when the engine has plugins. */
  image: ImageInfo | null | (() => Promise<ImageInfo | null>);
  /** The Create of a restore: the plugins are told, and their env and removeMounts changes are not applied. */
  restore?: boolean;
}

/** Runs the admission chain on `bundle/config.json`; rewrites it when plugins changed the spec. */
export async function admitBundle(engine: PolicyEngine, c: BundleAdmission): Promise<AdmitDecision> {
  const path = join(c.bundle, "config.json");
  let raw: unknown;
  try {
    raw = parsePreciseJson(readRegularFile(path).toString("utf8")); // an rlimit of RLIM_INFINITY (2^64-1) stays exact
  } catch (err) {
    throw invalidArgument(`container ${c.id}: spec ${path}`, { detail: (err as Error).message, cause: err });
  }
  const spec = ociSpecSchema.safeParse(raw);
  if (!spec.success) {
    const issue = spec.error.issues[0];
    throw invalidArgument(`container ${c.id}: spec ${path}`, { detail: `${issue?.path.join(".") ?? ""}: ${issue?.message ?? ""}` });
  }
  if (engine.plugins.length === 0) return { spec: spec.data, changes: {}, consulted: [], changedBy: [] };
  const image = typeof c.image === "function" ? await c.image() : c.image;
  const decision = await engine.admit({ id: c.id, namespace: c.namespace, bundle: c.bundle, annotations: spec.data.annotations ?? {}, spec: spec.data, image, restore: c.restore === true });
  if (Object.keys(decision.changes).length > 0) {
    const tmp = `${path}.cryo-${process.pid}.tmp`;
    writeFileSync(tmp, stringifyPreciseJson(decision.spec));
    renameSync(tmp, path);
  }
  return decision;
}

/** One policy engine per config file, loaded on first use, and loaded again when the config's files change. */
export interface PolicyEngines {
  /**
   * The engine for a runtime options' config path ("" = CRYO_CONFIG or the defaults); throws INVALID_ARGUMENT for a
   * bad config. `stamp` identifies the files the caller's config was read from (config-cache.ts): another stamp than
   * the cached engine's loads a new engine, and the old one is closed once its calls in flight have returned.
   */
  forConfigPath(configPath: string, stamp?: string): PolicyEngine;
  /** Closes every engine. */
  close(): Promise<void>;
}

/** An engine that counts its calls in flight, so that a replaced one is closed only after they return. */
interface Tracked {
  stamp: string | undefined;
  engine: PolicyEngine;
  inFlight: number;
  retired: boolean;
  inner: PolicyEngine;
}

/** Creates the per-daemon engine cache; `search` overrides env/defaults (tests). */
export function createPolicyEngines(search: Omit<ConfigSearch, "explicitPath"> = {}, options: PolicyEngineOptions = {}): PolicyEngines {
  const engines = new Map<string, Tracked>();
  const closeIfDone = (t: Tracked) => {
    if (t.retired && t.inFlight === 0) void t.inner.close().catch(() => {});
  };
  const track = (stamp: string | undefined, inner: PolicyEngine): Tracked => {
    const t: Tracked = { stamp, inner, inFlight: 0, retired: false, engine: inner };
    const counted =
      <A, R>(fn: (a: A) => Promise<R>) =>
      async (a: A): Promise<R> => {
        t.inFlight++;
        try {
          return await fn(a);
        } finally {
          t.inFlight--;
          closeIfDone(t);
        }
      };
    t.engine = {
      plugins: inner.plugins,
      admit: counted((i) => inner.admit(i)),
      checkpointOptions: counted((i) => inner.checkpointOptions(i)),
      restoreAdmission: counted((i) => inner.restoreAdmission(i)),
      warm: () => inner.warm(),
      close: () => inner.close(),
    };
    return t;
  };
  return {
    forConfigPath(configPath, stamp) {
      const t = engines.get(configPath);
      if (t && (stamp === undefined || t.stamp === stamp)) return t.engine;
      const next = track(stamp, loadPolicyEngine({ ...search, explicitPath: configPath || undefined }, options));
      engines.set(configPath, next);
      if (t) {
        t.retired = true;
        closeIfDone(t);
      }
      return next.engine;
    },
    async close() {
      const all = [...engines.values()];
      engines.clear();
      await Promise.all(all.map((t) => t.inner.close()));
    },
  };
}
