/** The `cryo` CLI: what other modules may use to add subcommands (export CliCommand objects; see commands.ts). */
export type { CliCommand, CliIo, CommandTable } from "./command-table.ts";
export { createCommandTable, processIo } from "./command-table.ts";
export { createCryoCommands } from "./commands.ts";
export { runCli } from "./run-cli.ts";
export { cryoVersion } from "./version-command.ts";
export { selectContainers, defaultRuncRoot, type ListSelection, type NamespacedListing } from "./list-containers.ts";
export { addCryoRuntime, removeCryoRuntime } from "./containerd-config-edit.ts";
export { migrateContainer, type MigrateOptions, type MigrateResult } from "./migrate.ts";
