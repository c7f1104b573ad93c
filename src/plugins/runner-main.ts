/**
 * The plugin runner: a child process that instantiates plugins with Extism and runs their calls.
 *
 * Why a process and not a Worker: on Bun, Worker.terminate() does not stop a thread that is inside
 * a WebAssembly loop (measured: the thread keeps a core busy after terminate), so a hung plugin
 * could only be stopped by killing a process. The host kills this process with SIGKILL when a call
 * runs past its time limit and starts a new one for the next call.
 *
 * Started either as `bun src/plugins/runner-main.ts` (from source) or, inside a compiled cryo
 * binary, by re-executing the binary with CRYO_PLUGIN_RUNNER=1 (its entry point calls
 * {@link runPluginRunner} first thing when {@link isPluginRunnerProcess} is true).
 */
import createPlugin, { type Plugin } from "extism";
import { runnerEnvVar, runnerRequestSchema, type PluginLog, type RunnerReply, type RunnerRequest } from "./runner-protocol.ts";
import { wasmPageBytes } from "./wasm-memory.ts";

interface Entry {
  module: WebAssembly.Module;
  config: Record<string, string>;
  maxPages: number;
  allowedHosts: string[];
  plugin: Plugin | null;
  /** Status of the plugin's last HTTP response (0: none yet). */
  httpStatus: number;
}

/**
 * The fetch a plugin's HTTP requests go through: one request, never following a redirect; records
 * the status for http_status_code.
 */
function pluginFetch(e: Entry): typeof fetch {
  return (async (url: string | URL | Request, init?: RequestInit) => {
    e.httpStatus = 0;
    const res = await fetch(url, { ...init, redirect: "manual" });
    e.httpStatus = res.status;
    return res;
  }) as typeof fetch;
}

/** True when this process was started to be a plugin runner. */
export function isPluginRunnerProcess(): boolean {
  return process.env[runnerEnvVar] === "1";
}

