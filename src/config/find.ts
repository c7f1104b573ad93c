/**
 * Where cryo's configuration file is: the search order of loader.ts, without reading or validating the
 * file. Light (no zod, no TOML parser): a shim daemon on a host without a config file never loads those.
 *
 * Search order (the first that applies wins):
 *   1. an explicit path (the config path in containerd's runtime options for cryo) — must exist;
 *   2. the environment variable CRYO_CONFIG — must exist;
 *   3. /etc/cryo/config.toml, then /etc/cryo/config.json — used when present.
 * No file at all means the empty configuration.
 */
import { existsSync } from "node:fs";
import { invalidArgument } from "../errors.ts";
import type { CryoConfig } from "./schema.ts";

/** The environment variable naming the config file. */
export const configEnvVar = "CRYO_CONFIG";
/** The default locations, in order. */
export const defaultConfigPaths = ["/etc/cryo/config.toml", "/etc/cryo/config.json"] as const;

/** Where to look for the file. */
export interface ConfigSearch {
  /** From containerd's runtime options; wins over everything. */
  explicitPath?: string | undefined;
  /** Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Defaults to {@link defaultConfigPaths}; tests point this elsewhere. */
  defaults?: readonly string[];
}

/** A loaded configuration and where it came from (null: no file). */
export interface LoadedConfig {
  source: string | null;
  config: CryoConfig;
}

/** Returns the config file to use by the documented search order, or null when there is none. */
export function findConfigFile(search: ConfigSearch = {}): string | null {
  // The shim runs in the container's bundle directory: a relative path would be looked up there.
  const relative = (path: string, from: string) => invalidArgument(`config ${path}`, { detail: `a relative path (${from}): give an absolute one, the shim runs in each container's bundle directory` });
  if (search.explicitPath) {
    if (!search.explicitPath.startsWith("/")) throw relative(search.explicitPath, "runtime options config path");
    if (!existsSync(search.explicitPath)) throw invalidArgument(`config ${search.explicitPath}`, { detail: "file does not exist (runtime options config path)" });
    return search.explicitPath;
  }
  const fromEnv = (search.env ?? process.env)[configEnvVar];
  if (fromEnv) {
    if (!fromEnv.startsWith("/")) throw relative(fromEnv, configEnvVar);
    if (!existsSync(fromEnv)) throw invalidArgument(`config ${fromEnv}`, { detail: `file does not exist (${configEnvVar})` });
    return fromEnv;
  }
  for (const p of search.defaults ?? defaultConfigPaths) if (existsSync(p)) return p;
  return null;
}

/** The configuration used when there is no file: no plugins, built-in checkpoint and restore options. */
export const emptyCryoConfig: CryoConfig = { plugins: [], checkpoint: {}, restore: {}, shim: {} };
