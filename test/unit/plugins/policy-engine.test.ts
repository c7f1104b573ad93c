import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { Code } from "../../../src/errors.ts";
import { policyConfigSchema } from "../../../src/plugins/config.ts";
import type { AdmitInput, CheckpointInput, RestoreInput } from "../../../src/plugins/hook-schemas.ts";
import { createPolicyEngine, type PolicyEngine } from "../../../src/plugins/policy-engine.ts";
import { builtPlugins, rejection, sampleInput } from "./built-plugins.ts";

let dir = "";
let privileged: AdmitInput;
let ordinary: AdmitInput;
const engines: PolicyEngine[] = [];

beforeAll(async () => {
  dir = builtPlugins();
  privileged = await sampleInput("admit-privileged");
  ordinary = await sampleInput("admit-ordinary");
}, 300_000);
afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

function engine(plugins: unknown[], logs: string[] = []): PolicyEngine {
  const withPaths = plugins.map((p) => {
    const entry = p as { path: string };
    return { ...entry, path: join(dir, entry.path) };
  });
  const e = createPolicyEngine(policyConfigSchema.parse({ plugins: withPaths }), { log: (level, msg) => logs.push(`${level}: ${msg}`) });
  engines.push(e);
  return e;
}

const denyPrivileged = { name: "deny-privileged", path: "deny-privileged.wasm", hooks: ["admit"] };
const allowlist = (registries: string) => ({ name: "registry-allowlist", path: "registry-allowlist.wasm", hooks: ["admit"], config: { registries } });

