import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../../src/errors.ts";
import { findConfigFile, loadPolicyConfig, parsePolicyConfig } from "../../../src/plugins/config-loader.ts";

const dir = mkdtempSync(join(tmpdir(), "cryo-plugins-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function errorOf(fn: () => unknown): CryoError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CryoError) return err;
    throw err;
  }
  throw new Error("expected an error");
}

const toml = `
[[plugins]]
name = "deny-privileged"
path = "deny-privileged.wasm"
hooks = ["admit"]
match = { namespaces = ["default", "prod-*"] }
config = { allow_host_namespaces = "network" }
limits = { timeout_ms = 500 }

[[plugins]]
name = "checkpoint-defaults"
path = "/opt/cryo/checkpoint-defaults.wasm"
hooks = ["checkpoint", "restore"]
failure = "open"
`;

describe("policy config", () => {
  test("TOML: order kept, defaults filled, relative paths anchored at the config folder", () => {
    const cfg = parsePolicyConfig(toml, "/etc/cryo/config.toml");
    expect(cfg.plugins.map((p) => p.name)).toEqual(["deny-privileged", "checkpoint-defaults"]);
    const [a, b] = cfg.plugins;
    expect(a?.path).toBe("/etc/cryo/deny-privileged.wasm");
    expect(a?.failure).toBe("closed");
    expect(a?.limits).toEqual({ timeout_ms: 500, memory_mib: 32 });
    expect(a?.grants).toEqual({ allowed_hosts: [], allowed_paths: {} });
    expect(a?.config).toEqual({ allow_host_namespaces: "network" });
    expect(b?.path).toBe("/opt/cryo/checkpoint-defaults.wasm");
    expect(b?.failure).toBe("open");
    expect(b?.match).toEqual({});
  });

  test("JSON with the same keys", () => {
    const cfg = parsePolicyConfig(JSON.stringify({ plugins: [{ name: "a", path: "a.wasm", hooks: ["restore"] }] }), "/x/config.json");
    expect(cfg.plugins[0]?.path).toBe("/x/a.wasm");
  });

  test("an error names the file and the field", () => {
    const bad = toml.replace("timeout_ms = 500", 'timeout_ms = "fast"');
    const e = errorOf(() => parsePolicyConfig(bad, "/etc/cryo/config.toml"));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toStartWith("config /etc/cryo/config.toml: invalid argument: plugins[0].limits.timeout_ms:");
  });

  test("unknown hooks, unknown keys, duplicate names and TOML syntax are refused", () => {
    expect(errorOf(() => parsePolicyConfig(toml.replace('hooks = ["admit"]', 'hooks = ["create"]'), "c.toml")).message).toContain("plugins[0].hooks[0]");
    expect(errorOf(() => parsePolicyConfig(toml.replace("failure = ", "fail = "), "c.toml")).message).toContain("plugins[1]");
    expect(errorOf(() => parsePolicyConfig(toml.replace('"checkpoint-defaults"', '"deny-privileged"'), "c.toml")).message).toContain('plugins[1].name: duplicate plugin name "deny-privileged"');
    expect(errorOf(() => parsePolicyConfig("[[plugins]\nname=", "c.toml")).message).toStartWith("config c.toml: invalid argument: cannot parse:");
  });

  test("search order: explicit path, then CRYO_CONFIG, then the defaults; nothing = no plugins", () => {
    const explicit = join(dir, "explicit.toml");
    const fromEnv = join(dir, "env.json");
    const def1 = join(dir, "config.toml");
    const def2 = join(dir, "config.json");
    writeFileSync(explicit, "");
    writeFileSync(fromEnv, "{}");
    writeFileSync(def2, "{}");
    const defaults = [def1, def2];
    expect(findConfigFile({ explicitPath: explicit, env: { CRYO_CONFIG: fromEnv }, defaults })).toBe(explicit);
    expect(findConfigFile({ env: { CRYO_CONFIG: fromEnv }, defaults })).toBe(fromEnv);
    expect(findConfigFile({ env: {}, defaults })).toBe(def2);
    writeFileSync(def1, "");
    expect(findConfigFile({ env: {}, defaults })).toBe(def1);
    expect(findConfigFile({ env: {}, defaults: [join(dir, "none.toml")] })).toBeNull();
    expect(loadPolicyConfig({ env: {}, defaults: [join(dir, "none.toml")] })).toEqual({ source: null, config: { plugins: [] } });
    expect(loadPolicyConfig({ env: {}, defaults }).source).toBe(def1);
  });

  test("an explicit or CRYO_CONFIG path that does not exist is an error, not a silent fallback", () => {
    const missing = join(dir, "missing.toml");
    expect(errorOf(() => findConfigFile({ explicitPath: missing, env: {} })).message).toBe(`config ${missing}: invalid argument: file does not exist (runtime options config path)`);
    expect(errorOf(() => findConfigFile({ env: { CRYO_CONFIG: missing } })).message).toBe(`config ${missing}: invalid argument: file does not exist (CRYO_CONFIG)`);
  });
});
