#!/usr/bin/env bun
// The `cryo` operator CLI: parse argv, dispatch to a subcommand (src/cli/commands.ts lists them).
import { createCryoCommands } from "./commands.ts";
import { processIo } from "./command-table.ts";
import { runCli } from "./run-cli.ts";

import { isPluginRunnerProcess, runPluginRunner } from "../plugins/runner-main.ts";

// CRYO_PLUGIN_RUNNER=1: this process is the plugin runner `cryo plugin test` started (src/plugins/runner-main.ts).
if (isPluginRunnerProcess()) runPluginRunner();
else process.exitCode = await runCli(createCryoCommands(), process.argv.slice(2), processIo);
