/**
 * Finding, reading and validating cryo's configuration file.
 *
 * Search order (the first that applies wins):
 *   1. an explicit path (the config path in containerd's runtime options for cryo) — must exist;
 *   2. the environment variable CRYO_CONFIG — must exist;
 *   3. /etc/cryo/config.toml, then /etc/cryo/config.json — used when present.
 * No file at all means the empty configuration. A file ending in `.json` is JSON, anything else TOML.
 * A file that cannot be read or parsed, or that fails validation, is one INVALID_ARGUMENT error
 * naming the file and the field: `config /etc/cryo/config.toml: invalid argument: checkpoint.compression: ...`.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import type { z } from "zod";
import { CryoError, invalidArgument } from "../errors.ts";
import { cryoConfigSchema, emptyCryoConfig, type CryoConfig } from "./schema.ts";

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
  if (search.explicitPath) {
    if (!existsSync(search.explicitPath)) throw invalidArgument(`config ${search.explicitPath}`, { detail: "file does not exist (runtime options config path)" });
    return search.explicitPath;
  }
  const fromEnv = (search.env ?? process.env)[configEnvVar];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw invalidArgument(`config ${fromEnv}`, { detail: `file does not exist (${configEnvVar})` });
    return fromEnv;
  }
  for (const p of search.defaults ?? defaultConfigPaths) if (existsSync(p)) return p;
  return null;
}

/** Formats a zod issue path like `plugins[0].limits.timeout_ms`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const k of path) out += typeof k === "number" ? `[${k}]` : out ? `.${String(k)}` : String(k);
  return out || "(root)";
}

/** One INVALID_ARGUMENT for the first issue: the file, the field path, zod's message. */
function configError(source: string, error: z.ZodError): CryoError {
  const first = error.issues[0];
  let detail = error.message;
  if (first?.code === "unrecognized_keys") {
    detail = first.keys.map((k) => `${fieldPath([...first.path, k])}: unknown key`).join("; ");
  } else if (first) {
    detail = `${fieldPath(first.path)}: ${first.message}`;
  }
  return invalidArgument(`config ${source}`, { detail, cause: error });
}

/** Parses and validates config text; `source` names the file in errors and anchors relative plugin paths. */
export function parseConfig(text: string, source: string): CryoConfig {
  let raw: unknown;
  try {
    raw = source.endsWith(".json") ? JSON.parse(text) : parseToml(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw invalidArgument(`config ${source}`, { detail: `cannot parse: ${msg}`, cause: err });
  }
  const result = cryoConfigSchema.safeParse(raw);
  if (!result.success) throw configError(source, result.error);
  const dir = dirname(resolve(source));
  return {
    ...result.data,
    plugins: result.data.plugins.map((p) => ({ ...p, path: isAbsolute(p.path) ? p.path : resolve(dir, p.path) })),
  };
}

/** Finds, reads and validates the configuration; no file gives the empty configuration. */
export function loadConfig(search: ConfigSearch = {}): LoadedConfig {
  const source = findConfigFile(search);
  if (source === null) return { source: null, config: emptyCryoConfig };
  let text: string;
  try {
    text = readFileSync(source, "utf8");
  } catch (err) {
    throw invalidArgument(`config ${source}`, { detail: `cannot read: ${(err as Error).message}`, cause: err });
  }
  return { source, config: parseConfig(text, source) };
}