describe("admission", () => {
  test("a privileged container is denied with the plugin's reason", async () => {
    const e = engine([denyPrivileged, allowlist("docker.io")]);
    const err = await rejection(e.admit(privileged));
    expect(err.code).toBe(Code.PERMISSION_DENIED);
    expect(err.message).toBe("container c1: denied by plugin deny-privileged: privileged containers are not allowed (CAP_SYS_ADMIN in the bounding set, all devices allowed)");
  });

  test("an ordinary container passes the chain unchanged", async () => {
    const e = engine([denyPrivileged, allowlist("docker.io,ghcr.io")]);
    const d = await e.admit(ordinary);
    expect(d.consulted).toEqual(["deny-privileged", "registry-allowlist"]);
    expect(d.spec).toEqual(ordinary.spec);
    expect(d.changes).toEqual({});
  });

  test("the chain stops at the first deny", async () => {
    const e = engine([allowlist("ghcr.io"), denyPrivileged]);
    const err = await rejection(e.admit(privileged));
    expect(err.message).toStartWith("container c1: denied by plugin registry-allowlist: image docker.io/library/busybox:latest is from registry docker.io");
  });

  test("a deny reason is cut at 4096 characters: a reason past ttrpc's 4 MiB would lose the deny and the plugin's name", async () => {
    const e = engine([allowlist("ghcr.io")]);
    // The allowlist's reason names the registries of its config: a config of 100,000 characters makes a long one.
    const long = engine([allowlist(`ghcr.io,${"r".repeat(100_000)}`)]);
    expect((await rejection(e.admit(privileged))).message).not.toContain("more characters");
    const err = await rejection(long.admit(privileged));
    expect(err.code).toBe(Code.PERMISSION_DENIED);
    const reason = err.message.slice("container c1: denied by plugin registry-allowlist: ".length);
    expect(reason).toStartWith("image docker.io/library/busybox:latest is from registry docker.io");
    expect(reason).toMatch(/^.{4096}\.\.\. \(\d+ more characters\)$/s);
  });

  test("at a restore's Create the plugins are told, and only resources and annotations apply: env and removeMounts are left out, with a warning", async () => {
    const logs: string[] = [];
    const e = engine([{ name: "first", path: "set-env.wasm", hooks: ["admit"], config: { name: "STAGE", value: "one", remove_mount: "/dev", pids_limit: "64" } }], logs);
    const created = await e.admit(ordinary);
    expect(Object.keys(created.changes).sort()).toEqual(["annotations", "env", "removeMounts", "resources"]);
    const restored = await e.admit({ ...ordinary, restore: true });
    expect(restored.changes).toEqual({ annotations: { "cryo.test/STAGE": "one" }, resources: { pids: { limit: 64 } } });
    expect(restored.spec.process?.env).toEqual(ordinary.spec.process?.env);
    expect(restored.spec.mounts).toEqual(ordinary.spec.mounts);
    expect(restored.spec.linux?.resources).toMatchObject({ pids: { limit: 64 } });
    expect(logs).toEqual([`warn: plugin first (admit of container ${ordinary.id} in namespace ${ordinary.namespace}): env, removeMounts not applied: a restored container's processes and mounts come back from its checkpoint`]);
    // The plugin sees which Create it is (the SDK's AdmitInput.restore).
    const strict = engine([{ name: "no-restores", path: "set-env.wasm", hooks: ["admit"], config: { deny_restore: "true" } }]);
    expect((await strict.admit(ordinary)).consulted).toEqual(["no-restores"]);
    expect((await rejection(strict.admit({ ...ordinary, restore: true }))).message).toBe(`container ${ordinary.id}: denied by plugin no-restores: restores are not admitted here`);
  });

  test("host namespaces are denied unless the plugin's config allows them", async () => {
    const hostNet = structuredClone(ordinary);
    hostNet.spec.linux!.namespaces = hostNet.spec.linux!.namespaces!.filter((n) => n.type !== "network");
    expect((await rejection(engine([denyPrivileged]).admit(hostNet))).message).toEndWith("(host network namespace)");
    const allowNet = { ...denyPrivileged, config: { allow_host_namespaces: "network" } };
    expect((await engine([allowNet]).admit(hostNet)).consulted).toEqual(["deny-privileged"]);
  });

  test("spec changes compose: each plugin sees the earlier changes, the later one wins per key", async () => {
    const e = engine([
      { name: "first", path: "set-env.wasm", hooks: ["admit"], config: { name: "STAGE", value: "one", remove_mount: "/dev" } },
      { name: "second", path: "set-env.wasm", hooks: ["admit"], config: { name: "STAGE", value: "two", expect_env: "STAGE=one", pids_limit: "64" } },
      { name: "third", path: "set-env.wasm", hooks: ["admit"], config: { name: "OTHER", value: "x", expect_env: "STAGE=two" } },
    ]);
    const d = await e.admit(ordinary);
    expect(d.consulted).toEqual(["first", "second", "third"]);
    expect(d.spec.process?.env).toEqual([...ordinary.spec.process!.env!, "STAGE=two", "OTHER=x"]);
    expect(d.spec.annotations).toEqual({ "cryo.test/STAGE": "two", "cryo.test/OTHER": "x" });
    expect(d.spec.mounts?.map((m) => m.destination)).toEqual(["/proc"]);
    expect(d.spec.linux?.resources).toEqual({ devices: [{ allow: false, access: "rwm" }], pids: { limit: 64 } });
    expect(d.changes).toEqual({
      env: { STAGE: "two", OTHER: "x" },
      annotations: { "cryo.test/STAGE": "two", "cryo.test/OTHER": "x" },
      resources: { pids: { limit: 64 } },
      removeMounts: ["/dev"],
    });
  });

  test("match rules select plugins by namespace, image and annotation", async () => {
    const e = engine([
      { ...denyPrivileged, match: { namespaces: ["prod-*"] } },
      { ...allowlist("ghcr.io"), match: { images: ["docker.io/library/*"], annotations: { "cryo.policy": "strict" } } },
    ]);
    expect((await e.admit(privileged)).consulted).toEqual([]);
    const prod = { ...privileged, namespace: "prod-1" };
    expect((await rejection(e.admit(prod))).message).toContain("deny-privileged");
    const strict = { ...ordinary, annotations: { "cryo.policy": "strict" }, spec: { ...ordinary.spec, annotations: { "cryo.policy": "strict" } } };
    expect((await rejection(e.admit(strict))).message).toContain("denied by plugin registry-allowlist");
  });
});

