// The checkpoint-defaults example through the policy engine: which containers it calls stateful
// (annotation named by its config, image prefixes, the CRI image annotation), tcp-established at
// checkpoint and restore for them only, its log line, and the memory refusal.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Code } from "../../../src/errors.ts";
import { policyConfigSchema } from "../../../src/plugins/config.ts";
import type { CheckpointInput, RestoreInput } from "../../../src/plugins/hook-schemas.ts";
import { createPolicyEngine, type PolicyEngine } from "../../../src/plugins/policy-engine.ts";
import { builtPlugins, rejection } from "./built-plugins.ts";

let dir = "";
const engines: PolicyEngine[] = [];

beforeAll(() => {
  dir = builtPlugins();
}, 300_000);
afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

function engine(config: Record<string, string> = {}, logs: string[] = []): PolicyEngine {
  const entry = { name: "checkpoint-defaults", path: join(dir, "checkpoint-defaults.wasm"), hooks: ["checkpoint", "restore"], config };
  const e = createPolicyEngine(policyConfigSchema.parse({ plugins: [entry] }), { log: (level, msg) => logs.push(`${level}: ${msg}`) });
  engines.push(e);
  return e;
}

const base: CheckpointInput = {
  id: "db-1",
  namespace: "default",
  annotations: {},
  image: null,
  processCount: 2,
  memoryBytes: 64 * 1024 * 1024,
  tcpConnections: 2,
  requested: { leaveRunning: true, tcpEstablished: false },
};

function restoreInput(annotations: Record<string, string>, image: RestoreInput["checkpoint"]["image"] = null): RestoreInput {
  return {
    id: "db-2",
    namespace: "default",
    checkpoint: { containerId: "c0", originHost: "h", kernel: "6.18", criuVersion: "40201", image, createdAt: "2026-11-28T00:00:00Z", annotations },
    requested: { tcpEstablished: false, tcpClose: false },
  };
}

