// Benchmark (not a test): the cost of policy plugins per hook call once loaded.
//   node_modules/.bin/bun bench/plugins.ts [iterations]
// Measures, through the same engine the shim uses (validation both ways, runner process IPC):
//   1. admission with one plugin (deny-privileged) on an ordinary container spec;
//   2. admission through a chain of three plugins (deny-privileged, registry-allowlist, set-env);
//   3. the checkpoint-options hook (checkpoint-defaults);
// and the first call (runner start + plugin load), also after warm() (what the shim can do at start). Builds the plugins first when needed.
import { join } from "node:path";
import { policyConfigSchema } from "../src/plugins/config.ts";
import type { AdmitInput, CheckpointInput } from "../src/plugins/hook-schemas.ts";
import { createPolicyEngine, type PolicyEngine } from "../src/plugins/policy-engine.ts";

const root = join(import.meta.dir, "..");
const build = Bun.spawnSync(["bash", join(root, "plugins/build.sh")], { stdout: "pipe", stderr: "inherit" });
if (build.exitCode !== 0) throw new Error("plugins/build.sh failed");
const dir = join(root, "build/plugins");
const iterations = Number(process.argv[2] ?? 2000);
const input: AdmitInput = await Bun.file(join(root, "plugins/testdata/inputs/admit-ordinary.json")).json();

function engineOf(plugins: object[]): PolicyEngine {
  return createPolicyEngine(policyConfigSchema.parse({ plugins: plugins.map((p) => ({ ...p, path: join(dir, (p as { path: string }).path) })) }));
}

function stats(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return `mean ${(mean * 1000).toFixed(0)} µs, p50 ${(q(0.5) * 1000).toFixed(0)} µs, p99 ${(q(0.99) * 1000).toFixed(0)} µs`;
}

async function measure(name: string, engine: PolicyEngine, call: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  await call();
  const first = performance.now() - t0;
  for (let i = 0; i < 200; i++) await call(); // warm up the JIT on both sides
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await call();
    samples.push(performance.now() - t);
  }
  console.log(`${name.padEnd(44)} first call ${first.toFixed(1)} ms; then ${stats(samples)} (${iterations} calls)`);
  await engine.close();
}

const deny = { name: "deny-privileged", path: "deny-privileged.wasm", hooks: ["admit"] };
const allow = { name: "registry-allowlist", path: "registry-allowlist.wasm", hooks: ["admit"], config: { registries: "docker.io" } };
const setEnv = { name: "set-env", path: "set-env.wasm", hooks: ["admit"], config: { name: "POLICY", value: "checked" } };

console.log(`cryo plugin benchmark: bun ${Bun.version}, admission input ${JSON.stringify(input).length} bytes of JSON`);
const one = engineOf([deny]);
await measure("admit, 1 plugin (deny-privileged)", one, () => one.admit(input));
const three = engineOf([deny, allow, setEnv]);
await measure("admit, chain of 3 plugins", three, () => three.admit(input));
const none = engineOf([]);
await measure("admit, no plugins (engine overhead only)", none, () => none.admit(input));
const warmed = engineOf([deny, allow, setEnv]);
const tw = performance.now();
await warmed.warm();
const warmMs = performance.now() - tw;
const tf = performance.now();
await warmed.admit(input);
console.log(`${"admit, chain of 3, after warm()".padEnd(44)} warm() ${warmMs.toFixed(1)} ms, then first call ${(performance.now() - tf).toFixed(1)} ms`);
await warmed.close();
const cp = engineOf([{ name: "checkpoint-defaults", path: "checkpoint-defaults.wasm", hooks: ["checkpoint"] }]);
const cpInput: CheckpointInput = { id: "c1", namespace: "default", annotations: { "cryo.checkpoint/tcp-established": "true" }, image: null, processCount: 3, memoryBytes: 1 << 26, tcpConnections: 2, requested: {} };
await measure("checkpoint options, 1 plugin", cp, () => cp.checkpointOptions(cpInput));
