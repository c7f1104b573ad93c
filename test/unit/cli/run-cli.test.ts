import { describe, expect, test } from "bun:test";
import { type CliCommand, type CliIo, createCommandTable, createCryoCommands, runCli } from "../../../src/cli/index.ts";
import { Code, fsError, invalidArgument, notFound } from "../../../src/errors.ts";

function captureIo(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

function command(path: string[], run: CliCommand["run"]): CliCommand {
  return { path, summary: `does ${path.join(" ")}`, usage: `usage of ${path.join(" ")}`, run };
}

describe("cryo command table", () => {
  test("dispatches on the longest matching path and passes the rest", async () => {
    const table = createCommandTable();
    const seen: string[][] = [];
    table.register(
      command(["plugin"], async (args) => (seen.push(["plugin", ...args]), 0)),
      command(["plugin", "test"], async (args) => (seen.push(["plugin test", ...args]), 3)),
    );
    const io = captureIo();
    expect(await runCli(table, ["plugin", "test", "x.wasm", "--input", "a.json"], io)).toBe(3);
    expect(await runCli(table, ["plugin", "ls"], io)).toBe(0);
    expect(seen).toEqual([["plugin test", "x.wasm", "--input", "a.json"], ["plugin", "ls"]]);
  });

  test("refuses a path registered twice", () => {
    const table = createCommandTable();
    table.register(command(["a"], async () => 0));
    expect(() => table.register(command(["a"], async () => 0))).toThrow("registered twice");
  });

  test("unknown commands and bad arguments exit 2, other failures exit 1 with the error message", async () => {
    const table = createCommandTable();
    table.register(
      command(["bad"], async () => {
        throw invalidArgument("--x 1");
      }),
      command(["missing"], async () => {
        throw notFound("container c1");
      }),
    );
    const io = captureIo();
    expect(await runCli(table, ["nope"], io)).toBe(2);
    expect(io.stderr[0]).toContain('unknown command "nope"');
    expect(await runCli(table, ["bad"], io)).toBe(2);
    expect(await runCli(table, ["missing"], io)).toBe(1);
    expect(io.stderr.at(-1)).toBe("cryo missing: container c1: not found");
  });

  test("a group without its command, or with an unknown one, names the group and lists its commands (exit 2)", async () => {
    const table = createCommandTable();
    table.register(command(["pages", "ls"], async () => 0), command(["pages", "rm"], async () => 0), command(["version"], async () => 0));
    const io = captureIo();
    expect(await runCli(table, ["pages"], io)).toBe(2);
    expect(io.stderr[0]).toStartWith("cryo pages: missing command\n\ncryo pages: one of\n\ncommands:\n  cryo pages ls");
    expect(await runCli(table, ["pages", "prune", "--dry-run"], io)).toBe(2);
    expect(io.stderr[1]).toStartWith('cryo pages: unknown command "prune"\n\ncryo pages: one of');
    expect(await runCli(table, ["nope", "pages"], io)).toBe(2);
    expect(io.stderr[2]).toStartWith('cryo: unknown command "nope pages"');
  });

  test("a group's --help lists its commands; help CMD is CMD --help; --version is version; an error names the command once", async () => {
    const table = createCommandTable();
    table.register(
      command(["pages", "ls"], async () => 0),
      command(["pages", "rm"], async () => 0),
      command(["version"], async (_a, io) => (io.out("cryo 9"), 0)),
      command(["inspect"], async () => {
        throw invalidArgument("cryo inspect", { detail: "want exactly one DIR" });
      }),
    );
    const io = captureIo();
    expect(await runCli(table, ["pages", "--help"], io)).toBe(0);
    expect(io.stdout.at(-1)).toContain("cryo pages ls");
    expect(io.stdout.at(-1)).toContain("cryo pages rm");
    expect(io.stdout.at(-1)).not.toContain("cryo version");
    expect(await runCli(table, ["help", "pages", "rm"], io)).toBe(0);
    expect(io.stdout.at(-1)).toBe("usage of pages rm");
    // help of a group is the group's; of an unknown name a usage error (it printed the whole help, exit 0).
    expect(await runCli(table, ["help", "pages"], io)).toBe(0);
    expect(io.stdout.at(-1)).toStartWith("cryo pages: one of");
    expect(await runCli(table, ["help", "nosuch"], io)).toBe(2);
    expect(io.stderr.at(-1)).toStartWith('cryo help: unknown command "nosuch"');
    expect(await runCli(table, ["--version"], io)).toBe(0);
    expect(io.stdout.at(-1)).toBe("cryo 9");
    expect(await runCli(table, ["inspect"], io)).toBe(2);
    expect(io.stderr.at(-1)).toBe("cryo inspect: invalid argument: want exactly one DIR");
  });

  test("cryo alone is a usage error: the help on stderr, exit 2 (it went to stdout); cryo help and --help print it on stdout, exit 0", async () => {
    const io = captureIo();
    expect(await runCli(createCryoCommands(), [], io)).toBe(2);
    expect(io.stdout).toEqual([]);
    expect(io.stderr[0]).toStartWith("cryo: operator tool for the cryo containerd shim");
    for (const argv of [["help"], ["--help"], ["-h"]]) {
      const ok = captureIo();
      expect(await runCli(createCryoCommands(), argv, ok)).toBe(0);
      expect([ok.stderr, ok.stdout[0]?.startsWith("cryo: operator tool")]).toEqual([[], true]);
    }
  });

  test("--help prints a command's usage without running it", async () => {
    const table = createCommandTable();
    table.register(command(["x"], async () => 9));
    const io = captureIo();
    expect(await runCli(table, ["x", "--help"], io)).toBe(0);
    expect(io.stdout).toEqual(["usage of x"]);
  });

  test("the cryo table has version and the containerd commands", async () => {
    const names = createCryoCommands().list().map((c) => c.path.join(" "));
    expect(names).toEqual(expect.arrayContaining(["containerd start", "containerd status", "containerd stop", "version"]));
    const io = captureIo();
    expect(await runCli(createCryoCommands(), ["version"], io)).toBe(0);
    expect(io.stdout[0]).toMatch(/^cryo \d+\.\d+\.\d+ \(bun \d/);
  });

  test("containerd stop with no containerd in the dir is not found", async () => {
    const io = captureIo();
    const code = await runCli(createCryoCommands(), ["containerd", "stop", "--dir", "/nonexistent/cryo-test-dir"], io);
    expect(code).toBe(1);
    expect(io.stderr[0]).toBe("cryo containerd stop: private containerd in /nonexistent/cryo-test-dir: not found");
  });

  test("a single-valued option given twice is refused, naming it; repeatable ones are not", async () => {
    const io = captureIo();
    expect(await runCli(createCryoCommands(), ["plugin", "test", "x.wasm", "--hook", "admit", "--hook", "restore", "--input", "in.json"], io)).toBe(2);
    expect(io.stderr.at(-1)).toContain("cryo plugin test: arguments: invalid argument: Option '--hook' is given more than once; it takes one value");
    expect(await runCli(createCryoCommands(), ["containerd", "stop", "--dir", "/a", "--dir", "/b"], io)).toBe(2);
    expect(io.stderr.at(-1)).toContain("Option '--dir' is given more than once; it takes one value");
    expect(await runCli(createCryoCommands(), ["list", "--quiet", "--quiet"], io)).toBe(2);
    expect(io.stderr.at(-1)).toContain("Option '--quiet' is given more than once; it takes one mention");
    // --config is repeatable: past argument parsing, to the missing plugin file.
    expect(await runCli(createCryoCommands(), ["plugin", "test", "/nonexistent/x.wasm", "--hook", "admit", "--config", "a=1", "--config", "b=2", "--input", "/nonexistent/in.json"], io)).not.toBe(0);
    expect(io.stderr.at(-1)).not.toContain("more than once");
  });
});

describe("every cryo command parses its arguments with the shared parser", () => {
  test("an unknown flag is refused the same way by every command: exit 2, naming the flag, with the usage line", async () => {
    for (const c of createCryoCommands().list()) {
      const io = captureIo();
      const name = `cryo ${c.path.join(" ")}`;
      expect({ name, code: await runCli(createCryoCommands(), [...c.path, "--no-such-flag"], io) }).toEqual({ name, code: 2 });
      expect(io.stderr.join("")).toStartWith(`${name}: arguments: invalid argument: Unknown option '--no-such-flag'`);
      expect(io.stderr.join("")).toContain("\nusage: ");
    }
  });

  test("every command's --help starts with its usage line (three began \"usage: \"), and an unknown flag ends with that one line (plugin test printed all its options)", async () => {
    for (const c of createCryoCommands().list()) {
      const name = `cryo ${c.path.join(" ")}`;
      const help = captureIo();
      expect(await runCli(createCryoCommands(), [...c.path, "--help"], help)).toBe(0);
      const line = help.stdout.join("").split("\n")[0]!;
      expect(line === name || line.startsWith(`${name} `)).toBe(true);
      const bad = captureIo();
      await runCli(createCryoCommands(), [...c.path, "--no-such-flag"], bad);
      expect({ name, tail: bad.stderr.join("").split("\n").slice(1) }).toEqual({ name, tail: [`usage: ${line}`] });
    }
  });

  test("every short flag a command takes is named in its --help (only -q and migrate's -n were)", async () => {
    const shorts: [string[], string, string][] = [
      [["containerd", "start"], "-d", "--dir"],
      [["containerd", "stop"], "-d", "--dir"],
      [["containerd", "status"], "-d", "--dir"],
      [["install"], "-c", "--config"],
      [["uninstall"], "-c", "--config"],
      [["list"], "-n", "--namespace"],
      [["list"], "-A", "--all-namespaces"],
      [["list"], "-f", "--format"],
      [["list"], "-q", "--quiet"],
      [["migrate"], "-n", "--namespace"],
    ];
    for (const [path, short, long] of shorts) {
      const help = captureIo();
      expect(await runCli(createCryoCommands(), [...path, "--help"], help)).toBe(0);
      const text = help.stdout.join("");
      expect({ path, named: text.includes(`${short}|${long}`) || text.includes(`${short}, ${long}`) }).toEqual({ path, named: true });
      // and the short form is the flag it names: given alone it is not "unknown"
      const bad = captureIo();
      await runCli(createCryoCommands(), [...path, short], bad);
      expect(bad.stderr.join("")).not.toContain("Unknown option");
    }
  });

  test("inspect, config check, plugin schema and version: a repeated flag, a wrong count of positionals, and -- as for the others", async () => {
    const cases: [string[], string][] = [
      [["inspect", "--json", "--json", "/d"], "cryo inspect: arguments: invalid argument: Option '--json' is given more than once; it takes one mention\nusage: cryo inspect [--json] DIR"],
      [["inspect", "--json"], "cryo inspect: arguments: invalid argument: expected 1 positional argument(s), got 0\nusage: cryo inspect [--json] DIR"],
      [["inspect", "/a", "/b"], "cryo inspect: arguments: invalid argument: expected 1 positional argument(s), got 2\nusage: cryo inspect [--json] DIR"],
      [["config", "check", "/a", "/b"], "cryo config check: arguments: invalid argument: expected at most 1 positional argument(s), got 2\nusage: cryo config check [FILE]"],
      [["plugin", "schema", "admit"], "cryo plugin schema: arguments: invalid argument: expected 2 positional argument(s), got 1\nusage: cryo plugin schema admit|checkpoint|restore input|output"],
      [["version", "extra"], "cryo version: arguments: invalid argument: Unexpected argument 'extra'. This command does not take positional arguments\nusage: cryo version"],
      [["pages", "rm"], "cryo pages rm: arguments: invalid argument: expected at least 1 positional argument(s), got 0\nusage: cryo pages rm [--store DIR] NAME..."],
    ];
    for (const [argv, message] of cases) {
      const io = captureIo();
      expect(await runCli(createCryoCommands(), argv, io)).toBe(2);
      expect(io.stderr.join("")).toBe(message);
    }
    // After --, a DIR that starts with a dash is a DIR (before, inspect took "--" for a second DIR).
    const io = captureIo();
    expect(await runCli(createCryoCommands(), ["inspect", "--json", "--", "/nonexistent/-ck"], io)).toBe(1);
    expect(io.stderr.join("")).toBe("cryo inspect: checkpoint /nonexistent/-ck: not found");
  });
});

describe("parseCliArgs", () => {
  test("a required flag left out says so, and a word given to a number flag asks for a number (not zod's wording)", async () => {
    const { parseCliArgs } = await import("../../../src/cli/parse-args.ts");
    const { z } = await import("zod");
    const schema = z.object({ to: z.string(), timeout: z.coerce.number().positive().optional() });
    const options = { to: { type: "string" }, timeout: { type: "string" } } as const;
    expect(() => parseCliArgs([], options, schema, "cmd --to X")).toThrow("arguments: invalid argument: --to is required\nusage: cmd --to X");
    expect(() => parseCliArgs(["--to", "a", "--timeout", "abc"], options, schema, "cmd --to X")).toThrow("--timeout: want a number");
    expect(() => parseCliArgs(["--to", "a", "--timeout=-1"], options, schema, "cmd --to X")).toThrow("--timeout: Too small");
  });
});

describe("cryo pages prune --older-than", () => {
  test("an empty or non-numeric value is a usage error before any store or containerd is read (z.coerce took \"\" for 0)", async () => {
    const table = createCryoCommands();
    for (const value of ["", " ", "abc", "1e3", "5m"]) {
      const io = { stdout: [] as string[], stderr: [] as string[], out(t: string) { this.stdout.push(t); }, err(t: string) { this.stderr.push(t); } };
      expect(await runCli(table, ["pages", "prune", "--store", "/nonexistent-store", "--address", "/nonexistent.sock", "--older-than", value, "--dry-run"], io)).toBe(2);
      expect(io.stderr.join("\n")).toContain("invalid argument: --older-than: want minutes, 0 or more (a number)\n");
      expect(io.stdout).toEqual([]);
    }
  });

  test("--address: a file is named as such; a unix:// address is the socket's path (it was refused as \"no such socket\")", async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const dir = mkdtempSync("/tmp/cryo-prune-address-");
    try {
      writeFileSync(`${dir}/file`, "");
      const io = captureIo();
      expect(await runCli(createCryoCommands(), ["pages", "prune", "--store", `${dir}/store`, "--address", `unix://${dir}/file`, "--dry-run"], io)).toBe(1);
      expect(io.stderr.at(-1)).toBe(`cryo pages prune: containerd at unix://${dir}/file: failed precondition: ${dir}/file is a file, not a containerd socket; nothing was removed`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("one exit code rule for a path a command names", () => {
  test("not there or of the wrong kind: exit 1 in every command that reads it (config check and plugin test said 2)", async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const dir = mkdtempSync("/tmp/cryo-cli-paths-");
    try {
      const file = `${dir}/file`;
      writeFileSync(file, "{}");
      const none = `${dir}/none`;
      const cases: [string[], string][] = [
        [["inspect", none], `cryo inspect: checkpoint ${none}: not found`],
        [["inspect", file], `cryo inspect: checkpoint ${file}: failed precondition: ${file} is a file, not a directory`],
        [["config", "check", none], `cryo config check: config ${none}: not found`],
        [["config", "check", dir], `cryo config check: config ${dir}: failed precondition: ${dir} is a directory, not a file`],
        [["plugin", "test", none, "--hook", "admit", "--input", file], `cryo plugin test: plugin ${none}: not found`],
        [["plugin", "test", file, "--hook", "admit", "--input", none], `cryo plugin test: input ${none}: not found`],
        [["plugin", "test", file, "--hook", "admit", "--input", dir], `cryo plugin test: input ${dir}: failed precondition: ${dir} is a directory, not a file`],
        [["containerd", "status", "--dir", none], `cryo containerd status: private containerd in ${none}: not found`],
        [["containerd", "status", "--dir", file], `cryo containerd status: private containerd in ${file}: failed precondition: ${file} is a file, not a directory`],
        [["list", "--root", file], `cryo list: runc root ${file}: failed precondition: ${file} is a file, not a directory`],
        // Before: "--bin-dir X: failed precondition: no executable containerd-shim-cryo-v2 in it" for both.
        [["containerd", "start", "--dir", `${dir}/ctd`, "--bin-dir", none], `cryo containerd start: --bin-dir ${none}: not found`],
        [["containerd", "start", "--dir", `${dir}/ctd`, "--bin-dir", file], `cryo containerd start: --bin-dir ${file}: failed precondition: ${file} is a file, not a directory`],
        [["pages", "ls", "--store", file], `cryo pages ls: page store ${file}: failed precondition: ${file} is a file, not a directory`],
        // Before: "containerd-shim-cryo-v2, cryo missing; run `npm run build` or pass --from DIR" for both.
        [["install", "--from", none, "--config", `${dir}/c.toml`, "--bin-dir", `${dir}/bin`, "--dry-run"], `cryo install: cryo binaries in ${none}: not found`],
        [["install", "--from", file, "--config", `${dir}/c.toml`, "--bin-dir", `${dir}/bin`, "--dry-run"], `cryo install: cryo binaries in ${file}: failed precondition: ${file} is a file, not a directory`],
      ];
      for (const [argv, message] of cases) {
        const io = captureIo();
        const code = await runCli(createCryoCommands(), argv, io);
        expect({ argv, code, stderr: io.stderr.join("") }).toEqual({ argv, code: 1, stderr: message });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a path inside the content a command reads is the content's fault", () => {
  test("a config naming a plugin file that is not there: exit 2, the file in words (before: node's ENOENT text)", async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const dir = mkdtempSync("/tmp/cryo-cli-plugin-path-");
    try {
      const config = `${dir}/config.toml`;
      writeFileSync(config, `[[plugins]]\nname = "p"\npath = "gone.wasm"\nhooks = ["admit"]\n`);
      const io = captureIo();
      const code = await runCli(createCryoCommands(), ["config", "check", config], io);
      expect({ code, stderr: io.stderr.join("") }).toEqual({ code: 2, stderr: `cryo config check: config ${config}: plugin p: invalid argument: plugin file ${dir}/gone.wasm: not found` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("fsError: a failed file system call in words", () => {
  test("a file where a directory is wanted, a directory where a file is, a path that is not there, no permission, no space", async () => {
    const { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const dir = mkdtempSync("/tmp/cryo-fs-error-");
    try {
      const file = join(dir, "file");
      writeFileSync(file, "x");
      const caught = (f: () => unknown, path?: string) => {
        try {
          f();
        } catch (err) {
          return fsError("thing", err, path);
        }
        throw new Error("did not throw");
      };
      // EEXIST and ENOTDIR of a mkdir, ENOTDIR of a readdir: the component that is a file is named.
      for (const f of [() => mkdirSync(file, { recursive: true }), () => mkdirSync(join(file, "a", "b"), { recursive: true }), () => readdirSync(file)]) {
        const e = caught(f);
        expect([e.code, e.message]).toEqual([Code.FAILED_PRECONDITION, `thing: failed precondition: ${file} is a file, not a directory`]);
      }
      // A read of a directory carries no path: the caller's is used.
      const isDir = caught(() => readFileSync(dir), dir);
      expect([isDir.code, isDir.message]).toEqual([Code.FAILED_PRECONDITION, `thing: failed precondition: ${dir} is a directory, not a file`]);
      const missing = caught(() => readFileSync(join(dir, "nope")));
      expect([missing.code, missing.message]).toEqual([Code.NOT_FOUND, `thing: not found: no ${join(dir, "nope")}`]);
      // The context names the path already: not twice.
      expect(fsError(`config ${join(dir, "nope")}`, missing.cause).message).toBe(`config ${join(dir, "nope")}: not found`);
      const denied = fsError("thing", Object.assign(new Error("EACCES: permission denied, scandir '/x'"), { code: "EACCES", syscall: "scandir", path: "/x" }));
      expect([denied.code, denied.message]).toEqual([Code.PERMISSION_DENIED, `thing: permission denied: uid ${process.getuid!()} may not list /x`]);
      const full = fsError("thing", Object.assign(new Error("ENOSPC"), { code: "ENOSPC", syscall: "write", path: "/x" }));
      expect([full.code, full.message]).toEqual([Code.RESOURCE_EXHAUSTED, "thing: resource exhausted: no space left for /x"]);
      // A copy names the file it could not write, not the one it read.
      const copied = fsError("thing", Object.assign(new Error("ENOSPC"), { code: "ENOSPC", syscall: "copyfile", path: "/work/dump.log", dest: "/images/dump.log" }));
      expect([copied.code, copied.message]).toEqual([Code.RESOURCE_EXHAUSTED, "thing: resource exhausted: no space left for /images/dump.log"]);
      const readOnly = fsError("thing", Object.assign(new Error("EROFS"), { code: "EROFS", syscall: "copyfile", path: "/work/dump.log", dest: "/images/dump.log" }));
      expect([readOnly.code, readOnly.message]).toEqual([Code.FAILED_PRECONDITION, "thing: failed precondition: /images/dump.log is on a read-only file system"]);
      const gone = fsError("thing", Object.assign(new Error("ENOENT"), { code: "ENOENT", syscall: "copyfile", path: "/work/dump.log", dest: "/images/dump.log" }));
      expect(gone.message).toBe("thing: not found: no /work/dump.log");
      // A CryoError passes unchanged; anything else keeps its message.
      const classified = notFound("container c1");
      expect(fsError("thing", classified)).toBe(classified);
      expect(fsError("thing", new Error("odd")).message).toBe("thing: odd");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
