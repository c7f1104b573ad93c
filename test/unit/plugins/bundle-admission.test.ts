import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "../../../src/errors.ts";
import { admitBundle, createPolicyEngines, type PolicyEngines } from "../../../src/plugins/bundle-admission.ts";
import { builtPlugins, rejection, sampleInput } from "./built-plugins.ts";

const tmp = mkdtempSync(join(tmpdir(), "cryo-bundle-admission-"));
let engines: PolicyEngines;
let dir = "";

beforeAll(() => {
  dir = builtPlugins();
  engines = createPolicyEngines({ env: {}, defaults: [join(tmp, "none.toml")] });
}, 300_000);
afterAll(async () => {
  await engines.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function bundleWith(name: string, sample: string): Promise<string> {
  const bundle = join(tmp, name);
  mkdirSync(bundle);
  writeFileSync(join(bundle, "config.json"), JSON.stringify((await sampleInput(sample)).spec));
  return bundle;
}

function configFile(name: string, toml: string): string {
  const path = join(tmp, name);
  writeFileSync(path, toml);
  return path;
}

describe("admitBundle", () => {
  test("no config: no plugins, config.json untouched", async () => {
    const bundle = await bundleWith("none", "admit-privileged");
    const before = readFileSync(join(bundle, "config.json"), "utf8");
    const d = await admitBundle(engines.forConfigPath(""), { id: "c1", namespace: "default", bundle, image: null });
    expect(d.consulted).toEqual([]);
    expect(readFileSync(join(bundle, "config.json"), "utf8")).toBe(before);
  });

  test("a deny throws PERMISSION_DENIED and leaves config.json as it was", async () => {
    const cfg = configFile("deny.toml", `[[plugins]]\nname = "deny-privileged"\npath = "${join(dir, "deny-privileged.wasm")}"\nhooks = ["admit"]\n`);
    const bundle = await bundleWith("deny", "admit-privileged");
    const before = readFileSync(join(bundle, "config.json"), "utf8");
    const err = await rejection(admitBundle(engines.forConfigPath(cfg), { id: "c1", namespace: "default", bundle, image: null }));
    expect(err.code).toBe(Code.PERMISSION_DENIED);
    expect(err.message).toStartWith("container c1: denied by plugin deny-privileged: privileged containers are not allowed");
    expect(readFileSync(join(bundle, "config.json"), "utf8")).toBe(before);
  });

  test("changes are written to config.json for runc; unknown spec fields survive", async () => {
    const cfg = configFile("env.toml", `[[plugins]]\nname = "set-env"\npath = "${join(dir, "set-env.wasm")}"\nhooks = ["admit"]\nconfig = { name = "POLICY", value = "checked" }\n`);
    const bundle = await bundleWith("env", "admit-ordinary");
    const spec = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
    spec.vendorExtension = { keep: [1, 2, 3] };
    writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
    const engine = engines.forConfigPath(cfg);
    expect(engines.forConfigPath(cfg)).toBe(engine); // loaded once per config path
    await admitBundle(engine, { id: "c2", namespace: "default", bundle, image: null });
    const written = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
    expect(written.process.env).toEqual([...spec.process.env, "POLICY=checked"]);
    expect(written.annotations).toEqual({ "cryo.test/POLICY": "checked" });
    expect(written.vendorExtension).toEqual({ keep: [1, 2, 3] });
    expect(readdirSync(bundle)).toEqual(["config.json"]);
  });

  test("a rewritten config.json keeps the spec's 64-bit integers exact (runc refuses a rounded RLIM_INFINITY: cannot unmarshal number 18446744073709552000)", async () => {
    const cfg = configFile("env64.toml", `[[plugins]]\nname = "set-env"\npath = "${join(dir, "set-env.wasm")}"\nhooks = ["admit"]\nconfig = { name = "POLICY", value = "checked" }\n`);
    const bundle = await bundleWith("env64", "admit-ordinary");
    const text = readFileSync(join(bundle, "config.json"), "utf8");
    const rlimits = '"rlimits":[{"type":"RLIMIT_CORE","hard":18446744073709551615,"soft":18446744073709551615}]';
    writeFileSync(join(bundle, "config.json"), text.replace('"process":{', `"process":{${rlimits},`));
    await admitBundle(engines.forConfigPath(cfg), { id: "c3", namespace: "default", bundle, image: null });
    const written = readFileSync(join(bundle, "config.json"), "utf8");
    expect(written).toContain("POLICY=checked");
    expect(written).toContain(rlimits);
  });

  test("a bad config is INVALID_ARGUMENT naming the file", () => {
    const cfg = configFile("bad.toml", `[[plugins]]\nname = "Bad Name"\npath = "x.wasm"\nhooks = ["admit"]\n`);
    expect(() => engines.forConfigPath(cfg)).toThrow(`config ${cfg}: invalid argument: plugins[0].name:`);
  });
});
