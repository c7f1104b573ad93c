/**
 * The plugin host: loads plugins (once each) and calls their hooks with validated JSON in and out,
 * under each plugin's time and memory limits.
 *
 * All calls of one host go through one serial queue and one runner process, so a deadline always
 * belongs to exactly one call: when a call runs over, the runner is killed, the call fails with a
 * DEADLINE_EXCEEDED error, and the next call starts a fresh runner and reloads the plugins it uses.
 * Failures name the plugin and the hook: `plugin deny-privileged: hook admit: timed out after 500 ms`.
 */
import type { z } from "zod";
import { Code, CryoError, fsError, invalidArgument } from "../errors.ts";
import { readRegularFile } from "../sys/regular-file.ts";
import type { PluginConfig } from "./config.ts";
import { hookSchemas, type HookInputs, type HookName, type HookOutputs } from "./hook-schemas.ts";
import { PluginRunner } from "./plugin-runner.ts";
import type { PluginLog } from "./runner-protocol.ts";
import { capModuleMemory, wasmPageBytes } from "./wasm-memory.ts";
import { stringifyPreciseJson } from "../sys/precise-json.ts";

/**
 * How long starting a runner and compiling one plugin may take. Instantiating it runs the module's start function,
 * the plugin's own code: that runs under the plugin's `limits.timeout_ms`, as a hook call does.
 */
export const loadTimeoutMs = 15_000;

/**
 * How long a runner with nothing to do stays: each engine (one per config file a daemon has used) has its runner
 * process, ~10 MiB, and a shared daemon sees many configs over its life. The next call starts a new runner and
 * loads the plugins it needs again. CRYO_PLUGIN_RUNNER_IDLE_MS overrides it (0: no idle end).
 */
export const runnerIdleMs = 10_000;

/** Options of a plugin host. */
export interface PluginHostOptions {
  /** Ends the runner after this long without a request (default: CRYO_PLUGIN_RUNNER_IDLE_MS or runnerIdleMs; 0: never). */
  idleMs?: number;
}

/** A plugin read, checked and ready to be called. */
export interface LoadedPlugin {
  readonly config: PluginConfig;
  /** The module's exports that are functions. */
  readonly exports: ReadonlySet<string>;
}

/** The result of one successful hook call. */
export interface HookCallResult<H extends HookName> {
  output: HookOutputs[H];
  durationMs: number;
  /** Size of the plugin's linear memory after the call. */
  memoryBytes: number;
  logs: PluginLog[];
}

/** Loads plugins and calls their hooks. */
export interface PluginHost {
  /** Reads and checks a plugin (file, memory cap, exports for its hooks, grants); throws INVALID_ARGUMENT naming it. */
  load(config: PluginConfig): LoadedPlugin;
  /** Calls one hook of one plugin; a broken plugin gives a CryoError naming plugin and hook. */
  call<H extends HookName>(plugin: LoadedPlugin, hook: H, input: HookInputs[H]): Promise<HookCallResult<H>>;
  /** Starts the runner and instantiates the plugin there now, so that its first call does not pay for it. */
  preload(plugin: LoadedPlugin): Promise<void>;
  /** Stops the runner process. */
  close(): Promise<void>;
  /** The runner process's pid, while one runs. */
  runnerPid(): number | null;
}

interface Internal extends LoadedPlugin {
  key: string;
  wasm: Uint8Array<ArrayBuffer>;
  maxPages: number;
  loadedIn: number;
}

/**
 * The most of a failure's detail shown, as of a deny reason (MAX_REASON_CHARS): the detail can quote the plugin's
 * output (an unknown key of it, an error it set), and ttrpc and gRPC refuse a message over 4 MiB, which would lose the
 * plugin's name and the hook with it (and a fail-open warning would put all of it in the daemon's log).
 */
export const MAX_FAILURE_DETAIL_CHARS = 4096;

