// The restore-clone example through the policy engine: a restore under the checkpointed container's own name
// keeps what was requested; one under another name (checkpoint.containerId differs) gets tcp-close with a log
// line, keeps the request with clone_tcp_close = "false", and is refused with clones = "deny".
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Code } from "../../../src/errors.ts";
import { policyConfigSchema } from "../../../src/plugins/config.ts";
import type { RestoreInput } from "../../../src/plugins/hook-schemas.ts";
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
  const entry = { name: "restore-clone", path: join(dir, "restore-clone.wasm"), hooks: ["restore"], config };
  const e = createPolicyEngine(policyConfigSchema.parse({ plugins: [entry] }), { log: (level, msg) => logs.push(`${level}: ${msg}`) });
  engines.push(e);
  return e;
}

function restoreOf(containerId: string, id: string): RestoreInput {
  return {
    id,
    namespace: "default",
    checkpoint: { containerId, originHost: "h", kernel: "6.18", criuVersion: "40201", image: null, createdAt: "2026-12-02T00:00:00Z", annotations: {} },
    requested: { tcpEstablished: true, tcpClose: false },
  };
}

describe("restore-clone", () => {
  test("a restore under the container's own name keeps what was requested, without a log line", async () => {
    const logs: string[] = [];
    const d = await engine({}, logs).restoreAdmission(restoreOf("web-1", "web-1"));
    expect(d.options).toEqual({ tcpEstablished: true, tcpClose: false });
    expect(logs).toEqual([]);
  });

  test("a restore under another name closes the TCP connections and says so", async () => {
    const logs: string[] = [];
    const d = await engine({}, logs).restoreAdmission(restoreOf("web-1", "web-2"));
    expect(d.options).toEqual({ tcpEstablished: false, tcpClose: true });
    expect(logs).toEqual(["info: plugin restore-clone (restore of container web-2 in namespace default): restore of web-1 as web-2: a clone, its TCP connections closed"]);
  });

  test('clone_tcp_close = "false" keeps the request for a clone', async () => {
    const d = await engine({ clone_tcp_close: "false" }).restoreAdmission(restoreOf("web-1", "web-2"));
    expect(d.options).toEqual({ tcpEstablished: true, tcpClose: false });
  });

  test('clones = "deny" refuses a clone, naming both ids, and lets a move through', async () => {
    const e = engine({ clones: "deny" });
    const err = await rejection(e.restoreAdmission(restoreOf("web-1", "web-2")));
    expect(err.code).toBe(Code.PERMISSION_DENIED);
    expect(err.message).toBe("restore of container web-2: denied by plugin restore-clone: checkpoint of web-1 may not be restored under another name (web-2): clones are refused");
    expect((await e.restoreAdmission(restoreOf("web-1", "web-1"))).options).toEqual({ tcpEstablished: true, tcpClose: false });
  });
});
