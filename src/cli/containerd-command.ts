import type { ParseArgsOptionsConfig } from "node:util";
import { z } from "zod";
import { accessSync, constants, statSync } from "node:fs";
import { join } from "node:path";
import { PrivateContainerd, cryoRuntimeType, defaultBinDir, startPrivateContainerd } from "../containerd/index.ts";
import { failedPrecondition } from "../errors.ts";
import type { CliCommand, CliIo } from "./command-table.ts";
import { checkNamedPath } from "./named-path.ts";
import { parseCliArgs } from "./parse-args.ts";

/** Where `cryo containerd start` puts its containerd unless --dir says otherwise. */
export const defaultContainerdDir = process.env.CRYO_CONTAINERD_DIR ?? "/run/cryo/containerd";

const dirOption: ParseArgsOptionsConfig = { dir: { type: "string", short: "d" } };

/** Parses flags (no positional arguments) with the shared CLI parser. */
function parse<S extends z.ZodType>(args: string[], options: ParseArgsOptionsConfig, schema: S, usage: string): z.infer<S> {
  return parseCliArgs(args, options, schema, usage).values;
}

function printHowTo(pc: PrivateContainerd, io: CliIo, shim?: string): void {
  io.out(
    [
      `private containerd running (pid ${pc.pid}) in ${pc.dir}`,
      `  address: ${pc.address}`,
      `  ttrpc:   ${pc.ttrpcAddress}`,
      `  log:     ${pc.layout.log}`,
      `  runtime: ${cryoRuntimeType} (CRI handler "cryo"), runc is the default`,
      ...(shim !== undefined ? [`  shim:    ${shim}`] : []),
      `use it:    ctr --address ${pc.address} images ls`,
      `           ctr --address ${pc.address} run --runtime ${cryoRuntimeType} IMAGE ID`,
    ].join("\n"),
  );
}

const SHIM_BINARY = "containerd-shim-cryo-v2";

function executableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The shim binary containerd will run: --bin-dir's (which must have it: a wrong directory would silently fall
 * back to whatever shim PATH has), else the one next to cryo (or the repo's build/bin), else PATH's.
 */
function shimBinary(binDir: string | undefined): string {
  if (binDir !== undefined) {
    // A directory that is not there, or is a file, is said so as any path a command is given (cli.md): it read "no
    // executable containerd-shim-cryo-v2 in it" of /nonexistent and of a file alike.
    checkNamedPath(`--bin-dir ${binDir}`, binDir, "directory");
    const path = join(binDir, SHIM_BINARY);
    if (!executableFile(path)) throw failedPrecondition(`--bin-dir ${binDir}`, { detail: `no executable ${SHIM_BINARY} in it; leave --bin-dir out to use the one next to cryo, or on PATH` });
    return path;
  }
  const found = Bun.which(SHIM_BINARY, { PATH: [defaultBinDir(), process.env.PATH].filter((p) => p).join(":") });
  if (found === null) throw failedPrecondition(SHIM_BINARY, { detail: "not next to cryo and not on PATH: run `npm run build` (build/bin), or `cryo install`, or pass --bin-dir" });
  return found;
}

const startUsage = "cryo containerd start [-d|--dir DIR] [--bin-dir DIR] [--foreground] [--log-level LEVEL]";

/** `cryo containerd start`: start a private containerd with cryo registered. */
export const containerdStartCommand: CliCommand = {
  path: ["containerd", "start"],
  summary: "start a private containerd with cryo registered (in the background unless --foreground)",
  usage: `${startUsage}

Starts containerd with its own root, state, sockets, config and log under DIR (default ${defaultContainerdDir},
or $CRYO_CONTAINERD_DIR), with the runtime ${cryoRuntimeType} registered and DIR/containerd.sock as its address.
The shim and cryo binaries are looked up first in --bin-dir (default: next to this cryo binary, or the repo's
build/bin), then on PATH.

  --foreground   stay attached; Ctrl-C (SIGINT) or SIGTERM stops containerd and cleans up
  --log-level    containerd's log level: trace, debug, info (default), warn, error`,
  async run(args, io) {
    const values = parse(
      args,
      { ...dirOption, "bin-dir": { type: "string" }, foreground: { type: "boolean" }, "log-level": { type: "string" } },
      z.object({
        dir: z.string().optional(),
        "bin-dir": z.string().optional(),
        foreground: z.boolean().optional(),
        "log-level": z.enum(["trace", "debug", "info", "warn", "error"]).optional(),
      }),
      startUsage,
    );
    const foreground = values.foreground === true;
    const shim = shimBinary(values["bin-dir"]);
    // --foreground: a Ctrl-C or SIGTERM from the moment the command runs stops containerd (once it is up) and
    // cleans up; one during the start must not kill cryo and leave a detached containerd behind.
    let stopReason: string | undefined;
    let wake: (() => void) | undefined;
    const onSignal = (name: string) => () => {
      stopReason ??= name;
      wake?.();
    };
    const onInt = onSignal("SIGINT");
    const onTerm = onSignal("SIGTERM");
    if (foreground) {
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
    }
    try {
      const pc = await startPrivateContainerd({
        dir: values.dir ?? defaultContainerdDir,
        binDir: values["bin-dir"],
        logLevel: values["log-level"],
        // Its own session either way: a Ctrl-C meant for cryo must not reach containerd before cryo cleans up.
        detached: true,
      });
      printHowTo(pc, io, shim);
      if (!foreground) {
        io.out(`stop it:   cryo containerd stop --dir ${pc.dir}`);
        return 0;
      }
      io.out("stop it:   Ctrl-C");
      if (stopReason === undefined) {
        // The timer stays referenced: with only signal listeners and an unref'd timer keeping it alive, Bun spins
        // its event loop (a whole core for as long as containerd runs).
        let timer: ReturnType<typeof setInterval> | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setInterval(() => {
            if (!pc.running) {
              stopReason ??= "containerd exited";
              resolve();
            }
          }, 500);
        });
        clearInterval(timer);
      }
      io.out(`${stopReason}: stopping containerd, its containers and shims`);
      await pc.stop();
    } finally {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    }
    io.out("stopped");
    return 0;
  },
};

