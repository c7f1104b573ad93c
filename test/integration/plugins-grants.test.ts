/**
 * The network grant (grants.allowed_hosts), both directions, against an HTTP server this file starts
 * on 127.0.0.1 (port 0; nothing else is contacted). The test plugin http-fetch (plugins/testdata)
 * makes one Extism HTTP request at admit to the URL in its config and allows with the response body in
 * its reason and an annotation.
 * - Through the policy engine (runner from source): granted, the server sees the request and the body
 *   comes back; not granted (the default), a host not in the list, or a redirect to one: the server
 *   sees nothing (or only the allowed hop) and a fail-closed plugin is a PERMISSION_DENIED naming plugin
 *   and hook; fail-open allows with a warning.
 * - Through `ctr run` and the compiled shim (its runner is the compiled binary, where Extism's worker
 *   cannot start): granted, the container runs and the server saw it; not granted, ctr fails with the
 *   plugin error and no container is left.
 * - allowed_hosts entries with a scheme, port or path are refused when the config is read.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { Code, CryoError } from "../../src/errors.ts";
import { pluginConfigSchema, type PluginConfig } from "../../src/plugins/config.ts";
import { parsePolicyConfig } from "../../src/plugins/config-loader.ts";
import type { AdmitInput } from "../../src/plugins/hook-schemas.ts";
import { createPolicyEngine } from "../../src/plugins/policy-engine.ts";
import { defaultBinDir } from "../../src/containerd/index.ts";
import { buildPlugins, ensureTestImage, startPrivateContainerd, testImage, uniqueId, type PrivateContainerd } from "../harness/index.ts";

const root = join(import.meta.dir, "../..");
const RUNTIME = "io.containerd.cryo.v2";
let wasm: string;
let server: Server<unknown>;
/** Requests the server received: path and the plugin's x-cryo-container header. */
let seen: { path: string; container: string | null }[] = [];
let base: string;

beforeAll(() => {
  wasm = join(buildPlugins(), "http-fetch.wasm");
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      seen.push({ path: url.pathname, container: req.headers.get("x-cryo-container") });
      if (url.pathname === "/redirect") return new Response("moved", { status: 302, headers: { location: `http://localhost:${server.port}/elsewhere` } });
      return new Response(`body-of-${url.pathname.slice(1)}`);
    },
  });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(() => {
  server?.stop(true);
});

