/**
 * `cryo plugin test PLUGIN.wasm --hook NAME --input FILE [--config FILE]`: runs one hook of one
 * plugin against sample input, the same way the shim would, and reports the decision, the time the
 * call took and the plugin's memory.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { CryoError, invalidArgument } from "../errors.ts";
import { pluginConfigSchema, type PluginConfig } from "./config.ts";
import { hookNameSchema, hookSchemas, type HookName, type HookOutputs } from "./hook-schemas.ts";
import { createPluginHost } from "./plugin-host.ts";
import { capReason } from "./policy-engine.ts";
import type { PluginLog } from "./runner-protocol.ts";

/** What to test. */
export interface PluginTestOptions {
  /** Path to the .wasm file. */
  wasm: string;
  hook: string;
  /** A JSON file holding the hook's input. */
  inputFile: string;
  /** The plugin's own config values (as in the `config` table of its entry). */
  config?: Record<string, string>;
  timeoutMs?: number;
  memoryMib?: number;
  /** Hosts the plugin may reach over HTTP (its entry's `grants.allowed_hosts`); none by default. */
  allowedHosts?: string[];
}

/** The outcome of a plugin test. */
export interface PluginTestResult {
  hook: HookName;
  output: HookOutputs[HookName];
  /** Wall time of the call inside the runner. */
  durationMs: number;
  /** Wall time including loading the plugin (first call). */
  totalMs: number;
  memoryBytes: number;
  logs: PluginLog[];
}

/** Runs one hook of one plugin against input from a file; plugin failures throw the same errors the shim would. */
export async function runPluginTest(opts: PluginTestOptions): Promise<PluginTestResult> {
  const hook = hookNameSchema.safeParse(opts.hook);
  if (!hook.success) throw invalidArgument(`--hook ${opts.hook}`, { detail: `must be one of ${hookNameSchema.options.join(", ")}` });
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(opts.inputFile, "utf8"));
  } catch (err) {
    throw invalidArgument(`input ${opts.inputFile}`, { detail: (err as Error).message, cause: err });
  }
  const input = hookSchemas[hook.data].input.safeParse(raw);
  if (!input.success) {
    // Every problem of the file, as a config file's error names them: an author fixing one field at a time learnt of
    // the next only on the next run.
    const detail = input.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw invalidArgument(`input ${opts.inputFile}`, { detail });
  }
  const name = basename(opts.wasm).replace(/\.wasm$/, "").toLowerCase().replace(/[^a-z0-9._-]/g, "-") || "plugin";
  const parsed = pluginConfigSchema.safeParse({
    name: /^[a-z0-9]/.test(name) ? name : `p${name}`,
    path: opts.wasm,
    hooks: [hook.data],
    config: opts.config ?? {},
    limits: { timeout_ms: opts.timeoutMs ?? 1000, memory_mib: opts.memoryMib ?? 32 },
    grants: { allowed_hosts: opts.allowedHosts ?? [] },
  });
  if (!parsed.success) {
    // Named by the flag that gave the value: "limits.memory_mib: Too big" was a config file's key, of which this
    // command has none (--memory-mib 5000, --timeout-ms 70000, --allow-host http://x).
    const issue = parsed.error.issues[0];
    const [section, key, index] = issue?.path ?? [];
    const flag =
      section === "limits" && key === "memory_mib"
        ? `--memory-mib ${opts.memoryMib}`
        : section === "limits" && key === "timeout_ms"
          ? `--timeout-ms ${opts.timeoutMs}`
          : section === "grants" && key === "allowed_hosts" && typeof index === "number"
            ? `--allow-host ${opts.allowedHosts?.[index]}`
            : section === "config"
              ? `--config ${String(key)}`
              : undefined;
    if (flag !== undefined) throw invalidArgument(flag, { detail: issue?.message ?? "" });
    throw invalidArgument(`plugin ${opts.wasm}`, { detail: `${issue?.path.join(".") ?? ""}: ${issue?.message ?? ""}` });
  }
  const config: PluginConfig = parsed.data;
  const host = createPluginHost();
  try {
    let plugin: ReturnType<typeof host.load>;
    try {
      plugin = host.load(config);
    } catch (err) {
      // The host's words are for a config's hooks list, which this command has none of: a module without the export
      // of --hook read `hooks lists "checkpoint" but the module has no export "checkpoint"`.
      const listed = `hooks lists "${hook.data}" but the module`;
      if (err instanceof CryoError && err.message.includes(listed)) {
        throw new CryoError(err.code, err.message.replace(listed, `--hook ${hook.data}: the module`), { cause: err });
      }
      throw err;
    }
    const started = performance.now();
    const result = await host.call(plugin, hook.data, input.data as never);
    return {
      hook: hook.data,
      output: result.output,
      durationMs: result.durationMs,
      totalMs: performance.now() - started,
      memoryBytes: result.memoryBytes,
      logs: result.logs,
    };
  } finally {
    await host.close();
  }
}

/** Formats a plugin test result the way `cryo plugin test` prints it. */
export function formatPluginTestResult(r: PluginTestResult): string {
  // The reason as the shim reports it (cut at 4096 characters): a 10 MB reason was printed whole, where ctr shows the cut.
  const decision = r.output.allow ? "allow" : `deny: ${r.output.reason ? capReason(r.output.reason) : "(no reason)"}`;
  const lines = [`decision: ${decision}`];
  if ("changes" in r.output && r.output.changes) lines.push(`changes:  ${JSON.stringify(r.output.changes)}`);
  if ("options" in r.output && r.output.options) lines.push(`options:  ${JSON.stringify(r.output.options)}`);
  if (r.output.allow && r.output.reason) lines.push(`reason:   ${r.output.reason}`);
  lines.push(`time:     ${r.durationMs.toFixed(3)} ms (call), ${r.totalMs.toFixed(1)} ms (with loading)`);
  lines.push(`memory:   ${(r.memoryBytes / 1024).toFixed(0)} KiB (${r.memoryBytes / 65536} wasm page${r.memoryBytes === 65536 ? "" : "s"})`);
  for (const l of r.logs) lines.push(`log ${l.level}: ${l.message}`);
  return lines.join("\n");
}
