#!/usr/bin/env bun
// The `cryo` operator CLI: parse argv, dispatch to a subcommand (src/cli/commands.ts lists them).
import { createCryoCommands } from "./commands.ts";
import { processIo } from "./command-table.ts";
import { runCli } from "./run-cli.ts";

import { isPluginRunnerProcess, runPluginRunner } from "../plugins/runner-main.ts";

// A reader that went away (`cryo list | head -1`) ends the output, not with a stack trace: what was asked is done,
// and the exit code stays the command's.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// CRYO_PLUGIN_RUNNER=1: this process is the plugin runner `cryo plugin test` started (src/plugins/runner-main.ts).
if (isPluginRunnerProcess()) runPluginRunner();
else process.exitCode = await runCli(createCryoCommands(), process.argv.slice(2), processIo);
