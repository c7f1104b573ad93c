/**
 * src/config: cryo's one configuration file (TOML or JSON), what the rest of cryo may use.
 *
 *   const configs = createConfigCache({}, (e) => log.error(e.message));   // once per daemon
 *   void configs.check("");                                               // at start: a bad file is reported once
 *   const { config } = await configs.forConfigPath(options.configPath);   // rejects with the same INVALID_ARGUMENT each time
 *   resolveCheckpointPlan({ defaults: checkpointOverrides(config.checkpoint), annotations, request });
 *   const { plan, vethPairs } = restoreSettings(meta.options, config.restore);  // then restore plugins
 *
 * Sections: `plugins` (src/plugins' schema), `checkpoint` (defaults), `restore` (this host's restore
 * settings). Search order: runtime options' config path, CRYO_CONFIG, /etc/cryo/config.toml, /etc/cryo/config.json.
 */
export { checkpointDefaultsSchema, cryoConfigSchema, emptyCryoConfig, restoreDefaultsSchema, vethPairConfigSchema } from "./schema.ts";
export type { CheckpointDefaults, CryoConfig, RestoreDefaults } from "./schema.ts";
export { configEnvVar, defaultConfigPaths, fieldPath, findConfigFile, loadConfig, parseConfig, readConfigFile } from "./loader.ts";
export type { ConfigSearch, LoadedConfig } from "./loader.ts";
export { createConfigCache } from "./config-cache.ts";
export type { ConfigCache } from "./config-cache.ts";
export { checkpointOverrides, restoreBase, restoreSettings } from "./plan-defaults.ts";
export type { RestoreSettings, VethPair } from "./plan-defaults.ts";
export { configJsonSchema } from "./json-schema.ts";