const input = (id: string): AdmitInput =>
  JSON.parse(readFileSync(join(root, "plugins/testdata/inputs/admit-ordinary.json"), "utf8").replace(/"id": "[^"]*"/, `"id": "${id}"`)) as AdmitInput;

function plugin(url: string, grants: { allowed_hosts?: string[] } | undefined, failure: "closed" | "open" = "closed"): PluginConfig {
  return pluginConfigSchema.parse({ name: "http-fetch", path: wasm, hooks: ["admit"], failure, config: { url }, ...(grants ? { grants } : {}) });
}

/** Runs admit through an engine with one http-fetch plugin; returns the decision or the error, and the warnings. */
async function admit(cfg: PluginConfig, id: string) {
  const warnings: string[] = [];
  const engine = createPolicyEngine({ plugins: [cfg] }, { log: (level, message) => void (level === "warn" && warnings.push(message)) });
  try {
    return { decision: await engine.admit(input(id)), error: null, warnings };
  } catch (err) {
    return { decision: null, error: CryoError.from(err), warnings };
  } finally {
    await engine.close();
  }
}

describe("through the policy engine", () => {
  test("granted 127.0.0.1: the request reaches the server and the body comes back to the plugin", async () => {
    seen = [];
    const { decision, error } = await admit(plugin(`${base}/granted`, { allowed_hosts: ["127.0.0.1"] }), "c-granted");
    expect(error).toBeNull();
    expect(seen).toEqual([{ path: "/granted", container: "c-granted" }]);
    expect(decision?.changes.annotations).toEqual({ "cryo.test/http-status": "200", "cryo.test/http-body": "body-of-granted" });
    expect(decision?.spec.annotations?.["cryo.test/http-body"]).toBe("body-of-granted");
  }, 30_000);

  test("no grant (default): the host refuses the request, the server sees nothing, fail-closed denies naming plugin and hook", async () => {
    seen = [];
    const { decision, error } = await admit(plugin(`${base}/ungranted`, undefined), "c-ungranted");
    expect(decision).toBeNull();
    expect(error?.code).toBe(Code.PERMISSION_DENIED);
    expect(error?.message).toBe(
      `container c-ungranted: plugin http-fetch: hook admit: network access refused (grants.allowed_hosts: none): HTTP request to "${base}/ungranted" is not allowed (no allowedHosts match "127.0.0.1")`,
    );
    expect(seen).toEqual([]);
  }, 30_000);

  test("a host that is not in the list is refused (hosts match by name: localhost is not 127.0.0.1)", async () => {
    seen = [];
    const url = `http://localhost:${server.port}/by-name`;
    const { error } = await admit(plugin(url, { allowed_hosts: ["127.0.0.1"] }), "c-other");
    expect(error?.code).toBe(Code.PERMISSION_DENIED);
    expect(error?.message).toContain(`plugin http-fetch: hook admit: network access refused (grants.allowed_hosts: "127.0.0.1"): HTTP request to "${url}" is not allowed`);
    expect(seen).toEqual([]);
  }, 30_000);

  test("a redirect from an allowed host is not followed: the plugin sees the 302, the other host sees nothing", async () => {
    seen = [];
    const { decision, error } = await admit(plugin(`${base}/redirect`, { allowed_hosts: ["127.0.0.1"] }), "c-redirect");
    expect(error).toBeNull();
    expect(seen).toEqual([{ path: "/redirect", container: "c-redirect" }]);
    expect(decision?.changes.annotations).toEqual({ "cryo.test/http-status": "302", "cryo.test/http-body": "moved" });
  }, 30_000);

  test("granted, but nothing listens there: UNAVAILABLE saying the granted request got no answer, not a trap of the plugin's", async () => {
    // A port just closed: bound, then let go.
    const gone = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const url = `http://127.0.0.1:${gone.port}/closed`;
    gone.stop(true);
    const { decision, error } = await admit(plugin(url, { allowed_hosts: ["127.0.0.1"] }), "c-closed");
    expect(decision).toBeNull();
    expect(error?.code).toBe(Code.UNAVAILABLE);
    // Before: FAILED_PRECONDITION, "trapped: ECONNREFUSED ...".
    expect(error?.message).toStartWith("container c-closed: plugin http-fetch: hook admit: an HTTP request it is granted got no answer: ");
    expect(error?.message).not.toContain("trapped");
  }, 30_000);

  test("no grant, failure = open: allowed with a warning naming plugin and hook, and the server sees nothing", async () => {
    seen = [];
    const { decision, error, warnings } = await admit(plugin(`${base}/open`, undefined, "open"), "c-open");
    expect(error).toBeNull();
    expect(decision?.changes).toEqual({});
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toStartWith("container c-open in namespace default: plugin http-fetch: hook admit: network access refused (grants.allowed_hosts: none)");
    expect(warnings[0]).toEndWith(`(failure = "open": allowing)`);
    expect(seen).toEqual([]);
  }, 30_000);
});

test("allowed_hosts takes host names only: a scheme, port or path is refused when the config is read", () => {
  const cfg = (host: string) => `[[plugins]]\nname = "p"\npath = "/x.wasm"\nhooks = ["admit"]\ngrants = { allowed_hosts = ["${host}"] }\n`;
  for (const bad of ["http://127.0.0.1", "127.0.0.1:8080", "example.com/api", ""]) {
    let caught: unknown;
    try {
      parsePolicyConfig(cfg(bad), "/etc/cryo/config.toml");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CryoError);
    expect((caught as CryoError).code).toBe(Code.INVALID_ARGUMENT);
    expect((caught as CryoError).message).toContain("plugins[0].grants.allowed_hosts[0]: must be a host name or IP address");
  }
  for (const good of ["127.0.0.1", "*.example.com", "[::1]", "registry.local"])
    expect(parsePolicyConfig(cfg(good), "/etc/cryo/config.toml").plugins[0]?.grants.allowed_hosts).toEqual([good]);
});

describe("through ctr run and the compiled shim", () => {
  let pc: PrivateContainerd;
  let ns: string;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cryo-grants-it-"));
    ns = uniqueId("grants");
    pc = await startPrivateContainerd({ namespace: ns });
    await ensureTestImage(pc);
  }, 300_000);

  afterAll(async () => {
    await pc?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  function configFile(name: string, path: string, grants: string): string {
    const file = join(dir, `${name}.toml`);
    writeFileSync(file, `[[plugins]]\nname = "http-fetch"\npath = "${wasm}"\nhooks = ["admit"]\nconfig = { url = "${base}/${path}" }\nlimits = { timeout_ms = 10000 }\n${grants}`);
    return file;
  }

  test("granted: the container runs and the server saw the shim's plugin ask for it", async () => {
    seen = [];
    const id = uniqueId("granted");
    const config = configFile("granted", "ctr-granted", `grants = { allowed_hosts = ["127.0.0.1"] }\n`);
    const r = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", config, testImage, id, "sh", "-c", "echo ran"], { timeoutMs: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("ran\n");
    expect(r.exitCode).toBe(0);
    expect(seen).toEqual([{ path: "/ctr-granted", container: id }]);
  }, 90_000);

  test("not granted: ctr fails with the plugin error, the server saw nothing, no container is left", async () => {
    seen = [];
    const id = uniqueId("refused");
    const config = configFile("refused", "ctr-refused", "");
    const r = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", config, testImage, id, "sh", "-c", "echo should-not-run"], { timeoutMs: 60_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).not.toContain("should-not-run");
    expect(r.stderr).toContain(`plugin http-fetch: hook admit: network access refused (grants.allowed_hosts: none): HTTP request to "${base}/ctr-refused" is not allowed`);
    expect(seen).toEqual([]);
    expect(existsSync(`/run/containerd/runc/${ns}/${id}`)).toBe(false);
    const tasks = await pc.ctrOk(["task", "ls"]);
    expect(tasks.split("\n").some((l) => l.split(/\s+/)[0] === id)).toBe(false);
    await pc.ctr(["containers", "rm", id]);
  }, 90_000);
});

describe("through cryo plugin test", () => {
  // Asynchronous: the test's HTTP server runs on this process's event loop.
  const cryo = async (args: string[]) => {
    const p = Bun.spawn([join(defaultBinDir() ?? join(root, "build/bin"), "cryo"), "plugin", "test", wasm, "--hook", "admit", "--input", join(root, "plugins/testdata/inputs/admit-ordinary.json"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out, err };
  };

  test("--allow-host grants the host: the request reaches the server and the plugin's decision carries the body", async () => {
    seen = [];
    const r = await cryo(["--config", `url=${base}/cli-granted`, "--allow-host", "127.0.0.1"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("body-of-cli-granted");
    expect(seen.map((s) => s.path)).toEqual(["/cli-granted"]);
  });

  test("without --allow-host the host refuses the request and the server sees nothing", async () => {
    seen = [];
    const r = await cryo(["--config", `url=${base}/cli-refused`]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("network access refused");
    expect(seen).toEqual([]);
  });

  test("--allow-host with a port is a bad argument, named", async () => {
    const r = await cryo(["--config", `url=${base}/x`, "--allow-host", "127.0.0.1:8080"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("--allow-host 127.0.0.1:8080: invalid argument: must be a host name or IP address");
  });
});
