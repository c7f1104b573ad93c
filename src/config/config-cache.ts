/**
 * The loaded configuration per config path, for a daemon that serves many Creates: read again when the file, or a
 * plugin's .wasm file it names, changed since (a per-namespace or per-pod daemon lives as long as its containers,
 * and an operator who edits the file or replaces a plugin expects the next container to get it). Each use stats
 * the config file and the plugin files (microseconds), and compares their identity, size and mtime with those of
 * the load (the stamp). A config that fails to load is reported once per stamp (through `onError`) and
 * remembered: every later use rejects with that same INVALID_ARGUMENT until the file changes, so each Create or
 * Checkpoint fails with the clear error and the daemon keeps serving.
 *
 * Where there is no file (the usual host: no runtime options config path, no CRYO_CONFIG, nothing in
 * /etc/cryo), the empty configuration comes from find.ts alone: the TOML parser and the config schema
 * (zod) are loaded only for a file to read. In a shim daemon that saved 8 ms of CPU before its first
 * Create and 1.3 MiB of memory (measured, docs/shim.md).
 */
import { statSync } from "node:fs";
import { CryoError } from "../errors.ts";
import { emptyCryoConfig, findConfigFile, type ConfigSearch, type LoadedConfig } from "./find.ts";

/** A loaded configuration and the stamp of the files it was read from (config file and plugin files). */
export type StampedConfig = LoadedConfig & { stamp: string };

/** The per-daemon configuration cache. */
export interface ConfigCache {
  /** The configuration for a runtime options' config path ("" = CRYO_CONFIG or the defaults); rejects with the remembered error for a bad one. */
  forConfigPath(configPath: string): Promise<StampedConfig>;
  /** Loads a config path now (at daemon start) so a broken file is reported at once; never rejects. */
  check(configPath: string): Promise<CryoError | undefined>;
}

/** A file's identity, size and modification time ("-" when it cannot be stat'ed): changes when the file is edited or replaced. */
export function fileStamp(path: string): string {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return "-";
  }
}

interface Entry {
  /** The config file found and its stamp, as when the entry was made. */
  source: string;
  /** Plugin files of the loaded config, with their stamps at the load. */
  plugins: { path: string; stamp: string }[];
  value: Promise<StampedConfig | CryoError>;
}

/** Creates the cache; `search` overrides env/defaults (tests); `onError` gets each bad config once (per change of its files). */
export function createConfigCache(search: Omit<ConfigSearch, "explicitPath"> = {}, onError: (err: CryoError) => void = () => {}): ConfigCache {
  const loaded = new Map<string, Entry>();
  const load = (configPath: string): Entry => {
    let found: string | null;
    try {
      found = findConfigFile({ ...search, explicitPath: configPath || undefined });
    } catch (err) {
      const e = CryoError.from(err);
      onError(e);
      return { source: "?", plugins: [], value: Promise.resolve(e) };
    }
    const source = found === null ? "" : `${found}@${fileStamp(found)}`;
    const entry = { source, plugins: [] } as Partial<Entry> as Entry;
    entry.value = (async () => {
      try {
        if (found === null) return { source: null, config: emptyCryoConfig, stamp: "" };
        const config = await (await import("./loader.ts")).readConfigFile(found);
        entry.plugins = config.config.plugins.map((p) => ({ path: p.path, stamp: fileStamp(p.path) }));
        return { ...config, stamp: `${source}|${entry.plugins.map((p) => `${p.path}@${p.stamp}`).join("|")}` };
      } catch (err) {
        const e = CryoError.from(err);
        onError(e);
        return e;
      }
    })();
    return entry;
  };
  const fresh = (configPath: string, entry: Entry): boolean => {
    let found: string | null;
    try {
      found = findConfigFile({ ...search, explicitPath: configPath || undefined });
    } catch {
      return entry.source === "?";
    }
    const source = found === null ? "" : `${found}@${fileStamp(found)}`;
    return source === entry.source && entry.plugins.every((p) => fileStamp(p.path) === p.stamp);
  };
  const get = async (configPath: string): Promise<StampedConfig | CryoError> => {
    let entry = loaded.get(configPath);
    if (entry !== undefined) {
      // A load in flight is awaited first: its plugin stamps are known only once it ends.
      await entry.value;
      if (!fresh(configPath, entry)) entry = undefined;
    }
    if (entry === undefined) {
      entry = load(configPath);
      loaded.set(configPath, entry);
    }
    return entry.value;
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
