#!/usr/bin/env bun
// The `cryo` operator CLI: parse argv, dispatch to a subcommand (src/cli/commands.ts lists them).
import { createCryoCommands } from "./commands.ts";
import { processIo } from "./command-table.ts";
import { runCli } from "./run-cli.ts";

process.exitCode = await runCli(createCryoCommands(), process.argv.slice(2), processIo);
