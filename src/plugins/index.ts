/**
 * WebAssembly policy plugins (Extism): what the rest of cryo may use.
 *
 * The shim needs three things:
 *   const engines = createPolicyEngines();                                         // once per daemon
 *   const engine = engines.forConfigPath(options.configPath);                      // at start/Create; throws INVALID_ARGUMENT on a bad config
 *   await admitBundle(engine, { id, namespace, bundle, image });                   // at Create, before runc (rewrites config.json if changed)
 *   const { options } = await engine.checkpointOptions({ ..., requested });        // at Checkpoint, before CRIU
 *   const { options } = await engine.restoreAdmission({ ..., requested });         // at Restore, before CRIU
 *   await engines.close();                                                         // at shutdown
 * Each throws PERMISSION_DENIED (with the plugin's reason) on a deny, and an error naming plugin and
 * hook when a fail-closed plugin breaks. A compiled binary that hosts plugins must start with
 *   if (isPluginRunnerProcess()) runPluginRunner(); else main();     // both from runner-main.ts
 * because plugins run in a child process that re-executes the binary (see runner-main.ts).
 *
 * This index does not load runner-main.ts (and with it Extism) until runPluginRunner is called: the
 * shim daemon imports the index at its first Create for admission, on the path of every `ctr run`
 * (docs/shim.md, "Speed").
 */
import { Code, CryoError } from "../errors.ts";

export { createPolicyEngine, loadPolicyEngine } from "./policy-engine.ts";
export { admitBundle, createPolicyEngines } from "./bundle-admission.ts";
export type { BundleAdmission, PolicyEngines } from "./bundle-admission.ts";
export type { AdmitDecision, OptionsDecision, PolicyEngine, PolicyEngineOptions, PolicyLogger } from "./policy-engine.ts";
export { configEnvVar, defaultConfigPaths, findConfigFile, loadPolicyConfig, parsePolicyConfig } from "./config-loader.ts";
export type { ConfigSearch, LoadedPolicyConfig } from "./config-loader.ts";
export { emptyPolicyConfig, policyConfigSchema } from "./config.ts";
export type { MatchRules, PluginConfig, PolicyConfig } from "./config.ts";
export * from "./hook-schemas.ts";
export { applySpecChanges, mergeSpecChanges } from "./spec-changes.ts";
export { formatPluginTestResult, runPluginTest } from "./plugin-test.ts";
export type { PluginTestOptions, PluginTestResult } from "./plugin-test.ts";

/** Serves as the plugin runner (runner-main.ts, loaded here with Extism); rejects with an INTERNAL CryoError when it cannot be loaded. */
export async function runPluginRunner(): Promise<void> {
  let runner: typeof import("./runner-main.ts");
  try {
    runner = await import("./runner-main.ts");
  } catch (err) {
    throw new CryoError(Code.INTERNAL, `plugin runner: loading runner-main.ts (Extism) failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  runner.runPluginRunner();
}