/** Creates the error for a plugin failure: `plugin NAME: hook HOOK: DETAIL`, the detail cut at MAX_FAILURE_DETAIL_CHARS. */
export function pluginFailure(name: string, hook: string, code: Code, detail: string, cause?: unknown): CryoError {
  const shown = detail.length <= MAX_FAILURE_DETAIL_CHARS ? detail : `${detail.slice(0, MAX_FAILURE_DETAIL_CHARS)}... (${detail.length - MAX_FAILURE_DETAIL_CHARS} more characters)`;
  return new CryoError(code, `plugin ${name}: hook ${hook}: ${shown}`, { cause });
}

/** Creates a plugin host with its own (lazily started) runner process. */
export function createPluginHost(options: PluginHostOptions = {}): PluginHost {
  const runner = new PluginRunner();
  let queue: Promise<unknown> = Promise.resolve();
  let nextKey = 1;
  const idleMs = options.idleMs ?? idleFromEnv(process.env.CRYO_PLUGIN_RUNNER_IDLE_MS);
  let idle: ReturnType<typeof setTimeout> | undefined;
  let pending = 0;
  let closed = false;
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    clearTimeout(idle);
    pending++;
    const run = queue.then(fn, fn);
    queue = run
      .catch(() => {})
      .finally(() => {
        if (--pending > 0 || idleMs <= 0 || closed || runner.pid === null) return;
        // Unref'd: an idle runner never keeps the process (a CLI's) alive.
        idle = setTimeout(() => void serial(() => runner.kill()), idleMs);
        idle.unref();
      });
    return run;
  };

  function load(config: PluginConfig): LoadedPlugin {
    const what = `plugin ${config.name}`;
    if (Object.keys(config.grants.allowed_paths).length > 0)
      throw invalidArgument(what, { detail: "grants.allowed_paths: file access needs WASI, which the Extism host on Bun does not provide" });
    let bytes: Uint8Array;
    try {
      bytes = readRegularFile(config.path);
    } catch (err) {
      // Named as every path the CLI is given is (fsError): `plugin p: invalid argument: plugin file /x: not found`.
      // The path is passed too: Bun's EISDIR error has none, which left "failed precondition:  is a directory".
      throw invalidArgument(what, { detail: `plugin file ${fsError(config.path, err, config.path).message}`, cause: err });
    }
    const maxPages = Math.floor((config.limits.memory_mib * 1024 * 1024) / wasmPageBytes);
    const capped = capModuleMemory(bytes, maxPages, `${what} (${config.path})`);
    let module: WebAssembly.Module;
    try {
      module = new WebAssembly.Module(capped.bytes);
    } catch (err) {
      throw invalidArgument(what, { detail: `${config.path} is not a valid WebAssembly module: ${(err as Error).message}`, cause: err });
    }
    const imports = WebAssembly.Module.imports(module);
    const wasi = imports.find((i) => i.module.startsWith("wasi"));
    if (wasi) throw invalidArgument(what, { detail: `imports ${wasi.module}.${wasi.name}: plugins for cryo are built without WASI` });
    const foreign = imports.filter((i) => i.module !== "extism:host/env");
    if (foreign.length > 0) throw invalidArgument(what, { detail: foreignImportsDetail(foreign.map((i) => `${i.module}.${i.name}`)) });
    const exports = new Set(WebAssembly.Module.exports(module).filter((e) => e.kind === "function").map((e) => e.name));
    // The functions it does export are named: a misspelt export (`Admit`, `admission`) shows at once.
    const has = exports.size === 0 ? "it exports no function" : `its functions: ${[...exports].join(", ")}`;
    for (const hook of config.hooks) if (!exports.has(hook)) throw invalidArgument(what, { detail: `hooks lists "${hook}" but the module has no export "${hook}" (${has})` });
    const plugin: Internal = { config, exports, key: `${config.name}#${nextKey++}`, wasm: capped.bytes, maxPages: capped.maxPages, loadedIn: 0 };
    return plugin;
  }

  async function ensureLoaded(p: Internal, hook: string): Promise<void> {
    const generation = runner.start();
    if (p.loadedIn === generation) return;
    const name = p.config.name;
    const loaded = await runner.request(
      { t: "load", key: p.key, wasm: p.wasm, config: p.config.config, maxPages: p.maxPages, allowedHosts: p.config.grants.allowed_hosts },
      loadTimeoutMs,
    );
    if (loaded.kind === "timeout") throw pluginFailure(name, hook, Code.DEADLINE_EXCEEDED, `loading timed out after ${loadTimeoutMs} ms`);
    if (loaded.kind === "exited") throw pluginFailure(name, hook, Code.UNAVAILABLE, `plugin runner died while loading (${loaded.detail})`);
    if (!loaded.reply.ok) throw pluginFailure(name, hook, Code.FAILED_PRECONDITION, `cannot load: ${loaded.reply.message}`);
    // Instantiation runs the module's start function (top-level code): the plugin's time limit applies.
    const timeout = p.config.limits.timeout_ms;
    const init = await runner.request({ t: "init", key: p.key }, timeout);
    if (init.kind === "timeout") throw pluginFailure(name, hook, Code.DEADLINE_EXCEEDED, `instantiation (the module's start function) timed out after ${timeout} ms`);
    if (init.kind === "exited") throw pluginFailure(name, hook, Code.UNAVAILABLE, `plugin runner died while instantiating (${init.detail})`);
    if (!init.reply.ok) throw pluginFailure(name, hook, Code.FAILED_PRECONDITION, `cannot instantiate: ${stripJscWhere(init.reply.message)}`);
    p.loadedIn = generation;
  }

  async function callOnce<H extends HookName>(p: Internal, hook: H, input: HookInputs[H]): Promise<HookCallResult<H>> {
    const name = p.config.name;
    const schemas = hookSchemas[hook];
    const checkedInput = schemas.input.safeParse(input);
    if (!checkedInput.success) throw invalidArgument(`plugin ${name}: hook ${hook}: input`, { detail: checkedInput.error.issues[0]?.message ?? "" });
    await ensureLoaded(p, hook);
    const timeout = p.config.limits.timeout_ms;
    const outcome = await runner.request({ t: "call", key: p.key, fn: hook, input: stringifyPreciseJson(checkedInput.data) }, timeout);
    if (outcome.kind === "timeout") throw pluginFailure(name, hook, Code.DEADLINE_EXCEEDED, `timed out after ${timeout} ms`);
    if (outcome.kind === "exited") throw pluginFailure(name, hook, Code.UNAVAILABLE, `plugin runner died (${outcome.detail})`);
    const reply = outcome.reply;
    if (!reply.ok) {
      switch (reply.kind) {
        case "memory":
          throw pluginFailure(name, hook, Code.RESOURCE_EXHAUSTED, `exceeded its memory limit of ${p.config.limits.memory_mib} MiB: ${stripJscWhere(reply.message)}`);
        case "network": {
          const hosts = p.config.grants.allowed_hosts;
          const granted = hosts.length === 0 ? "none" : hosts.map((h) => JSON.stringify(h)).join(", ");
          throw pluginFailure(name, hook, Code.PERMISSION_DENIED, `network access refused (grants.allowed_hosts: ${granted}): ${reply.message}`);
        }
        case "http":
          throw pluginFailure(name, hook, Code.UNAVAILABLE, `an HTTP request it is granted got no answer: ${reply.message}`);
        case "trap": {
          const message = stripJscWhere(reply.message);
          // A bare `unreachable`, with no abort message before it, is what AssemblyScript's allocator does when memory.grow
          // fails, however far from the cap the memory is (a 12 MiB array at 12 of 16 MiB): say so, with the numbers.
          const hint =
            message === "Unreachable code should not be executed"
              ? ` (with no abort message: AssemblyScript's allocator traps so when its memory cannot grow; the plugin's memory was ${mib(reply.memoryBytes)} of its ${p.config.limits.memory_mib} MiB limit)`
              : "";
          throw pluginFailure(name, hook, Code.FAILED_PRECONDITION, `trapped: ${message}${hint}`);
        }
        default:
          throw pluginFailure(name, hook, Code.FAILED_PRECONDITION, reply.message);
      }
    }
    if (reply.output === null || reply.output === "") throw pluginFailure(name, hook, Code.FAILED_PRECONDITION, "returned no output");
    let json: unknown;
    try {
      json = JSON.parse(reply.output);
    } catch (err) {
      throw pluginFailure(name, hook, Code.FAILED_PRECONDITION, `returned malformed JSON: ${(err as Error).message}`, err);
    }
    const checked = schemas.output.safeParse(json);
    if (!checked.success) throw pluginFailure(name, hook, Code.FAILED_PRECONDITION, `invalid output: ${describeOutputIssue(checked.error.issues[0])}`, checked.error);
    return { output: checked.data as HookOutputs[H], durationMs: reply.durationMs, memoryBytes: reply.memoryBytes, logs: reply.logs };
  }

  return {
    load,
    call: (plugin, hook, input) => serial(() => callOnce(plugin as Internal, hook, input)),
    preload: (plugin) => serial(() => ensureLoaded(plugin as Internal, "load")),
    close: () => {
      closed = true;
      return serial(() => runner.kill());
    },
    runnerPid: () => runner.pid,
  };
}