describe("checkpoint and restore options", () => {
  const checkpointDefaults = { name: "checkpoint-defaults", path: "checkpoint-defaults.wasm", hooks: ["checkpoint", "restore"], config: { max_memory_gib: "2" } };
  const base: CheckpointInput = {
    id: "c1",
    namespace: "default",
    annotations: {},
    image: null,
    processCount: 3,
    memoryBytes: 50 * 1024 * 1024,
    tcpConnections: 1,
    requested: { leaveRunning: false, fileLocks: true },
  };

  test("tcp-established only for containers the policy calls stateful; requested options fold through", async () => {
    const e = engine([checkpointDefaults]);
    expect((await e.checkpointOptions(base)).options).toEqual({ leaveRunning: false, fileLocks: true });
    // cryo's own annotations are cryo's business (resolved before the hook): the plugin does not read them.
    const cryoAnnotated = { ...base, annotations: { "cryo.checkpoint/tcp-established": "true" } };
    expect((await e.checkpointOptions(cryoAnnotated)).options).toEqual({ leaveRunning: false, fileLocks: true });
    const stateful = { ...base, annotations: { "policy.cryo.dev/stateful": "true" } };
    expect((await e.checkpointOptions(stateful)).options).toEqual({ leaveRunning: false, fileLocks: true, tcpEstablished: true });
  });

  test("a container above the memory limit may not be checkpointed", async () => {
    const err = await rejection(engine([checkpointDefaults]).checkpointOptions({ ...base, memoryBytes: 3 * 1024 ** 3 }));
    expect(err.code).toBe(Code.PERMISSION_DENIED);
    expect(err.message).toBe("checkpoint of container c1: denied by plugin checkpoint-defaults: container uses 3.0 GiB of memory, above the checkpoint limit of 2.0 GiB");
  });

  test("restore: tcp-established when the checkpoint's annotations mark the container stateful", async () => {
    const input: RestoreInput = {
      id: "c1",
      namespace: "default",
      checkpoint: { containerId: "c0", originHost: "a", kernel: "6.18", criuVersion: "4.2.1", image: null, createdAt: "2026-11-28T00:00:00Z", annotations: { "policy.cryo.dev/stateful": "true" } },
      requested: { tcpClose: false },
    };
    const e = engine([checkpointDefaults]);
    expect((await e.restoreAdmission(input)).options).toEqual({ tcpClose: false, tcpEstablished: true });
    expect((await e.restoreAdmission({ ...input, checkpoint: { ...input.checkpoint, annotations: {} } })).options).toEqual({ tcpClose: false });
  });
});