describe("checkpoint hook", () => {
  test("the default annotation policy.cryo.dev/stateful=true turns tcp-established on, and says so in the log", async () => {
    const logs: string[] = [];
    const e = engine({}, logs);
    const d = await e.checkpointOptions({ ...base, annotations: { "policy.cryo.dev/stateful": "true" } });
    expect(d.options).toEqual({ leaveRunning: true, tcpEstablished: true });
    expect(logs.some((l) => l.includes("checkpoint of db-1: tcp-established on (annotation policy.cryo.dev/stateful=true, 2 established connections)"))).toBe(true);
  });

  test("a container that is not stateful keeps what was requested", async () => {
    const e = engine();
    expect((await e.checkpointOptions(base)).options).toEqual(base.requested);
    expect((await e.checkpointOptions({ ...base, annotations: { "policy.cryo.dev/stateful": "false" } })).options).toEqual(base.requested);
    // cryo's own annotation is resolved by cryo before the hook; the policy neither reads nor undoes it.
    const asked = { ...base, annotations: { "cryo.checkpoint/tcp-established": "true" }, requested: { leaveRunning: true, tcpEstablished: true } };
    expect((await e.checkpointOptions(asked)).options).toEqual({ leaveRunning: true, tcpEstablished: true });
  });

  test("the policy wins over an owner's tcp-established=false for a stateful container", async () => {
    const e = engine();
    const d = await e.checkpointOptions({ ...base, annotations: { "policy.cryo.dev/stateful": "true", "cryo.checkpoint/tcp-established": "false" } });
    expect(d.options.tcpEstablished).toBe(true);
  });

  test('tcp_established_annotation names the annotation; "none" turns the annotation test off', async () => {
    const custom = engine({ tcp_established_annotation: "example.com/keep-connections" });
    expect((await custom.checkpointOptions({ ...base, annotations: { "example.com/keep-connections": "true" } })).options.tcpEstablished).toBe(true);
    expect((await custom.checkpointOptions({ ...base, annotations: { "policy.cryo.dev/stateful": "true" } })).options.tcpEstablished).toBe(false);
    const off = engine({ tcp_established_annotation: "none" });
    expect((await off.checkpointOptions({ ...base, annotations: { "policy.cryo.dev/stateful": "true" } })).options.tcpEstablished).toBe(false);
  });

  test("tcp_established_images: image-name prefixes, from the image or CRI's image-name annotation", async () => {
    const e = engine({ tcp_established_images: "registry.example/db/, docker.io/library/postgres" });
    const image = (name: string) => ({ name, digest: "", labels: {} });
    expect((await e.checkpointOptions({ ...base, image: image("docker.io/library/postgres:16") })).options.tcpEstablished).toBe(true);
    expect((await e.checkpointOptions({ ...base, image: image("registry.example/db/mysql:8") })).options.tcpEstablished).toBe(true);
    expect((await e.checkpointOptions({ ...base, image: image("docker.io/library/nginx:1.27") })).options.tcpEstablished).toBe(false);
    const cri = { ...base, annotations: { "io.kubernetes.cri.image-name": "docker.io/library/postgres:16" } };
    expect((await e.checkpointOptions(cri)).options.tcpEstablished).toBe(true);
    // With no prefixes configured, images make nothing stateful.
    expect((await engine().checkpointOptions({ ...base, image: image("docker.io/library/postgres:16") })).options.tcpEstablished).toBe(false);
  });

  test("a container above max_memory_gib may not be checkpointed, stateful or not", async () => {
    const e = engine({ max_memory_gib: "0.5" });
    const big = { ...base, memoryBytes: 768 * 1024 * 1024, annotations: { "policy.cryo.dev/stateful": "true" } };
    const err = await rejection(e.checkpointOptions(big));
    expect(err.code).toBe(Code.PERMISSION_DENIED);
    expect(err.message).toBe("checkpoint of container db-1: denied by plugin checkpoint-defaults: container uses 0.75 GiB of memory, above the checkpoint limit of 0.5 GiB");
    // The default limit is 8 GiB.
    expect((await rejection(engine().checkpointOptions({ ...base, memoryBytes: 9 * 1024 ** 3 }))).message).toEndWith("above the checkpoint limit of 8.0 GiB");
    expect((await engine().checkpointOptions({ ...base, memoryBytes: 7 * 1024 ** 3 })).options).toEqual(base.requested);
  });

  test("local_pages_above_gib turns local pages on for containers above it, and says so; off by default", async () => {
    const logs: string[] = [];
    const e = engine({ local_pages_above_gib: "0.5" }, logs);
    const big = { ...base, memoryBytes: 768 * 1024 * 1024 };
    expect((await e.checkpointOptions(big)).options).toEqual({ ...base.requested, localPages: true });
    expect(logs.some((l) => l.includes("checkpoint of db-1: local pages on (memory above 0.5 GiB)"))).toBe(true);
    expect((await e.checkpointOptions(base)).options).toEqual(base.requested);
    expect((await engine().checkpointOptions({ ...big, memoryBytes: 7 * 1024 ** 3 })).options).toEqual(base.requested);
  });
});

describe("restore hook", () => {
  test("tcp-established on when the checkpoint's annotations mark the container stateful", async () => {
    const logs: string[] = [];
    const e = engine({}, logs);
    expect((await e.restoreAdmission(restoreInput({ "policy.cryo.dev/stateful": "true" }))).options).toEqual({ tcpEstablished: true, tcpClose: false });
    expect(logs.some((l) => l.includes("restore of db-2: tcp-established on (annotation policy.cryo.dev/stateful=true)"))).toBe(true);
    expect((await e.restoreAdmission(restoreInput({}))).options).toEqual({ tcpEstablished: false, tcpClose: false });
  });

  test("the checkpoint's image counts too", async () => {
    const e = engine({ tcp_established_images: "docker.io/library/postgres" });
    const d = await e.restoreAdmission(restoreInput({}, { name: "docker.io/library/postgres:16", digest: "", labels: {} }));
    expect(d.options.tcpEstablished).toBe(true);
  });
});
