import { Code, CryoError } from "../errors.ts";
import type { CliIo, CommandTable } from "./command-table.ts";

/** The commands whose path starts with prefix (all of them for none). */
function commandsUnder(table: CommandTable, prefix: readonly string[]) {
  return table.list().filter((c) => prefix.every((w, i) => c.path[i] === w));
}

function help(table: CommandTable, prefix: readonly string[] = []): string {
  const rows = commandsUnder(table, prefix).map((c) => `  cryo ${c.path.join(" ").padEnd(20)} ${c.summary}`);
  const head = prefix.length === 0 ? "cryo: operator tool for the cryo containerd shim (io.containerd.cryo.v2)" : `cryo ${prefix.join(" ")}: one of`;
  return [head, "", "commands:", ...rows, "", "cryo <command> --help shows a command's options"].join("\n");
}

/** Runs argv (without the program name) against the table; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function runCli(table: CommandTable, argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.length === 0 || argv[0] === "help" || argv[0] === "--help" || argv[0] === "-h") {
    // `cryo help plugin test` is `cryo plugin test --help`, `cryo help containerd` the group's help; an unknown name is
    // a usage error, as `cryo nosuch` is.
    const asked = argv.slice(1);
    if (argv[0] === "help" && asked.length > 0) {
      if (table.find(asked) === undefined && commandsUnder(table, asked).length === 0) {
        io.err(`cryo help: unknown command "${asked.join(" ")}"\n\n${help(table)}`);
        return 2;
      }
      return runCli(table, [...asked, "--help"], io);
    }
    // `cryo` alone is a usage error (exit 2): its help goes to stderr, as for `cryo containerd` without its command.
    if (argv.length === 0) {
      io.err(help(table));
      return 2;
    }
    io.out(help(table));
    return 0;
  }
  if (argv[0] === "--version") return runCli(table, ["version"], io);
  const found = table.find(argv);
  if (found === undefined) {
    // A group's help (`cryo containerd --help`): its commands.
    const group = argv.filter((a) => a !== "--help" && a !== "-h");
    if (group.length < argv.length && group.length > 0 && commandsUnder(table, group).length > 0) {
      io.out(help(table, group));
      return 0;
    }
    // A group named without its command (`cryo containerd`): which ones it has.
    const words = argv.filter((a) => !a.startsWith("-"));
    for (let n = words.length; n > 0; n--) {
      const prefix = words.slice(0, n);
      if (commandsUnder(table, prefix).length === 0) continue;
      const next = words[n];
      io.err(`${next === undefined ? `cryo ${prefix.join(" ")}: missing command` : `cryo ${prefix.join(" ")}: unknown command "${next}"`}\n\n${help(table, prefix)}`);
      return 2;
    }
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
    const name = `cryo ${command.path.join(" ")}`;
    io.err(e.message.startsWith(`${name}: `) ? e.message : `${name}: ${e.message}`);
    return e.code === Code.INVALID_ARGUMENT ? 2 : 1;
  }
}