/**
 * One output issue as `PATH: MESSAGE`. A bad key of a record (an `env` name with `=`, an empty annotation key) is zod's
 * `invalid_key`, whose own message is only "Invalid key in record": the reason is in its inner issue, and the key is
 * quoted, since it may hold the `.` or `=` a dotted path would blur (`changes.env["A=B"]: an environment variable's
 * name: not empty, without = or NUL`).
 */
export function describeOutputIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return "";
  const path = issue.path.map((k, i) => (typeof k === "number" ? `[${k}]` : /^[A-Za-z_$][\w$]*$/.test(String(k)) ? `${i === 0 ? "" : "."}${String(k)}` : `[${JSON.stringify(String(k))}]`)).join("");
  const where = path === "" ? "" : `${path}: `;
  if (issue.code === "invalid_key") {
    const inner = issue.issues[0];
    return `${where}invalid key: ${inner?.message ?? issue.message}`;
  }
  return `${where}${issue.message}`;
}

/**
 * What a module's imports outside Extism's host functions are, and what an AssemblyScript author does about them:
 * the hint named only `--use abort=...`, also for `env.trace` (AssemblyScript's trace()), where the flag is no help.
 */
function foreignImportsDetail(names: string[]): string {
  const hints: string[] = [];
  if (names.includes("env.abort")) hints.push("env.abort is AssemblyScript's default abort: build with --use abort=<the SDK>/index/cryoAbort");
  if (names.some((n) => n === "env.trace" || n.startsWith("env.console."))) hints.push("env.trace and env.console.* are AssemblyScript's trace() and console: log with the SDK's log()");
  const rest = names.filter((n) => n !== "env.abort" && n !== "env.trace" && !n.startsWith("env.console."));
  if (rest.length > 0) hints.push(`remove what uses ${rest.join(", ")}`);
  return `imports ${names.join(", ")}, which cryo does not provide (only Extism's extism:host/env): ${hints.join("; ")}`;
}

/**
 * JavaScriptCore appends where in the host's (minified) JavaScript a trap surfaced, "(evaluating 'n()')", which says
 * nothing about the plugin and changes from build to build.
 */
function stripJscWhere(message: string): string {
  return message.replace(/ \(evaluating '[^']*'\)$/, "");
}

/** Bytes as MiB, one decimal: "12.1 MiB". */
function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function idleFromEnv(value: string | undefined): number {
  if (value === undefined || value === "") return runnerIdleMs;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw invalidArgument("CRYO_PLUGIN_RUNNER_IDLE_MS", { detail: `${JSON.stringify(value)} is not a whole number of milliseconds` });
  return n;
}
