import { invalidArgument } from "../errors.ts";

/** Where a command writes; tests pass their own. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

/** One `cryo` subcommand: a path of words (`["containerd", "start"]`), help text, and what it runs. */
export interface CliCommand {
  /** The words that select it, e.g. ["containerd", "start"]. */
  path: readonly string[];
  /** One line for `cryo help`. */
  summary: string;
  /** Usage and options, printed by `cryo <path> --help`. */
  usage: string;
  /** Runs with the arguments after the path; resolves to the exit code. Throw CryoErrors for failures. */
  run(args: string[], io: CliIo): Promise<number>;
}

/** The table of subcommands the `cryo` entry dispatches into. */
export interface CommandTable {
  /** Adds commands; a path registered twice is an error. */
  register(...commands: CliCommand[]): void;
  /** The command whose path is the longest prefix of argv, with the remaining arguments. */
  find(argv: readonly string[]): { command: CliCommand; args: string[] } | undefined;
  /** All commands, sorted by path. */
  list(): CliCommand[];
}

/** Creates an empty command table. */
export function createCommandTable(): CommandTable {
  const byPath = new Map<string, CliCommand>();
  return {
    register(...commands) {
      for (const command of commands) {
        const key = command.path.join(" ");
        if (byPath.has(key)) throw invalidArgument(`cryo command "${key}"`, { detail: "registered twice" });
        byPath.set(key, command);
      }
    },
    find(argv) {
      for (let n = argv.length; n > 0; n--) {
        const command = byPath.get(argv.slice(0, n).join(" "));
        if (command) return { command, args: argv.slice(n) };
      }
      return undefined;
    },
    list() {
      return [...byPath.values()].sort((a, b) => a.path.join(" ").localeCompare(b.path.join(" ")));
    },
  };
}

/** The usual IO: stdout and stderr. */
export const processIo: CliIo = {
  out: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
};
