/** Entry point of containerd-shim-cryo-v2: everything lives in the manager (or, re-executed as the plugin runner, in src/plugins; as the CRIU helper, in src/criu). */
import { config as zodConfig } from "zod/v4/core";

// zod compiles an object schema's parser with new Function at its first parse: worth it for a schema parsed
// many times, not in a process that parses each of its schemas once or twice (a shim daemon, the CLI).
zodConfig({ jitless: true });

if (process.env.CRYO_PLUGIN_RUNNER === "1") {
  // runner-main.ts directly: the runner needs neither the config nor the hook schemas of the plugins index.
  (await import("../plugins/runner-main.ts")).runPluginRunner();
} else if (process.argv[1] === "__criu" || process.argv[2] === "__criu") {
  process.exit((await import("../criu/helper.ts")).runCriuHelper());
} else if (process.argv[1] === "__standby" || process.argv[2] === "__standby") {
  // A standby daemon (standby.ts): the socket path follows the argument.
  const at = process.argv.indexOf("__standby");
  process.exit(await (await import("./standby-main.ts")).runStandby(process.argv[at + 1] ?? ""));
} else {
  const { runShim } = await import("./manager.ts");
  process.exit(await runShim(process.argv.slice(2)));
}
export {};
