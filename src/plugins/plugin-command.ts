/**
 * `cryo plugin test PLUGIN.wasm --hook NAME --input FILE [--config KEY=VALUE]... [--allow-host HOST]... [--timeout-ms N] [--memory-mib N]`
 * (registered in src/cli/commands.ts): runs one hook of a plugin against sample input and prints the
 * decision, the time the call took and the plugin's memory. Exit 0 when the plugin answered (allow
 * or deny), 1 when it broke (trap, timeout, memory, bad output) or a file is missing or unreadable, 2 for bad
 * arguments and a malformed input or module.
 */
import { invalidArgument } from "../errors.ts";
import { z } from "zod";
import { parseCliArgs, parseStrictArgs } from "../cli/parse-args.ts";
import { checkNamedPath } from "../cli/named-path.ts";
import type { CliCommand } from "../cli/command-table.ts";
import { hookNames } from "./hook-names.ts";
import { formatPluginTestResult, runPluginTest } from "./plugin-test.ts";

const testUsageLine = "cryo plugin test PLUGIN.wasm --hook admit|checkpoint|restore --input FILE [options]";
const usage = [
  testUsageLine,
  "  --input FILE        the hook's input as JSON (its JSON Schema: cryo plugin schema HOOK input)",
  "  --config KEY=VALUE  a config value for the plugin (repeatable), as in its config table",
  "  --allow-host HOST   a host the plugin may reach over HTTP (repeatable), as in grants.allowed_hosts",
  "  --timeout-ms N      time limit of the call (default 1000)",
  "  --memory-mib N      memory limit of the plugin (default 32)",
].join("\n");

function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw invalidArgument(`--${flag} ${value}`, { detail: "must be a positive integer" });
  return n;
}

/** The `cryo plugin test` command. */
export const pluginTestCommand: CliCommand = {
  path: ["plugin", "test"],
  summary: "run a policy plugin against sample input (decision, time, memory)",
  usage,
  async run(args, io) {
    let parsed;
    try {
      parsed = parseStrictArgs(
        args,
        {
          hook: { type: "string" },
          input: { type: "string" },
          config: { type: "string", multiple: true },
          "allow-host": { type: "string", multiple: true },
          "timeout-ms": { type: "string" },
          "memory-mib": { type: "string" },
        },
        true,
      );
    } catch (err) {
      throw invalidArgument("arguments", { detail: `${(err as Error).message}\nusage: ${testUsageLine}` });
    }
    const { values, positionals } = parsed;
    if (positionals.length > 1) throw invalidArgument("arguments", { detail: `one PLUGIN.wasm, got ${positionals.length}: ${positionals.join(" ")}\nusage: ${testUsageLine}` });
    const missing = [positionals.length === 0 && "PLUGIN.wasm", !values.hook && "--hook", !values.input && "--input"].filter((m) => m !== false);
    if (missing.length > 0 || !values.hook || !values.input) throw invalidArgument("arguments", { detail: `missing ${missing.join(", ")}\nusage: ${testUsageLine}` });
    // A file that is not there or cannot be read: exit 1, as in every command (2 stays for bad arguments and content).
    checkNamedPath(`plugin ${positionals[0]}`, positionals[0]!, "file");
    checkNamedPath(`input ${values.input}`, values.input, "file");
    const config: Record<string, string> = {};
    for (const kv of values.config ?? []) {
      const eq = kv.indexOf("=");
      if (eq <= 0) throw invalidArgument(`--config ${kv}`, { detail: "must be KEY=VALUE" });
      config[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const result = await runPluginTest({
      wasm: positionals[0]!,
      hook: values.hook,
      inputFile: values.input,
      config,
      timeoutMs: positiveInt("timeout-ms", values["timeout-ms"]),
      memoryMib: positiveInt("memory-mib", values["memory-mib"]),
      allowedHosts: values["allow-host"] ?? [],
    });
    io.out(formatPluginTestResult(result));
    return 0;
  },
};

const schemaUsageLine = "cryo plugin schema admit|checkpoint|restore input|output";
const schemaUsage = `${schemaUsageLine}\n  prints the JSON Schema of a hook's input (what a plugin gets) or output (what it may answer)`;

/** `cryo plugin schema HOOK input|output`: the JSON Schema of a hook's input or output (plugins/sdk/schema/ in the repository), from the binary. */
export const pluginSchemaCommand: CliCommand = {
  path: ["plugin", "schema"],
  summary: "print the JSON Schema of a plugin hook's input or output",
  usage: schemaUsage,
  async run(args, io) {
    const { positionals } = parseCliArgs(args, {}, z.object({}), schemaUsageLine, { min: 2, max: 2 });
    const [hook, side] = positionals as [string, string];
    if (!(hookNames as readonly string[]).includes(hook)) throw invalidArgument(`hook ${JSON.stringify(hook)}`, { detail: `want one of ${hookNames.join(", ")}` });
    if (side !== "input" && side !== "output") throw invalidArgument(`${JSON.stringify(side)}`, { detail: "want input or output" });
    const { hookJsonSchemas, schemaFileText } = await import("./json-schema.ts");
    io.out(schemaFileText(hookJsonSchemas()[`${hook}-${side}.json`]).trimEnd());
    return 0;
  },
};