describe("failure policy", () => {
  const bad = (name: string, extra: object = {}) => ({ name, path: `${name}.wasm`, hooks: ["admit"], limits: { timeout_ms: 500, memory_mib: 16 }, ...extra });

  test("each bad plugin gives a clear error naming plugin and hook, and the host keeps working", async () => {
    const e = engine([bad("loop-forever", { match: { annotations: { bad: "loop-forever" } } }),
      bad("trap", { match: { annotations: { bad: "trap" } } }),
      bad("alloc-unbounded", { match: { annotations: { bad: "alloc-unbounded" } } }),
      bad("malformed-json", { match: { annotations: { bad: "malformed-json" } } }),
      bad("start-loop", { match: { annotations: { bad: "start-loop" } } }),
      denyPrivileged]);
    const run = (which: string) => e.admit({ ...ordinary, annotations: { bad: which } });
    const expected: Record<string, [Code, string]> = {
      // Each names the container first, as a deny does (before, found by a helper session, only the plugin and hook).
      "loop-forever": [Code.DEADLINE_EXCEEDED, "container c2: plugin loop-forever: hook admit: timed out after 500 ms"],
      trap: [Code.FAILED_PRECONDITION, "container c2: plugin trap: hook admit: trapped: abort: policy bug: cannot decide about c2"],
      "alloc-unbounded": [Code.RESOURCE_EXHAUSTED, "container c2: plugin alloc-unbounded: hook admit: exceeded its memory limit of 16 MiB"],
      "malformed-json": [Code.FAILED_PRECONDITION, "container c2: plugin malformed-json: hook admit: returned malformed JSON"],
      // Its top-level code loops: the plugin's own time limit, not the 15 s a runner's start and a compile may take.
      "start-loop": [Code.DEADLINE_EXCEEDED, "container c2: plugin start-loop: hook admit: instantiation (the module's start function) timed out after 500 ms"],
    };
    for (const [which, [code, message]] of Object.entries(expected)) {
      const err = await rejection(run(which));
      expect(err.message).toStartWith(message);
      expect(err.code).toBe(code);
      // The next call, to another plugin, works: the host recovered.
      expect((await e.admit(ordinary)).consulted).toEqual(["deny-privileged"]);
      expect((await rejection(e.admit(privileged))).code).toBe(Code.PERMISSION_DENIED);
    }
    // And a bad plugin is re-created for its next call (the same clear error, not a stale state).
    const trapped = (await rejection(run("trap"))).message;
    expect(trapped).toStartWith(expected.trap![1]);
    // The plugin's own words and place, not where in the host's JavaScript the trap surfaced.
    expect(trapped).toEndWith("(testdata/trap.ts:9:23): Unreachable code should not be executed");
    expect((await rejection(run("alloc-unbounded"))).message).toEndWith("Unreachable code should not be executed");
  });

  test("fail-open turns a broken plugin into allow, with a warning", async () => {
    const logs: string[] = [];
    const e = engine([bad("loop-forever", { failure: "open" }), bad("malformed-json", { failure: "open" }), denyPrivileged], logs);
    expect((await e.admit(ordinary)).consulted).toEqual(["loop-forever", "malformed-json", "deny-privileged"]);
    // Each warning names the container it let through.
    const who = `container ${ordinary.id} in namespace ${ordinary.namespace}`;
    expect(logs).toEqual([
      `warn: ${who}: plugin loop-forever: hook admit: timed out after 500 ms (failure = "open": allowing)`,
      `warn: ${who}: plugin malformed-json: hook admit: returned malformed JSON: JSON Parse error: Unterminated string (failure = "open": allowing)`,
    ]);
    // fail-open does not weaken the other plugins
    expect((await rejection(e.admit(privileged))).message).toContain("denied by plugin deny-privileged");
  });

  test("plugins that cannot load are refused when the engine is built, naming the plugin", () => {
    const build = (p: object) => () => engine([p]);
    expect(build({ ...denyPrivileged, path: "nope.wasm" })).toThrow(/^plugin deny-privileged: invalid argument: plugin file .*nope\.wasm: not found$/);
    // A directory: Bun's EISDIR error carries no path, so the message names it from the config.
    expect(build({ ...denyPrivileged, path: "." })).toThrow(/^plugin deny-privileged: invalid argument: plugin file (\/\S+): failed precondition: \1 is a directory, not a file$/);
    // A FIFO is refused before a read (the read waited for a writer, the shim daemon with it).
    const fifo = join(mkdtempSync(join(tmpdir(), "cryo-plugin-fifo-")), "p.wasm");
    Bun.spawnSync(["mkfifo", fifo]);
    expect(build({ ...denyPrivileged, path: relative(dir, fifo) })).toThrow(`plugin deny-privileged: invalid argument: plugin file ${fifo}: failed precondition: ${fifo} is a FIFO, not a regular file`);
    rmSync(dirname(fifo), { recursive: true });
    expect(build({ ...denyPrivileged, hooks: ["admit", "restore"] })).toThrow('plugin deny-privileged: invalid argument: hooks lists "restore" but the module has no export "restore" (its functions: admit)');
    expect(build({ ...denyPrivileged, grants: { allowed_paths: { "/data": "/srv" } } })).toThrow("plugin deny-privileged: invalid argument: grants.allowed_paths");
  });
});
