/**
 * Adding and removing cryo's CRI runtime handler in a containerd config (version 2 TOML, containerd 1.6/1.7,
 * or version 3 and 4, containerd 2.x) as a text edit,
 * so comments and layout stay: the add appends one table, the remove cuts that table (and its subtables)
 * out. Each edit is checked by parsing both texts with smol-toml: the result must be the original plus
 * (or minus) exactly the cryo entry, or the edit is refused.
 */
import { isDeepStrictEqual } from "node:util";
import { parse } from "smol-toml";
import { failedPrecondition, invalidArgument } from "../errors.ts";
import { cryoRuntimeHandler, cryoRuntimeType } from "../containerd/index.ts";

/**
 * The config versions cryo edits: 2 (containerd 1.6 and 1.7; 2.x migrates it), 3 (containerd 2.0-2.2's own) and 4
 * (2.3's: it moved the shim manager's settings, not CRI's runtimes, whose table is where version 3 has it).
 */
export type ConfigVersion = 2 | 3 | 4;

/**
 * The key path of the CRI runtimes table: under the CRI plugin in version 2, under containerd 2.x's CRI runtime
 * plugin (`io.containerd.cri.v1.runtime`) in versions 3 and 4.
 */
export function criRuntimesPath(version: ConfigVersion): readonly string[] {
  return version === 2 ? ["plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"] : ["plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"];
}

/** A parsed config and its version. */
export interface ParsedConfig {
  doc: Table;
  version: ConfigVersion;
}

/** What an edit did: the new text, and whether it differs from the old one. */
export interface ConfigEdit {
  text: string;
  changed: boolean;
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * Parses config text. Unparsable TOML and a version that is not a number are INVALID_ARGUMENT (exit 2: malformed
 * content, docs/cli.md), version 1 and any but 2, 3 and 4 FAILED_PRECONDITION (a config cryo does not edit); each names source.
 */
export function parseConfig(text: string, source: string): ParsedConfig {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (err) {
    const first = (err instanceof Error ? err.message : String(err)).split("\n")[0];
    // smol-toml's error carries where (its message's code block is dropped: one line per error), as cryo's own config says it.
    const { line, column } = (err ?? {}) as { line?: unknown; column?: unknown };
    const at = typeof line === "number" && typeof column === "number" ? ` (line ${line}, column ${column})` : "";
    throw invalidArgument(`containerd config ${source}`, { cause: err, detail: `not valid TOML: ${first}${at}` });
  }
  const version = doc.version;
  if (version === undefined || version === 1) {
    throw failedPrecondition(`containerd config ${source}`, {
      detail:
        "version 1 (no `version = 2`): cryo edits version 2, 3 and 4 configs only; convert it first (`containerd config migrate` on containerd 2.x; containerd 1.6 reads version 2)",
    });
  }
  if (typeof version !== "number" && typeof version !== "bigint") {
    throw invalidArgument(`containerd config ${source}`, { detail: `version ${JSON.stringify(version)} is a ${typeof version}, not a number (write \`version = 2\`, without quotes)` });
  }
  if (version !== 2 && version !== 3 && version !== 4) {
    throw failedPrecondition(`containerd config ${source}`, { detail: `version ${String(version)}: cryo edits version 2, 3 and 4 configs only` });
  }
  // smol-toml reads `version = 2.0` as 2; containerd refuses a float there ("Can't convert 2(float64) to int").
  if (typeof (parse(text, { integersAsBigInt: true }) as Table).version === "number") {
    throw invalidArgument(`containerd config ${source}`, { detail: `version ${String(version)}.0 is a float, not an integer: containerd refuses it (write \`version = ${String(version)}\`)` });
  }
  return { doc, version };
}

/** The value at a key path, or undefined. */
function at(doc: Table, path: readonly string[]): unknown {
  let v: unknown = doc;
  for (const key of path) {
    if (!isTable(v)) return undefined;
    v = v[key];
  }
  return v;
}

/** A copy of doc with the cryo handler set (entry) or removed (undefined). */
function withCryo({ doc, version }: ParsedConfig, entry: Table | undefined): Table {
  const copy = structuredClone(doc);
  let t: Table = copy;
  for (const key of criRuntimesPath(version)) {
    if (!isTable(t[key])) {
      if (entry === undefined) return copy;
      t[key] = {};
    }
    t = t[key] as Table;
  }
  if (entry === undefined) delete t[cryoRuntimeHandler];
  else t[cryoRuntimeHandler] = entry;
  return copy;
}

/** The cryo entry of a parsed config, if any. */
export function cryoEntry({ doc, version }: ParsedConfig): unknown {
  return at(doc, [...criRuntimesPath(version), cryoRuntimeHandler]);
}

/** `a."b.c".d` as TOML writes a key path. */
export function tomlKeyPath(path: readonly string[]): string {
  return path.map((k) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k))).join(".");
}

