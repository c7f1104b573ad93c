import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "../../../src/errors.ts";
import { pluginConfigSchema } from "../../../src/plugins/config.ts";
import { createPluginHost } from "../../../src/plugins/plugin-host.ts";
import { PluginRunner } from "../../../src/plugins/plugin-runner.ts";
import { formatPluginTestResult, runPluginTest } from "../../../src/plugins/plugin-test.ts";
import { waitFor } from "../../harness/wait-for.ts";
import { builtPlugins, rejection, sampleInput } from "./built-plugins.ts";

let dir = "";
const tmp = mkdtempSync(join(tmpdir(), "cryo-plugin-host-"));
beforeAll(() => {
  dir = builtPlugins();
}, 300_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("plugin runner", () => {
  test("a call past its deadline kills the runner process; the next request starts a new one", async () => {
    await using runner = new PluginRunner();
    const wasm = new Uint8Array(await Bun.file(join(dir, "loop-forever.wasm")).arrayBuffer());
    const load = await runner.request({ t: "load", key: "k", wasm, config: {}, maxPages: 256, allowedHosts: [] }, 15_000);
    expect(load.kind === "reply" && load.reply.ok).toBe(true);
    const first = runner.pid!;
    expect(await runner.request({ t: "call", key: "k", fn: "admit", input: "{}" }, 200)).toEqual({ kind: "timeout" });
    expect(alive(first)).toBe(false);
    expect(runner.pid).toBeNull();
    const again = await runner.request({ t: "call", key: "k", fn: "admit", input: "{}" }, 15_000);
    expect(again.kind === "reply" && !again.reply.ok && again.reply.kind).toBe("not-loaded");
    expect(runner.pid).not.toBe(first);
  });
});

describe("plugin host", () => {
  test("validates plugin output against the hook's schema", async () => {
    const host = createPluginHost();
    try {
      const input = { id: "c", namespace: "n", annotations: {}, image: null, processCount: 1, memoryBytes: 1, tcpConnections: 0, requested: {} };
      const bad = host.load(pluginConfigSchema.parse({ name: "malformed-json", path: join(dir, "malformed-json.wasm"), hooks: ["checkpoint"] }));
      const err = await rejection(host.call(bad, "checkpoint", input));
      expect(err.code).toBe(Code.FAILED_PRECONDITION);
      expect(err.message).toBe("plugin malformed-json: hook checkpoint: invalid output: allow: Invalid input: expected boolean, received string");
      // A hook the module does not export (the config is checked at load; a direct call still fails clearly).
      const p = host.load(pluginConfigSchema.parse({ name: "set-env", path: join(dir, "set-env.wasm"), hooks: ["admit"] }));
      const missing = await rejection(host.call(p, "restore", { id: "c", namespace: "n", requested: {}, checkpoint: { containerId: "c0", originHost: "h", kernel: "k", criuVersion: "v", image: null, createdAt: "t", annotations: {} } }));
      expect(missing.message).toBe('plugin set-env: hook restore: the plugin has no export "restore"');
      const ok = await host.call(p, "admit", await sampleInput("admit-ordinary"));
      expect(ok.output.allow).toBe(true);
      expect(ok.memoryBytes).toBeGreaterThan(0);
    } finally {
      await host.close();
    }
  });
});

describe("an invalid key in a plugin's output", () => {
  test("names the key and why it is refused (zod's own message was only \"Invalid key in record\")", async () => {
    const host = createPluginHost();
    try {
      const p = host.load(pluginConfigSchema.parse({ name: "set-env", path: join(dir, "set-env.wasm"), hooks: ["admit"], config: { name: "A=B" } }));
      const err = await rejection(host.call(p, "admit", await sampleInput("admit-ordinary")));
      expect(err.code).toBe(Code.FAILED_PRECONDITION);
      expect(err.message).toBe('plugin set-env: hook admit: invalid output: changes.env["A=B"]: invalid key: an environment variable\'s name: not empty, without = or NUL');
    } finally {
      await host.close();
    }
  });
});

describe("a plugin past its memory limit in Extism's host memory", () => {
  // Extism caps its own blocks (input, log lines, outputs) at the plugin's memory_mib: past it, its alloc logs
  // "memory limit exceeded" and returns 0, and the plugin traps writing there. That was reported as a trap
  // (FAILED_PRECONDITION), and after 100 log lines of the plugin's own the line saying why was dropped.
  const call = async (logs: number) => {
    const host = createPluginHost();
    try {
      const p = host.load(pluginConfigSchema.parse({ name: "host-alloc", path: join(dir, "host-alloc.wasm"), hooks: ["admit"], config: { logs: String(logs) }, limits: { memory_mib: 16, timeout_ms: 30_000 } }));
      return await rejection(host.call(p, "admit", await sampleInput("admit-ordinary")));
    } finally {
      await host.close();
    }
  };

  test("is RESOURCE_EXHAUSTED naming the limit and Extism's line", async () => {
    const err = await call(0);
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toMatch(/^plugin host-alloc: hook admit: exceeded its memory limit of 16 MiB: memory limit exceeded: \d+ pages requested, 256 allowed: /);
  });

  test("says so after the plugin's own 100 log lines too", async () => {
    const err = await call(150);
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toMatch(/^plugin host-alloc: hook admit: exceeded its memory limit of 16 MiB: memory limit exceeded: \d+ pages requested, 256 allowed: /);
  });
});

describe("a bare unreachable (AssemblyScript's allocator out of memory far from the cap)", () => {
  test("says what it likely is and how much memory the plugin had; it said only \"Unreachable code should not be executed\"", async () => {
    const host = createPluginHost();
    try {
      const p = host.load(pluginConfigSchema.parse({ name: "host-alloc", path: join(dir, "host-alloc.wasm"), hooks: ["admit"], config: { holds: "2", hold: String(12 << 20) }, limits: { memory_mib: 16, timeout_ms: 30_000 } }));
      const err = await rejection(host.call(p, "admit", await sampleInput("admit-ordinary")));
      expect(err.code).toBe(Code.FAILED_PRECONDITION);
      expect(err.message).toMatch(
        /^plugin host-alloc: hook admit: trapped: Unreachable code should not be executed \(with no abort message: AssemblyScript's allocator traps so when its memory cannot grow; the plugin's memory was 12\.\d MiB of its 16 MiB limit\)$/,
      );
    } finally {
      await host.close();
    }
  }, 60_000);
});

describe("a plugin's Extism variables", () => {
  test("count against its memory limit: they outlive the call in the runner, which grew by every call's 2 MiB without bound", async () => {
    const host = createPluginHost();
    try {
      const p = host.load(pluginConfigSchema.parse({ name: "var-hoard", path: join(dir, "var-hoard.wasm"), hooks: ["admit"], config: { bytes: String(2 << 20) }, limits: { memory_mib: 16, timeout_ms: 30_000 } }));
      const input = await sampleInput("admit-ordinary");
      for (let call = 1; call <= 7; call++) expect((await host.call(p, "admit", input)).output.reason).toBe(`calls: ${call}`);
      const err = await rejection(host.call(p, "admit", input));
      expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
      expect(err.message).toMatch(/^plugin var-hoard: hook admit: exceeded its memory limit of 16 MiB: var memory limit exceeded: \d+ bytes requested, 16777216 allowed$/);
      // The failed call's instance is discarded, its variables with it.
      expect((await host.call(p, "admit", input)).output.reason).toBe("calls: 1");
    } finally {
      await host.close();
    }
  }, 60_000);
});

describe("plugin output quoted in an error", () => {
  test("is cut at 4096 characters: an unknown key of 5 MB would put the error past ttrpc's 4 MiB and lose the plugin's name", async () => {
    const host = createPluginHost();
    try {
      const input = { id: "c", namespace: "n", requested: {}, checkpoint: { containerId: "c0", originHost: "h", kernel: "k", criuVersion: "v", image: null, createdAt: "t", annotations: {} } };
      const plugin = (keyLength: number) =>
        host.load(pluginConfigSchema.parse({ name: "malformed-json", path: join(dir, "malformed-json.wasm"), hooks: ["restore"], config: { key_length: String(keyLength) }, limits: { memory_mib: 256, timeout_ms: 30_000 } }));
      const short = await rejection(host.call(plugin(8), "restore", input));
      expect(short.message).toBe('plugin malformed-json: hook restore: invalid output: Unrecognized key: "kkkkkkkk"');
      const err = await rejection(host.call(plugin(5_000_000), "restore", input));
      expect(err.code).toBe(Code.FAILED_PRECONDITION);
      const detail = err.message.slice("plugin malformed-json: hook restore: ".length);
      expect(detail).toStartWith('invalid output: Unrecognized key: "kkkk');
      expect(detail).toMatch(/^.{4096}\.\.\. \(\d+ more characters\)$/s);
    } finally {
      await host.close();
    }
  });
});

describe("idle runner", () => {
  test("a runner with nothing to do ends after the idle time; the next call starts one and loads the plugin again", async () => {
    const host = createPluginHost({ idleMs: 50 });
    try {
      const p = host.load(pluginConfigSchema.parse({ name: "deny-privileged", path: join(dir, "deny-privileged.wasm"), hooks: ["admit"] }));
      expect((await host.call(p, "admit", await sampleInput("admit-privileged"))).output.allow).toBe(false);
      const first = host.runnerPid()!;
      expect(alive(first)).toBe(true);
      while (host.runnerPid() !== null) await Bun.sleep(20);
      // The runner is no longer the host's once its SIGKILL is sent; under load it was still there (not yet reaped)
      // when the host already said none.
      await waitFor(() => !alive(first), { what: `idle runner ${first} gone` });
      expect((await host.call(p, "admit", await sampleInput("admit-ordinary"))).output.allow).toBe(true);
      expect(host.runnerPid()).not.toBe(first);
    } finally {
      await host.close();
    }
    expect(host.runnerPid()).toBeNull();
  });

  test("with 0 the runner stays", async () => {
    const host = createPluginHost({ idleMs: 0 });
    try {
      const p = host.load(pluginConfigSchema.parse({ name: "deny-privileged", path: join(dir, "deny-privileged.wasm"), hooks: ["admit"] }));
      await host.call(p, "admit", await sampleInput("admit-ordinary"));
      const pid = host.runnerPid();
      await Bun.sleep(100);
      expect(host.runnerPid()).toBe(pid);
    } finally {
      await host.close();
    }
  });
});

describe("runPluginTest (cryo plugin test)", () => {
  test("prints the decision, the time and the memory", async () => {
    const r = await runPluginTest({ wasm: join(dir, "deny-privileged.wasm"), hook: "admit", inputFile: join(import.meta.dir, "../../../plugins/testdata/inputs/admit-privileged.json") });
    expect(r.output).toEqual({ allow: false, reason: "privileged containers are not allowed (CAP_SYS_ADMIN in the bounding set, all devices allowed)" });
    const text = formatPluginTestResult(r);
    expect(text).toStartWith("decision: deny: privileged containers are not allowed");
    expect(text).toMatch(/\ntime: +\d+\.\d{3} ms \(call\)/);
    expect(text).toMatch(/\nmemory: +\d+ KiB \(\d+ wasm pages?\)/);
  });

  test("prints a deny reason cut as the shim reports it (4096 characters), not a plugin's 10 MB whole", () => {
    const r = { hook: "admit" as const, output: { allow: false, reason: "x".repeat(5000) }, durationMs: 1, totalMs: 2, memoryBytes: 65536, logs: [] };
    expect(formatPluginTestResult(r).split("\n")[0]).toBe(`decision: deny: ${"x".repeat(4096)}... (904 more characters)`);
  });

  test("passes config values to the plugin", async () => {
    const r = await runPluginTest({
      wasm: join(dir, "registry-allowlist.wasm"),
      hook: "admit",
      inputFile: join(import.meta.dir, "../../../plugins/testdata/inputs/admit-ordinary.json"),
      config: { registries: "docker.io" },
    });
    expect(r.output.allow).toBe(true);
  });

  test("bad hook names and bad input files are INVALID_ARGUMENT", async () => {
    const input = join(tmp, "bad.json");
    writeFileSync(input, JSON.stringify({ id: "x" }));
    const wasm = join(dir, "deny-privileged.wasm");
    await expect(runPluginTest({ wasm, hook: "create", inputFile: input })).rejects.toThrow("--hook create: invalid argument: must be one of admit, checkpoint, restore");
    const err = await rejection(runPluginTest({ wasm, hook: "admit", inputFile: input }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toStartWith(`input ${input}: invalid argument: namespace:`);
    // Every missing field is named, not only the first (before: namespace alone).
    for (const field of ["bundle", "annotations", "spec", "image"]) expect(err.message).toContain(`; ${field}: `);
    const notObject = join(tmp, "array.json");
    writeFileSync(notObject, "[]");
    expect((await rejection(runPluginTest({ wasm, hook: "admit", inputFile: notObject }))).message).toStartWith(`input ${notObject}: invalid argument: (root): `);
  });

  test("a limit or grant out of range is named by its flag, not by a config key this command has none of", async () => {
    const inputFile = join(import.meta.dir, "../../../plugins/testdata/inputs/admit-ordinary.json");
    const wasm = join(dir, "deny-privileged.wasm");
    const message = async (o: Partial<Parameters<typeof runPluginTest>[0]>) => (await rejection(runPluginTest({ wasm, hook: "admit", inputFile, ...o }))).message;
    expect(await message({ memoryMib: 5000 })).toBe("--memory-mib 5000: invalid argument: Too big: expected number to be <=4096");
    expect(await message({ timeoutMs: 70000 })).toBe("--timeout-ms 70000: invalid argument: Too big: expected number to be <=60000");
    expect(await message({ allowedHosts: ["ok.example", "http://x"] })).toStartWith("--allow-host http://x: invalid argument: must be a host name or IP address");
  });

  test("a module without the export of --hook is named by --hook (there is no hooks list to name)", async () => {
    const input = join(tmp, "checkpoint.json");
    writeFileSync(input, JSON.stringify({ id: "db-1", namespace: "default", annotations: {}, image: null, processCount: 1, memoryBytes: 1, tcpConnections: 0, requested: {} }));
    const err = await rejection(runPluginTest({ wasm: join(dir, "deny-privileged.wasm"), hook: "checkpoint", inputFile: input }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toBe('plugin deny-privileged: invalid argument: --hook checkpoint: the module has no export "checkpoint" (its functions: admit)');
  });
});

/** A WebAssembly module of one page of memory and one function type `() -> ()` that it imports under each [module, name]. */
function moduleImporting(imports: [string, string][]): Uint8Array {
  const name = (text: string) => [text.length, ...new TextEncoder().encode(text)];
  const entries = imports.flatMap(([m, n]) => [...name(m), ...name(n), 0x00, 0x00]);
  const importSection = [imports.length, ...entries];
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x02, importSection.length, ...importSection, 0x05, 0x03, 0x01, 0x00, 0x01]);
}

describe("a module's imports", () => {
  function loadError(file: string, imports: [string, string][]): string {
    const path = join(tmp, file);
    writeFileSync(path, moduleImporting(imports));
    const host = createPluginHost();
    try {
      host.load(pluginConfigSchema.parse({ name: "imp", path, hooks: ["admit"] }));
    } catch (err) {
      return (err as Error).message;
    } finally {
      void host.close();
    }
    throw new Error("expected the load to fail");
  }

  test("AssemblyScript's trace() and console are named with what to use instead; the hint was only --use abort=... for any import", () => {
    expect(loadError("trace.wasm", [["env", "trace"], ["env", "console.log"]])).toBe(
      "plugin imp: invalid argument: imports env.trace, env.console.log, which cryo does not provide (only Extism's extism:host/env): env.trace and env.console.* are AssemblyScript's trace() and console: log with the SDK's log()",
    );
  });

  test("env.abort names the build flag; every foreign import is listed", () => {
    expect(loadError("abort.wasm", [["extism:host/env", "input_length"], ["env", "abort"], ["env", "seed"]])).toBe(
      "plugin imp: invalid argument: imports env.abort, env.seed, which cryo does not provide (only Extism's extism:host/env): env.abort is AssemblyScript's default abort: build with --use abort=<the SDK>/index/cryoAbort; remove what uses env.seed",
    );
  });
});

describe("preload", () => {
  test("instantiates the plugin in the runner before its first call", async () => {
    const host = createPluginHost();
    try {
      const p = host.load(pluginConfigSchema.parse({ name: "deny-privileged", path: join(dir, "deny-privileged.wasm"), hooks: ["admit"] }));
      await host.preload(p);
      const r = await host.call(p, "admit", await sampleInput("admit-privileged"));
      expect(r.output.allow).toBe(false);
    } finally {
      await host.close();
    }
  });
});