/** Serves plugin requests on the IPC channel until the parent goes away. */
export function runPluginRunner(): void {
  const entries = new Map<string, Entry>();
  let logs: PluginLog[] = [];
  // Extism's own line when its host memory (input, log lines, outputs) passes the cap: its alloc then returns 0 and
  // the plugin traps writing there. Kept apart from the 100 lines a call keeps, which the plugin can fill first.
  let hostMemoryExceeded: string | null = null;
  const record = (level: string) => (...args: unknown[]) => {
    const message = args.map(String).join(" ").slice(0, 4096);
    if (level === "error" && hostMemoryExceeded === null && /^(var )?memory limit exceeded: /.test(message)) hostMemoryExceeded = message;
    if (logs.length < 100) logs.push({ level, message });
  };
  const logger = { trace: record("trace"), debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error"), log: record("info") } as unknown as Console;

  // Network (grants.allowed_hosts): Extism's http_request is asynchronous (fetch). The plugin runs on
  // this thread, not in Extism's worker (runInWorker): Bun has JSPI (WebAssembly.Suspending and
  // promising), with which Extism suspends the plugin while the request runs; and its worker cannot
  // start inside a compiled cryo binary (measured: "Cannot find module '/$bunfs/root/worker.js'",
  // the runner exits while loading), which is how the shim runs plugins. Extism checks each URL's
  // host against allowedHosts (an empty list refuses every request); redirects are not followed, so an
  // allowed host cannot send the plugin on to a host that is not allowed (the plugin sees the 3xx).
  // http_status_code is cryo's: Extism (2.0.0-rc13) swaps in its working one only for imports listed
  // after http_request, and AssemblyScript can list it before (measured: status 0 after a 200).
  const instantiate = (e: Entry) =>
    createPlugin(
      { wasm: [{ module: e.module }] },
      {
        useWasi: false,
        config: e.config,
        // Variables (Extism's Var) outlive the call in this process's heap, not in the plugin's memory: without
        // maxVarBytes a plugin limited to 16 MiB kept 2 MiB more with every call (60 calls: the runner at 453 MiB).
        memory: { maxPages: e.maxPages, maxVarBytes: e.maxPages * wasmPageBytes },
        allowedHosts: e.allowedHosts,
        runInWorker: false,
        fetch: pluginFetch(e),
        functions: { "extism:host/env": { http_status_code: () => e.httpStatus } },
        logger,
        logLevel: "info",
      },
    );

  const memoryOf = async (p: Plugin | null): Promise<number> => {
    if (!p) return 0;
    try {
      const mem = (await p.getInstance()).exports.memory;
      return mem instanceof WebAssembly.Memory ? mem.buffer.byteLength : 0;
    } catch {
      return 0;
    }
  };

  const handle = async (req: RunnerRequest): Promise<RunnerReply> => {
    logs = [];
    hostMemoryExceeded = null;
    const started = performance.now();
    type Body = RunnerReply extends infer R ? (R extends RunnerReply ? Omit<R, "id" | "durationMs" | "logs"> : never) : never;
    const done = (r: Body): RunnerReply =>
      ({ ...r, id: req.id, durationMs: performance.now() - started, logs }) as RunnerReply;
    if (req.t === "load") {
      try {
        const entry: Entry = { module: await WebAssembly.compile(req.wasm), config: req.config, maxPages: req.maxPages, allowedHosts: req.allowedHosts, plugin: null, httpStatus: 0 };
        entries.set(req.key, entry);
        return done({ ok: true, output: null, memoryBytes: 0 });
      } catch (err) {
        return done({ ok: false, kind: "load", message: (err as Error).message ?? String(err), memoryBytes: 0 });
      }
    }
    const entry = entries.get(req.key);
    if (!entry) return done({ ok: false, kind: "not-loaded", message: `plugin ${req.key} is not loaded`, memoryBytes: 0 });
    if (req.t === "init") {
      try {
        entry.plugin ??= await instantiate(entry);
        return done({ ok: true, output: null, memoryBytes: await memoryOf(entry.plugin) });
      } catch (err) {
        return done({ ok: false, kind: "load", message: (err as Error).message ?? String(err), memoryBytes: 0 });
      }
    }
    // A trap can leave a plugin's runtime half-way through an update: start each call after a trap afresh.
    entry.plugin ??= await instantiate(entry);
    const plugin = entry.plugin;
    if (!(await plugin.functionExists(req.fn))) return done({ ok: false, kind: "missing-export", message: `the plugin has no export "${req.fn}"`, memoryBytes: 0 });
    try {
      const out = await plugin.call(req.fn, req.input);
      return done({ ok: true, output: out === null ? null : out.text(), memoryBytes: await memoryOf(plugin) });
    } catch (err) {
      const memoryBytes = await memoryOf(plugin);
      entry.plugin = null;
      await plugin.close().catch(() => {});
      // A trap with the memory (nearly) at its cap is the allocator failing to grow: AssemblyScript's
      // allocator traps when memory.grow fails, so "within the last 10% (at least 16 pages)" counts.
      const limitBytes = entry.maxPages * wasmPageBytes;
      const atLimit = memoryBytes >= limitBytes - Math.max(16 * wasmPageBytes, limitBytes / 10);
      const text = (err as Error).message ?? String(err);
      // Extism refused an HTTP request (no allowedHosts entry matches its host): the plugin asked for
      // network it was not granted, which is not a bug in it.
      const refused = /HTTP request to .* is not allowed.*/.exec(text);
      if (refused) return done({ ok: false, kind: "network", message: refused[0], memoryBytes });
      // A request it was granted that did not get an answer (nothing listens, no such name, cut off): the network's
      // doing, not a trap of the plugin's (it read "trapped: ECONNREFUSED").
      if (/^(ECONNREFUSED|ECONNRESET|ENOTFOUND|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ConnectionRefused|ConnectionClosed|FailedToOpenSocket)\b|Unable to connect/.test(text)) {
        return done({ ok: false, kind: "http", message: text, memoryBytes });
      }
      const errors = logs.filter((l) => l.level === "error").map((l) => l.message);
      if (hostMemoryExceeded !== null && !errors.includes(hostMemoryExceeded)) errors.unshift(hostMemoryExceeded);
      // Extism throws an error the plugin set as "Plugin-originated error: " + the line it logged: said once.
      const message = (errors.some((e) => text.endsWith(e)) ? errors : [...errors, text]).join(": ");
      return done({ ok: false, kind: atLimit || hostMemoryExceeded !== null ? "memory" : "trap", message, memoryBytes });
    }
  };

  process.on("message", async (raw: unknown) => {
    const parsed = runnerRequestSchema.safeParse(raw);
    if (!parsed.success) {
      console.error(`cryo plugin runner: malformed request: ${parsed.error.message}`);
      return;
    }
    process.send!(await handle(parsed.data));
  });
  process.on("disconnect", () => process.exit(0));
}

if (import.meta.main) runPluginRunner();
