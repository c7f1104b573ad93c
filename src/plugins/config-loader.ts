/**
 * The policy configuration: the `plugins` section of cryo's one config file, found, read and
 * validated by src/config (search order, TOML or JSON, one INVALID_ARGUMENT naming file and field).
 *
 * Search order (the first that applies wins):
 *   1. an explicit path (the config path in containerd's runtime options for cryo) — must exist;
 *   2. the environment variable CRYO_CONFIG — must exist;
 *   3. /etc/cryo/config.toml, then /etc/cryo/config.json — used when present.
 * No file at all means no plugins. Every section of the file is validated, so a typo under
 * `[checkpoint]` fails here as well: one config, one verdict.
 */
import { loadConfig, parseConfig, type ConfigSearch } from "../config/loader.ts";
import type { PolicyConfig } from "./config.ts";

export { configEnvVar, defaultConfigPaths, findConfigFile } from "../config/loader.ts";
export type { ConfigSearch } from "../config/loader.ts";

/** A loaded configuration and where it came from (null: no file, no plugins). */
export interface LoadedPolicyConfig {
  source: string | null;
  config: PolicyConfig;
}

/** Parses and validates config text (the whole file); returns its plugins, paths resolved against the file's folder. */
export function parsePolicyConfig(text: string, source: string): PolicyConfig {
  return { plugins: parseConfig(text, source).plugins };
}

/** Finds, reads and validates the configuration; no file gives the empty configuration. */
export function loadPolicyConfig(search: ConfigSearch = {}): LoadedPolicyConfig {
  const { source, config } = loadConfig(search);
  return { source, config: { plugins: config.plugins } };
}
