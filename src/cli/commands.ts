import { type CommandTable, createCommandTable } from "./command-table.ts";
import { containerdCommands } from "./containerd-command.ts";
import { versionCommand } from "./version-command.ts";
import { checkCommand } from "./check-command.ts";
import { listCommand } from "./list-command.ts";
import { installCommand, uninstallCommand } from "./install-command.ts";
import { migrateCommand } from "./migrate-command.ts";
import { pluginSchemaCommand, pluginTestCommand } from "../plugins/plugin-command.ts";
import { inspectCommand } from "../checkpoint/inspect-command.ts";
import { pagesListCommand, pagesPruneCommand, pagesRemoveCommand } from "../checkpoint/pages-command.ts";
import { configCheckCommand } from "../config/check-command.ts";

/**
 * Every `cryo` subcommand. A module that adds one (e.g. `cryo inspect` from src/checkpoint, `cryo plugin test`
 * from src/plugins, `cryo list` from src/runtime) exports CliCommand objects and gets one register line here.
 */
export function createCryoCommands(): CommandTable {
  const table = createCommandTable();
  table.register(versionCommand, checkCommand, ...containerdCommands);
  table.register(listCommand, installCommand, uninstallCommand, migrateCommand);
  table.register(pluginTestCommand, pluginSchemaCommand, configCheckCommand);
  table.register(inspectCommand, pagesListCommand, pagesRemoveCommand, pagesPruneCommand);
  return table;
}
