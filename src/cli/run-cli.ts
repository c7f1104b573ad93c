import { Code, CryoError } from "../errors.ts";
import type { CliIo, CommandTable } from "./command-table.ts";

function help(table: CommandTable): string {
  const rows = table.list().map((c) => `  cryo ${c.path.join(" ").padEnd(20)} ${c.summary}`);
  return ["cryo: operator tool for the cryo containerd shim (io.containerd.cryo.v2)", "", "commands:", ...rows, "", "cryo <command> --help shows a command's options"].join("\n");
}

/** Runs argv (without the program name) against the table; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function runCli(table: CommandTable, argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.length === 0 || argv[0] === "help" || argv[0] === "--help" || argv[0] === "-h") {
    io.out(help(table));
    return argv.length === 0 ? 2 : 0;
  }
  const found = table.find(argv);
  if (found === undefined) {
    io.err(`cryo: unknown command "${argv.join(" ")}"\n\n${help(table)}`);
    return 2;
  }
  const { command, args } = found;
  if (args.includes("--help") || args.includes("-h")) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (err) {
    const e = CryoError.from(err);
    io.err(`cryo ${command.path.join(" ")}: ${e.message}`);
    return e.code === Code.INVALID_ARGUMENT ? 2 : 1;
  }
}
