/**
 * One loaded configuration per config path for the life of a daemon. A config that fails to load is
 * reported once (through `onError`) and remembered: every later use throws that same INVALID_ARGUMENT,
 * so each Create or Checkpoint fails with the clear error and the daemon keeps serving.
 */
import { CryoError } from "../errors.ts";
import { loadConfig, type ConfigSearch, type LoadedConfig } from "./loader.ts";

/** The per-daemon configuration cache. */
export interface ConfigCache {
  /** The configuration for a runtime options' config path ("" = CRYO_CONFIG or the defaults); throws the remembered error for a bad one. */
  forConfigPath(configPath: string): LoadedConfig;
  /** Loads a config path now (at daemon start) so a broken file is reported at once; never throws. */
  check(configPath: string): CryoError | undefined;
}

/** Creates the cache; `search` overrides env/defaults (tests); `onError` gets each bad config once. */
export function createConfigCache(search: Omit<ConfigSearch, "explicitPath"> = {}, onError: (err: CryoError) => void = () => {}): ConfigCache {
  const loaded = new Map<string, LoadedConfig | CryoError>();
  const get = (configPath: string): LoadedConfig | CryoError => {
    let entry = loaded.get(configPath);
    if (entry === undefined) {
      try {
        entry = loadConfig({ ...search, explicitPath: configPath || undefined });
      } catch (err) {
        entry = CryoError.from(err);
        onError(entry);
      }
      loaded.set(configPath, entry);
    }
    return entry;
  };
  return {
    forConfigPath(configPath) {
      const entry = get(configPath);
      if (entry instanceof CryoError) throw entry;
      return entry;
    },
    check(configPath) {
      const entry = get(configPath);
      return entry instanceof CryoError ? entry : undefined;
    },
  };
}