/** Splits a dotted TOML key (`plugins."io.containerd.grpc.v1.cri".containerd`) into its parts; undefined if malformed. */
export function splitTomlKey(key: string): string[] | undefined {
  const parts: string[] = [];
  let i = 0;
  const s = key.trim();
  while (i < s.length) {
    while (s[i] === " " || s[i] === "\t") i++;
    const c = s[i];
    if (c === '"') {
      let j = i + 1;
      let part = "";
      while (j < s.length && s[j] !== '"') {
        if (s[j] === "\\") {
          const parsed = JSON.parse(`"${s.slice(j, j + 2)}"`) as string;
          part += parsed;
          j += 2;
        } else part += s[j++];
      }
      if (j >= s.length) return undefined;
      parts.push(part);
      i = j + 1;
    } else if (c === "'") {
      const j = s.indexOf("'", i + 1);
      if (j < 0) return undefined;
      parts.push(s.slice(i + 1, j));
      i = j + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(s.slice(i));
      if (!m) return undefined;
      parts.push(m[0]);
      i += m[0].length;
    }
    while (s[i] === " " || s[i] === "\t") i++;
    if (i < s.length) {
      if (s[i] !== ".") return undefined;
      i++;
    }
  }
  return parts;
}

/** The key path of a `[table]` header line, undefined for other lines (and for `[[array]]` headers). */
function headerPath(line: string): string[] | undefined {
  const m = /^\s*\[([^[\]]+)\]\s*(#.*)?$/.exec(line);
  return m ? splitTomlKey(m[1]!) : undefined;
}

function isArrayHeader(line: string): boolean {
  return /^\s*\[\[/.test(line);
}

function startsWith(path: readonly string[], prefix: readonly string[]): boolean {
  return prefix.length <= path.length && prefix.every((k, i) => path[i] === k);
}

/** A parsed config as plain JSON, without empty tables (adding a nested table creates its parents implicitly). */
function plain(doc: unknown): unknown {
  const prune = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(prune);
    if (!isTable(v)) return v;
    const out: Table = {};
    for (const [k, x] of Object.entries(v)) {
      const p = prune(x);
      if (!(isTable(p) && Object.keys(p).length === 0)) out[k] = p;
    }
    return out;
  };
  return prune(JSON.parse(JSON.stringify(doc)));
}

function checkResult(newText: string, expected: Table, source: string, what: string): void {
  let got: unknown;
  try {
    got = parse(newText);
  } catch (err) {
    throw failedPrecondition(`containerd config ${source}`, { cause: err, detail: `${what} would make it invalid TOML; edit it by hand` });
  }
  if (!isDeepStrictEqual(plain(got), plain(expected))) {
    throw failedPrecondition(`containerd config ${source}`, { detail: `${what} as a text edit would change more than the cryo handler; edit it by hand` });
  }
}

const addedComment = "# added by cryo install:";

/**
 * What `cryo install` may set in the handler's table beside runtime_type: the annotation patterns CRI copies into the
 * OCI spec (`pod_annotations`, `container_annotations`: where cryo reads `cryo.checkpoint/*`, `io.cryo.*` and
 * `cryo.notify/*`, docs/cri.md), and the handler's `options.ConfigPath` (cryo's config file, docs/config.md: the one
 * key CRI passes to a runtime other than runc's).
 */
export interface HandlerSettings {
  podAnnotations?: readonly string[];
  containerAnnotations?: readonly string[];
  configPath?: string;
}

/** The table cryo's handler gets. */
export function cryoRuntimeEntry(settings: HandlerSettings = {}): Table {
  const entry: Table = { runtime_type: cryoRuntimeType };
  if (settings.podAnnotations?.length) entry.pod_annotations = [...settings.podAnnotations];
  if (settings.containerAnnotations?.length) entry.container_annotations = [...settings.containerAnnotations];
  if (settings.configPath !== undefined) entry.options = { ConfigPath: settings.configPath };
  return entry;
}

/**
 * Adds `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cryo]` (version 2) or
 * `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.cryo]` (versions 3 and 4) with runtime_type
 * io.containerd.cryo.v2, and the settings asked for (HandlerSettings). Unchanged when it is already there with that
 * type and, for each setting asked for, that value; FAILED_PRECONDITION when a `cryo` handler has another type or
 * another value of a setting asked for (naming it: `cryo uninstall` first, or an edit by hand).
 */
export function addCryoRuntime(text: string, source: string, settings: HandlerSettings = {}): ConfigEdit {
  const parsed = parseConfig(text, source);
  const existing = cryoEntry(parsed);
  const entry = cryoRuntimeEntry(settings);
  if (existing !== undefined) {
    const type = isTable(existing) ? existing.runtime_type : undefined;
    if (type !== cryoRuntimeType) {
      throw failedPrecondition(`containerd config ${source}`, {
        detail: `it already has a runtime handler "${cryoRuntimeHandler}" with runtime_type ${JSON.stringify(type)}; remove it first`,
      });
    }
    const same = (a: unknown, b: unknown) => (a === undefined || b === undefined ? a === b : isDeepStrictEqual(plain(a), plain(b)));
    const differ = Object.keys(entry).filter((k) => !same((existing as Table)[k], entry[k]));
    if (differ.length === 0) return { text, changed: false };
    throw failedPrecondition(`containerd config ${source}`, {
      detail: `its runtime handler "${cryoRuntimeHandler}" has another ${differ.join(", ")} than asked for (${differ.map((k) => `${k} = ${JSON.stringify((existing as Table)[k] ?? null)}`).join(", ")}); run \`cryo uninstall\` first, or edit it by hand`,
    });
  }
  const path = [...criRuntimesPath(parsed.version), cryoRuntimeHandler];
  const header = `[${tomlKeyPath(path)}]`;
  // JSON's string and array forms are TOML's basic strings and arrays for what HandlerSettings allows.
  const keys = [`  runtime_type = "${cryoRuntimeType}"`];
  if (entry.pod_annotations) keys.push(`  pod_annotations = ${JSON.stringify(entry.pod_annotations).replaceAll(",", ", ")}`);
  if (entry.container_annotations) keys.push(`  container_annotations = ${JSON.stringify(entry.container_annotations).replaceAll(",", ", ")}`);
  if (settings.configPath !== undefined) keys.push("", `[${tomlKeyPath([...path, "options"])}]`, `  ConfigPath = ${JSON.stringify(settings.configPath)}`);
  const block = `\n${addedComment} the CRI runtime handler "${cryoRuntimeHandler}" (RuntimeClass handler) for ${cryoRuntimeType}\n${header}\n${keys.join("\n")}\n`;
  const newText = `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}${block}`;
  checkResult(newText, withCryo(parsed, entry), source, `adding ${header}`);
  return { text: newText, changed: true };
}

/**
 * Removes the cryo handler table (its header, its keys, its subtables, and the comment line cryo install put
 * above it). Unchanged when absent; FAILED_PRECONDITION when it is written in a form a text edit cannot cut
 * out cleanly (inline tables, dotted keys), or when its runtime_type is not cryo's.
 */
export function removeCryoRuntime(text: string, source: string): ConfigEdit {
  const parsed = parseConfig(text, source);
  const existing = cryoEntry(parsed);
  if (existing === undefined) return { text, changed: false };
  // A handler of that name for another runtime is not cryo's, as install says of it: it was cut out all the same.
  const type = isTable(existing) ? existing.runtime_type : undefined;
  if (type !== cryoRuntimeType) {
    throw failedPrecondition(`containerd config ${source}`, {
      detail: `its runtime handler "${cryoRuntimeHandler}" has runtime_type ${JSON.stringify(type)}, not ${cryoRuntimeType}: not cryo's, left alone`,
    });
  }
  const target = [...criRuntimesPath(parsed.version), cryoRuntimeHandler];
  const lines = text.split("\n");
  const kept: string[] = [];
  let cutting = false;
  for (const line of lines) {
    const path = headerPath(line);
    if (path !== undefined || isArrayHeader(line)) {
      const wasCutting = cutting;
      cutting = path !== undefined && startsWith(path, target);
      // The comment `cryo install` wrote above the table goes with it, and so does the blank line before that.
      if (cutting && !wasCutting && kept.at(-1)?.startsWith(addedComment)) {
        kept.pop();
        if (kept.at(-1) === "") kept.pop();
      }
    }
    if (!cutting) kept.push(line);
  }
  let newText = kept.join("\n");
  if (text.endsWith("\n") && !newText.endsWith("\n")) newText += "\n";
  checkResult(newText, withCryo(parsed, undefined), source, `removing the ${cryoRuntimeHandler} handler`);
  return { text: newText, changed: true };
}
