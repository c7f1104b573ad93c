/**
 * Reading and validating cryo's configuration file, found by the search order of find.ts (explicit
 * path, CRYO_CONFIG, /etc/cryo/config.toml, /etc/cryo/config.json; none: the empty configuration).
 * A file ending in `.json` is JSON, anything else TOML.
 * A file that cannot be read or parsed, or that fails validation, is one INVALID_ARGUMENT error
 * naming the file and the field: `config /etc/cryo/config.toml: invalid argument: checkpoint.compression: ...`.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import type { z } from "zod";
import { CryoError, fsError, invalidArgument } from "../errors.ts";
import { readRegularFile } from "../sys/regular-file.ts";
import { emptyCryoConfig, findConfigFile, type ConfigSearch, type LoadedConfig } from "./find.ts";
import { cryoConfigSchema, type CryoConfig } from "./schema.ts";

export { configEnvVar, defaultConfigPaths, emptyCryoConfig, findConfigFile, type ConfigSearch, type LoadedConfig } from "./find.ts";

/** Formats a zod issue path like `plugins[0].limits.timeout_ms`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const k of path) out += typeof k === "number" ? `[${k}]` : out ? `.${String(k)}` : String(k);
  return out || "(root)";
}

/** The shape of a zod schema as far as keysAt walks it (zod 4's `_zod.def`). */
interface SchemaDef {
  _zod?: { def: { type: string; innerType?: SchemaDef; in?: SchemaDef; element?: SchemaDef; shape?: Record<string, SchemaDef> } };
}

/**
 * The keys the object at `path` of the config schema takes (`checkpoint` -> its option names; `plugins[0]` -> a
 * plugin's), through optional, default and array wrappers; undefined where the path does not lead to an object.
 */
export function keysAt(schema: unknown, path: readonly PropertyKey[]): string[] | undefined {
  let s = schema as SchemaDef | undefined;
  for (let i = 0; ; i++) {
    let def = s?._zod?.def;
    while (def && (def.innerType || (def.type === "pipe" && def.in))) {
      s = def.innerType ?? def.in;
      def = s?._zod?.def;
    }
    if (!def) return undefined;
    if (i === path.length) return def.type === "object" && def.shape ? Object.keys(def.shape) : undefined;
    const k = path[i];
    if (def.type === "array" && typeof k === "number") s = def.element;
    else if (def.type === "object" && typeof k === "string" && def.shape && Object.hasOwn(def.shape, k)) s = def.shape[k];
    else return undefined;
  }
}

/**
 * One INVALID_ARGUMENT for the first issue (the others listed after it): the file, the field path, zod's message. An unknown key goes first: a
 * misspelt required key (`outsid` for `outside`) is also a missing one, and "expected string, received undefined" for
 * the key that is there, misspelt, did not point at the typo.
 */
function configError(source: string, error: z.ZodError): CryoError {
  const first = error.issues.find((i) => i.code === "unrecognized_keys") ?? error.issues[0];
  let detail = error.message;
  if (first?.code === "unrecognized_keys") {
    // A typo (`tcp_establised`) is named with the keys that place takes, so the fix is in the message, as for an
    // unknown cryo.checkpoint/ annotation.
    const known = keysAt(cryoConfigSchema, first.path);
    detail = first.keys.map((k) => `${fieldPath([...first.path, k])}: unknown key`).join("; ") + (known ? `; known: ${known.join(", ")}` : "");
  } else if (first) {
    detail = `${fieldPath(first.path)}: ${first.message}`;
  }
  // The other problems too, after the first (an operator fixed one, ran `cryo config check` again, and met the next).
  // A required key missing where an unknown key sits beside it is the typo's other half, already said.
  const samePath = (a: readonly PropertyKey[], b: readonly PropertyKey[]) => a.length === b.length && a.every((k, i) => k === b[i]);
  const typoHalf = (i: z.core.$ZodIssue) =>
    i.code === "invalid_type" && /received undefined/.test(i.message) && error.issues.some((u) => u.code === "unrecognized_keys" && samePath(u.path, i.path.slice(0, -1)));
  const rest = error.issues
    .filter((i) => i !== first && !typoHalf(i))
    .map((i) => (i.code === "unrecognized_keys" ? i.keys.map((k) => `${fieldPath([...i.path, k])}: unknown key`).join("; ") : `${fieldPath(i.path)}: ${i.message}`));
  if (rest.length > 0) detail += ` (and ${rest.length} more: ${rest.join("; ")})`;
  return invalidArgument(`config ${source}`, { detail, cause: error });
}

/** Parses and validates config text; `source` names the file in errors and anchors relative plugin paths. */
export function parseConfig(text: string, source: string): CryoConfig {
  let raw: unknown;
  const json = source.endsWith(".json");
  try {
    // A byte order mark (an editor's) is skipped, as the TOML parser skips it: JSON.parse said `Unrecognized token '<U+FEFF>'`,
    // naming a character no terminal shows.
    raw = json ? JSON.parse(text.replace(/^\uFEFF/, "")) : parseToml(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message.split("\n")[0] : String(err);
    // smol-toml's errors carry the line and column (its message's code block is dropped: one line per error). A
    // JSON.parse error's line and column are JavaScriptCore's, in cryo's own code: not the file's.
    const { line, column } = (err ?? {}) as { line?: unknown; column?: unknown };
    const at = !json && typeof line === "number" && typeof column === "number" ? ` (line ${line}, column ${column})` : "";
    throw invalidArgument(`config ${source}`, { detail: `cannot parse: ${msg}${at}`, cause: err });
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
  return source === null ? { source: null, config: emptyCryoConfig } : readConfigFile(source);
}

/** Reads and validates the configuration file `source` (found by findConfigFile). */
export function readConfigFile(source: string): LoadedConfig {
  let text: string;
  try {
    text = readRegularFile(source).toString("utf8");
  } catch (err) {
    // Named as for a plugin file: `cannot read: /x: failed precondition: /x is a FIFO, not a regular file` (a FIFO
    // blocked the shim daemon, every container it serves, until something wrote to it).
    throw invalidArgument(`config ${source}`, { detail: `cannot read: ${fsError(source, err, source).message}`, cause: err });
  }
  return { source, config: parseConfig(text, source) };
}
