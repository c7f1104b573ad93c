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
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";
import { ociSpecSchema, type ImageInfo } from "./hook-schemas.ts";
import { loadPolicyEngine, type AdmitDecision, type PolicyEngine, type PolicyEngineOptions } from "./policy-engine.ts";
import type { ConfigSearch } from "./config-loader.ts";

/** The container being created. */
export interface BundleAdmission {
  id: string;
  namespace: string;
  bundle: string;
  /** The image, when the shim could learn it from containerd; null otherwise. A function is called only when the engine has plugins. */
  image: ImageInfo | null | (() => Promise<ImageInfo | null>);
}

/** Runs the admission chain on `bundle/config.json`; rewrites it when plugins changed the spec. */
export async function admitBundle(engine: PolicyEngine, c: BundleAdmission): Promise<AdmitDecision> {
  const path = join(c.bundle, "config.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw invalidArgument(`container ${c.id}: spec ${path}`, { detail: (err as Error).message, cause: err });
  }
  const spec = ociSpecSchema.safeParse(raw);
  if (!spec.success) {
    const issue = spec.error.issues[0];
    throw invalidArgument(`container ${c.id}: spec ${path}`, { detail: `${issue?.path.join(".") ?? ""}: ${issue?.message ?? ""}` });
  }
  if (engine.plugins.length === 0) return { spec: spec.data, changes: {}, consulted: [] };
  const image = typeof c.image === "function" ? await c.image() : c.image;
  const decision = await engine.admit({ id: c.id, namespace: c.namespace, bundle: c.bundle, annotations: spec.data.annotations ?? {}, spec: spec.data, image });
  if (Object.keys(decision.changes).length > 0) {
    const tmp = `${path}.cryo-${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(decision.spec));
    renameSync(tmp, path);
  }
  return decision;
}

/** One policy engine per config file, loaded on first use and kept for the daemon's life. */
export interface PolicyEngines {
  /** The engine for a runtime options' config path ("" = CRYO_CONFIG or the defaults); throws INVALID_ARGUMENT for a bad config. */
  forConfigPath(configPath: string): PolicyEngine;
  /** Closes every engine. */
  close(): Promise<void>;
}

/** Creates the per-daemon engine cache; `search` overrides env/defaults (tests). */
export function createPolicyEngines(search: Omit<ConfigSearch, "explicitPath"> = {}, options: PolicyEngineOptions = {}): PolicyEngines {
  const engines = new Map<string, PolicyEngine>();
  return {
    forConfigPath(configPath) {
      let e = engines.get(configPath);
      if (!e) {
        e = loadPolicyEngine({ ...search, explicitPath: configPath || undefined }, options);
        engines.set(configPath, e);
      }
      return e;
    },
    async close() {
      const all = [...engines.values()];
      engines.clear();
      await Promise.all(all.map((e) => e.close()));
    },
  };
}
