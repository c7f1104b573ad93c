/**
 * One loaded configuration per config path for the life of a daemon. A config that fails to load is
 * reported once (through `onError`) and remembered: every later use rejects with that same
 * INVALID_ARGUMENT, so each Create or Checkpoint fails with the clear error and the daemon keeps serving.
 *
 * Where there is no file (the usual host: no runtime options config path, no CRYO_CONFIG, nothing in
 * /etc/cryo), the empty configuration comes from find.ts alone: the TOML parser and the config schema
 * (zod) are loaded only for a file to read. In a shim daemon that saved 8 ms of CPU before its first
 * Create and 1.3 MiB of memory (measured, docs/shim.md).
 */
import { CryoError } from "../errors.ts";
import { emptyCryoConfig, findConfigFile, type ConfigSearch, type LoadedConfig } from "./find.ts";

/** The per-daemon configuration cache. */
export interface ConfigCache {
  /** The configuration for a runtime options' config path ("" = CRYO_CONFIG or the defaults); rejects with the remembered error for a bad one. */
  forConfigPath(configPath: string): Promise<LoadedConfig>;
  /** Loads a config path now (at daemon start) so a broken file is reported at once; never rejects. */
  check(configPath: string): Promise<CryoError | undefined>;
}

/** Creates the cache; `search` overrides env/defaults (tests); `onError` gets each bad config once. */
export function createConfigCache(search: Omit<ConfigSearch, "explicitPath"> = {}, onError: (err: CryoError) => void = () => {}): ConfigCache {
  const loaded = new Map<string, Promise<LoadedConfig | CryoError>>();
  const get = (configPath: string): Promise<LoadedConfig | CryoError> => {
    let entry = loaded.get(configPath);
    if (entry === undefined) {
      entry = (async () => {
        try {
          const source = findConfigFile({ ...search, explicitPath: configPath || undefined });
          if (source === null) return { source: null, config: emptyCryoConfig };
          return (await import("./loader.ts")).readConfigFile(source);
        } catch (err) {
          const e = CryoError.from(err);
          onError(e);
          return e;
        }
      })();
      loaded.set(configPath, entry);
    }
    return entry;
  };
  return {
    async forConfigPath(configPath) {
      const entry = await get(configPath);
      if (entry instanceof CryoError) throw entry;
      return entry;
    },
    async check(configPath) {
      const entry = await get(configPath);
      return entry instanceof CryoError ? entry : undefined;
    },
  };
}
