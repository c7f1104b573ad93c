/**
 * `cryo config check [FILE]`: checks a config file as the shim would at the first Create that uses it, without a
 * container: the file parses and validates, every plugin loads (its file, memory cap, imports, an export for each
 * hook), and the `[checkpoint]` defaults go together. Without FILE, the file the search order finds (CRYO_CONFIG,
 * then /etc/cryo/config.toml or .json). Prints what it found; exit 0 when good, 2 with the shim's own error when not.
 */
import { resolve } from "node:path";
import { z } from "zod";
import type { CliCommand } from "../cli/command-table.ts";
import { parseCliArgs } from "../cli/parse-args.ts";
import { checkNamedPath } from "../cli/named-path.ts";
import { configEnvVar, defaultConfigPaths, findConfigFile } from "./find.ts";
import { readConfigFile } from "./loader.ts";
import { fsError } from "../errors.ts";
import { readRegularFile } from "../sys/regular-file.ts";

const checkUsage = "cryo config check [FILE]";
const usage = [
  checkUsage,
  "  checks FILE (TOML, or JSON for a .json name) as the shim does at the first Create that uses it: its",
  "  fields, every plugin (file, memory cap, imports, an export per hook) and the [checkpoint] defaults;",
  `  without FILE, the one the shim would use (CRYO_CONFIG, then ${defaultConfigPaths.join(" or ")})`,
].join("\n");

/** The `cryo config check` command. */
export const configCheckCommand: CliCommand = {
  path: ["config", "check"],
  summary: "check a config file (fields, plugins, checkpoint defaults) as the shim would",
  usage,
  async run(args, io) {
    const { positionals } = parseCliArgs(args, {}, z.object({}), checkUsage, { max: 1 });
    // A relative FILE is the operator's, from here; the shim itself wants an absolute path (it runs in each bundle).
    // A file that is not there, is a directory or cannot be read is a failure (exit 1) as in every command, not the
    // shim's INVALID_ARGUMENT (exit 2), which stays for a config the shim refuses.
    const fromEnv = process.env[configEnvVar];
    if (positionals[0] !== undefined) checkNamedPath(`config ${resolve(positionals[0])}`, resolve(positionals[0]), "file");
    else if (fromEnv?.startsWith("/")) checkNamedPath(`config ${fromEnv} (${configEnvVar})`, fromEnv, "file");
    const source = positionals[0] !== undefined ? resolve(positionals[0]) : findConfigFile();
    if (source === null) {
      io.out(`no config file: CRYO_CONFIG is unset and none of ${defaultConfigPaths.join(", ")} exists (the shim runs with no plugins and cryo's defaults)`);
      return 0;
    }
    // A FIFO or a device, or a file root may not open (a write-only sysfs attribute), is the path's failure as well (exit 1), a FIFO
    // refused without waiting on it; the shim's refusal of one is INVALID_ARGUMENT, exit 2, which this command keeps
    // for what a file holds.
    try {
      readRegularFile(source, `config ${source}`);
    } catch (err) {
      throw fsError(`config ${source}`, err, source);
    }
    const { config } = readConfigFile(source);
    const [{ loadPolicyEngine }, { resolveCheckpointPlan }, { checkpointOverrides }] = await Promise.all([
      import("../plugins/policy-engine.ts"),
      import("../checkpoint/plan.ts"),
      import("./plan-defaults.ts"),
    ]);
    // Loads (compiles and checks) every plugin; no runner is started, no plugin code runs.
    const engine = loadPolicyEngine({ explicitPath: source });
    await engine.close();
    resolveCheckpointPlan({ defaults: checkpointOverrides(config.checkpoint), defaultsLabel: `config ${source} [checkpoint]` });
    const lines = [`config ${source}: ok`];
    lines.push(config.plugins.length === 0 ? "plugins: none" : `plugins (in order):`);
    for (const p of config.plugins) {
      const match = Object.keys(p.match).length === 0 ? "every container" : `match ${JSON.stringify(p.match)}`;
      lines.push(`  ${p.name}: hooks ${p.hooks.join(", ")}; ${p.path}; failure ${p.failure}; ${p.limits.timeout_ms} ms, ${p.limits.memory_mib} MiB; ${match}`);
    }
    const section = (name: string, values: Record<string, unknown>) =>
      lines.push(Object.keys(values).length === 0 ? `[${name}]: cryo's defaults` : `[${name}]: ${Object.entries(values).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")}`);
    section("checkpoint", config.checkpoint);
    section("restore", config.restore);
    if ((config.restore as { manage_cgroups_mode?: string }).manage_cgroups_mode === "strict") {
      lines.push(`note: [restore] manage_cgroups_mode = "strict" fails every restore (FAILED_PRECONDITION, before CRIU runs): CRIU's strict mode refuses cgroups that exist, and the restore makes the container's first, as runc's does; "full" writes the checkpoint's cgroup properties`);
    }
    // The daemon's own settings: printed too, so that an operator sees them read (they were left out), and said
    // where they apply, since a file named by a container's runtime options does not set them (config.md, [shim]).
    section("shim", config.shim);
    if (Object.keys(config.shim).length > 0) {
      lines[lines.length - 1] += ` (a shim daemon reads these from its own config, ${configEnvVar} or /etc/cryo, not from a container's runtime options config path)`;
    }
    io.out(lines.join("\n"));
    return 0;
  },
};