const stopUsage = "cryo containerd stop [-d|--dir DIR] [--keep-containers]";

/** `cryo containerd stop`: stop a private containerd started with `cryo containerd start`. */
export const containerdStopCommand: CliCommand = {
  path: ["containerd", "stop"],
  summary: "stop a private containerd: its containers, shims and process; unmount and remove its directory",
  usage: `${stopUsage}

Kills and deletes every task and container in every namespace, sends containerd SIGTERM (SIGKILL after 10 s),
ends shims it left behind, unmounts what is left under DIR and removes cryo's files from DIR (DIR itself when
then empty). When containerd already died, it still cleans up after it.
--keep-containers stops containerd only: tasks, shims, root and state stay, and \`cryo containerd start\` with the
same DIR serves them again.`,
  async run(args, io) {
    const values = parse(
      args,
      { ...dirOption, "keep-containers": { type: "boolean" } },
      z.object({ dir: z.string().optional(), "keep-containers": z.boolean().optional() }),
      stopUsage,
    );
    const pc = PrivateContainerd.attach(values.dir ?? defaultContainerdDir, "default", { orDead: true });
    const keep = values["keep-containers"] === true;
    await pc.stop({ keepContainers: keep });
    if (keep) io.out(pc.pid > 0 ? `stopped private containerd (pid ${pc.pid}) in ${pc.dir}; its containers run on` : `containerd in ${pc.dir} was not running; nothing done`);
    else io.out(pc.pid > 0 ? `stopped private containerd (pid ${pc.pid}) in ${pc.dir}` : `containerd in ${pc.dir} was not running; cleaned up after it`);
    return 0;
  },
};

const statusUsage = "cryo containerd status [-d|--dir DIR]";

/** `cryo containerd status`: is a private containerd running in DIR. */
export const containerdStatusCommand: CliCommand = {
  path: ["containerd", "status"],
  summary: "show whether a private containerd runs in DIR, and how to reach it",
  usage: `${statusUsage}

Prints the pid, the gRPC and ttrpc addresses and the log of the private containerd that \`cryo containerd start\`
runs in DIR (default ${defaultContainerdDir}, or $CRYO_CONTAINERD_DIR), with the ctr command line that reaches it.
Fails (not found) when none runs there.`,
  async run(args, io) {
    const values = parse(args, dirOption, z.object({ dir: z.string().optional() }), statusUsage);
    const pc = PrivateContainerd.attach(values.dir ?? defaultContainerdDir);
    printHowTo(pc, io);
    return 0;
  },
};

/** All `cryo containerd ...` commands. */
export const containerdCommands: CliCommand[] = [containerdStartCommand, containerdStopCommand, containerdStatusCommand];
