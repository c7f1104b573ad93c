import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_CHECKPOINT_PLAN, resolveCheckpointPlan } from "../../../src/checkpoint/index.ts";
import {
  checkpointDefaultsSchema,
  checkpointOverrides,
  configJsonSchema,
  createConfigCache,
  emptyCryoConfig,
  findConfigFile,
  loadConfig,
  parseConfig,
  restoreBase,
  restoreSettings,
} from "../../../src/config/index.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { loadPolicyConfig } from "../../../src/plugins/index.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cryo-config-test-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function errorOf(fn: () => unknown): CryoError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CryoError);
    return err as CryoError;
  }
  throw new Error("expected an error");
}

const full = `
[[plugins]]
name = "deny-privileged"
path = "plugins/deny-privileged.wasm"
hooks = ["admit"]

[checkpoint]
tcp_established = true
compression = "zstd"
compression_level = 3
manage_cgroups_mode = "full"
empty_ns = ["network"]
external = ["mnt[/data]:data"]
page_server = { address = "10.0.0.2", port = 27000 }
log_level = 2

[restore]
tcp_close = true
lsm_profile = "apparmor:cryo-restored"
veth_pairs = [{ inside = "eth0", outside = "veth-c1" }]
manage_cgroups_mode = "ignore"
`;

describe("sections", () => {
  test("a full TOML file: plugins (paths resolved against the file's folder), checkpoint defaults, restore settings", () => {
    const c = parseConfig(full, "/etc/cryo/config.toml");
    expect(c.plugins).toHaveLength(1);
    expect(c.plugins[0]!.path).toBe("/etc/cryo/plugins/deny-privileged.wasm");
    expect(c.plugins[0]!.limits.timeout_ms).toBe(1000);
    expect(c.checkpoint).toEqual({
      tcp_established: true,
      compression: "zstd",
      compression_level: 3,
      manage_cgroups_mode: "full",
      empty_ns: ["network"],
      external: ["mnt[/data]:data"],
      page_server: { address: "10.0.0.2", port: 27000 },
      log_level: 2,
    });
    expect(c.restore.veth_pairs).toEqual([{ inside: "eth0", outside: "veth-c1" }]);
  });

  test("a byte order mark is skipped in JSON as in TOML (JSON.parse refused it, naming an invisible character)", () => {
    expect(parseConfig('\uFEFF{"checkpoint":{"compression":"zstd"}}', "/c.json").checkpoint).toEqual({ compression: "zstd" });
    expect(parseConfig('\uFEFF[checkpoint]\ncompression = "zstd"\n', "/c.toml").checkpoint).toEqual({ compression: "zstd" });
  });

  test("JSON has the same keys; an empty file is the empty configuration", () => {
    const c = parseConfig(JSON.stringify({ checkpoint: { file_locks: true }, restore: { tcp_close: false } }), "/x/c.json");
    expect(c).toEqual({ plugins: [], checkpoint: { file_locks: true }, restore: { tcp_close: false }, shim: {} });
    expect(parseConfig("", "/x/c.toml")).toEqual(emptyCryoConfig);
    expect(parseConfig("{}", "/x/c.json")).toEqual(emptyCryoConfig);
  });

  test("checkpoint defaults become the lowest layer of plan resolution: annotations and the request override them", () => {
    const c = parseConfig(full, "/c.toml");
    const defaults = checkpointOverrides(c.checkpoint);
    expect(defaults).toEqual({
      tcpEstablished: true,
      compression: "zstd",
      compressionLevel: 3,
      cgroupMode: "full",
      emptyNamespaces: ["net"],
      external: ["mnt[/data]:data"],
      pageServer: { address: "10.0.0.2", port: 27000 },
      logLevel: 2,
    });
    const plan = resolveCheckpointPlan({ defaults });
    expect(plan.tcpEstablished).toBe(true);
    expect(plan.compression).toBe("zstd");
    expect(plan.leaveRunning).toBe(BUILTIN_CHECKPOINT_PLAN.leaveRunning);
    const annotated = resolveCheckpointPlan({ defaults, annotations: { "cryo.checkpoint/tcp-established": "false", "cryo.checkpoint/compression": "none" } });
    expect(annotated.tcpEstablished).toBe(false);
    expect(annotated.compression).toBe("none");
    expect(annotated.cgroupMode).toBe("full");
    expect(checkpointOverrides({})).toEqual({});
  });

  test("[checkpoint] timeout: seconds as a number, or a string with s, m or h", () => {
    expect(checkpointOverrides(parseConfig("[checkpoint]\ntimeout = 600\n", "/c.toml").checkpoint)).toEqual({ timeoutSeconds: 600 });
    expect(checkpointOverrides(parseConfig('[checkpoint]\ntimeout = "10m"\n', "/c.toml").checkpoint)).toEqual({ timeoutSeconds: 600 });
    const bad = (() => {
      try {
        parseConfig('[checkpoint]\ntimeout = "ten minutes"\n', "/c.toml");
      } catch (e) {
        return e as CryoError;
      }
    })();
    expect(bad?.code).toBe(Code.INVALID_ARGUMENT);
    expect(bad?.message).toContain("timeout");
    expect(() => checkpointOverrides({ timeout: "200h" })).toThrow("want seconds, or a number with s, m or h (at most a week)");
    // Past a week: refused with the file and the key, as any other bad value.
    expect(() => parseConfig('[checkpoint]\ntimeout = "200h"\n', "/c.toml")).toThrow(
      "config /c.toml: invalid argument: checkpoint.timeout: want seconds, or a number with s, m or h (at most a week)",
    );
    expect(() => parseConfig("[checkpoint]\ntimeout = 604801\n", "/c.toml")).toThrow("config /c.toml: invalid argument: checkpoint.timeout");
    // Neither a whole number nor a string: the error says what is wanted (it was zod's "Invalid input").
    for (const v of ["1.5", "true"]) {
      expect(() => parseConfig(`[checkpoint]\ntimeout = ${v}\n`, "/c.toml")).toThrow('config /c.toml: invalid argument: checkpoint.timeout: want whole seconds, or a string with s, m or h ("10m")');
    }
  });

  test("[checkpoint] ghost_limit: bytes as a number, or a string with K, M or G as the annotation takes it", () => {
    // The dump's ghost-file error suggests "64M" for the annotation and [checkpoint] ghost_limit alike; the file
    // refused it ("expected number, received string").
    expect(checkpointOverrides(parseConfig("[checkpoint]\nghost_limit = 67108864\n", "/c.toml").checkpoint)).toEqual({ ghostLimit: 64 * 1024 ** 2 });
    expect(checkpointOverrides(parseConfig('[checkpoint]\nghost_limit = "64M"\n', "/c.toml").checkpoint)).toEqual({ ghostLimit: 64 * 1024 ** 2 });
    expect(checkpointOverrides(parseConfig('{ "checkpoint": { "ghost_limit": "512k" } }', "/c.json").checkpoint)).toEqual({ ghostLimit: 512 * 1024 });
    for (const v of ['"5G"', '"64 megabytes"', '"1.5M"']) {
      expect(() => parseConfig(`[checkpoint]\nghost_limit = ${v}\n`, "/c.toml")).toThrow("config /c.toml: invalid argument: checkpoint.ghost_limit: want bytes, or a number with K, M or G");
    }
    for (const v of ["1.5", "true", "4294967296"]) expect(() => parseConfig(`[checkpoint]\nghost_limit = ${v}\n`, "/c.toml")).toThrow("config /c.toml: invalid argument: checkpoint.ghost_limit");
  });

  test("restore settings go over the checkpoint's recorded options; unset keys keep them", () => {
    const recorded = resolveCheckpointPlan({ defaults: { tcpEstablished: true, lsmProfile: "apparmor:old", logLevel: 3 } });
    const c = parseConfig(full, "/c.toml");
    const s = restoreSettings(recorded, c.restore);
    expect(s.plan.tcpClose).toBe(true);
    expect(s.plan.lsmProfile).toBe("apparmor:cryo-restored");
    expect(s.plan.cgroupMode).toBe("ignore");
    expect(s.plan.tcpEstablished).toBe(true);
    expect(s.plan.logLevel).toBe(3);
    expect(s.vethPairs).toEqual([{ inside: "eth0", outside: "veth-c1" }]);
    const { lsmProfile: _, ...withoutLsm } = recorded;
    expect(restoreSettings(recorded, {})).toEqual({ plan: { ...withoutLsm, external: [], cgroupMode: "soft" }, vethPairs: [] });
  });

  test("what reaches the host is never the checkpoint's: external entries, LSM profile and context, cgroup mode, mount engine", () => {
    // A crafted metadata file: the plan schema still reads mntnsCompatMode (older checkpoints record it).
    const recorded = { ...resolveCheckpointPlan({ defaults: { external: ["mnt[k]:/"], lsmProfile: "apparmor:unconfined", lsmMountContext: "system_u:object_r:x", cgroupMode: "full" } }), mntnsCompatMode: true };
    const s = restoreSettings(recorded, {});
    expect(s.plan.external).toEqual([]);
    expect(s.plan.lsmProfile).toBeUndefined();
    expect(s.plan.lsmMountContext).toBeUndefined();
    expect(s.plan.cgroupMode).toBe("soft");
    expect(s.plan.mntnsCompatMode).toBe(false);
    expect(restoreBase(recorded).mntnsCompatMode).toBe(false);
    // This host chooses CRIU's older mount engine in [restore].
    expect(restoreSettings(resolveCheckpointPlan({}), parseConfig("[restore]\nmntns_compat_mode = true\n", "/c.toml").restore).plan.mntnsCompatMode).toBe(true);
    // ... and no longer in [checkpoint], where it has no meaning.
    expect(() => parseConfig("[checkpoint]\nmntns_compat_mode = true\n", "/c.toml")).toThrow(/mntns_compat_mode/);
    // The restoring host's own settings still apply.
    expect(restoreSettings(recorded, { manage_cgroups_mode: "ignore", lsm_profile: "apparmor:host" }).plan).toMatchObject({ cgroupMode: "ignore", lsmProfile: "apparmor:host" });
    // A checkpoint dumped in ignore mode (no cgroup directory recorded) restores in ignore mode, unless this host says.
    const ignored = resolveCheckpointPlan({ defaults: { cgroupMode: "ignore" } });
    expect(restoreBase(ignored).cgroupMode).toBe("ignore");
    expect(restoreSettings(ignored, {}).plan.cgroupMode).toBe("ignore");
    expect(restoreSettings(ignored, { manage_cgroups_mode: "soft" }).plan.cgroupMode).toBe("soft");
  });
});

describe("errors: one INVALID_ARGUMENT naming the file and the field", () => {
  test("a bad value names its field path", () => {
    const e = errorOf(() => parseConfig('[checkpoint]\ncompression = "lz4"\n', "/etc/cryo/config.toml"));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toStartWith("config /etc/cryo/config.toml: invalid argument: checkpoint.compression:");
    expect(errorOf(() => parseConfig("[checkpoint]\nlog_level = 7\n", "c.toml")).message).toStartWith("config c.toml: invalid argument: checkpoint.log_level:");
    expect(errorOf(() => parseConfig('[restore]\nveth_pairs = [{ inside = "eth0" }]\n', "c.toml")).message).toStartWith("config c.toml: invalid argument: restore.veth_pairs[0].outside:");
    // Interface names the kernel refuses, refused here, not at the restore by CRIU's netlink call.
    expect(errorOf(() => parseConfig('[restore]\nveth_pairs = [{ inside = "eth0", outside = "veth-0123456789ab" }]\n', "c.toml")).message).toBe(
      "config c.toml: invalid argument: restore.veth_pairs[0].outside: an interface name has at most 15 bytes (IFNAMSIZ)",
    );
    expect(errorOf(() => parseConfig('[restore]\nveth_pairs = [{ inside = "eth 0", outside = "v/1" }]\n', "c.toml")).message).toStartWith(
      'config c.toml: invalid argument: restore.veth_pairs[0].inside: an interface name is not "." or ".." and has no "/", ":" or white space',
    );
    expect(parseConfig('[restore]\nveth_pairs = [{ inside = "eth0", outside = "veth-0123456789" }]\n', "c.toml").restore?.veth_pairs).toEqual([{ inside: "eth0", outside: "veth-0123456789" }]);
    expect(errorOf(() => parseConfig('[checkpoint]\nempty_ns = ["pid"]\n', "c.toml")).message).toStartWith("config c.toml: invalid argument: checkpoint.empty_ns[0]:");
    // A page server's host CRIU cannot resolve, refused here, not by CRIU at the dump or the restore.
    expect(errorOf(() => parseConfig('[checkpoint]\npage_server = { address = "10.0.0.2/24", port = 27000 }\n', "c.toml")).message).toBe(
      "config c.toml: invalid argument: checkpoint.page_server.address: want an IPv4 or IPv6 address or a host name (letters, digits, '-' and '.')",
    );
    // An LSM profile CRIU refuses at the restore ("unknown lsm", "invalid argument for --lsm-profile"), refused here.
    for (const section of ["checkpoint", "restore"]) {
      expect(errorOf(() => parseConfig(`[${section}]\nlsm_profile = "cryo-restored"\n`, "c.toml")).message).toBe(
        `config c.toml: invalid argument: ${section}.lsm_profile: want apparmor:NAME, selinux:LABEL or none:`,
      );
    }
    expect(parseConfig('[restore]\nlsm_profile = "none:"\n', "c.toml").restore?.lsm_profile).toBe("none:");
    for (const address of ["10.0.0.2", "fd00::2", "pages.example", "node-1"]) {
      expect(parseConfig(`[checkpoint]\npage_server = { address = "${address}", port = 27000 }\n`, "c.toml").checkpoint?.page_server?.address).toBe(address);
    }
  });

  test("an unknown key (a typo) is named with the keys that place takes, in any section or at the top", () => {
    const checkpointKeys = Object.keys(checkpointDefaultsSchema.shape);
    expect(checkpointKeys).toContain("tcp_established");
    expect(errorOf(() => parseConfig("[checkpoint]\ntcp_establised = true\n", "c.toml")).message).toBe(
      `config c.toml: invalid argument: checkpoint.tcp_establised: unknown key; known: ${checkpointKeys.join(", ")}`,
    );
    expect(errorOf(() => parseConfig("[shims]\nx = 1\n", "c.toml")).message).toBe("config c.toml: invalid argument: shims: unknown key; known: plugins, checkpoint, restore, shim");
    expect(errorOf(() => parseConfig("[shim]\nmax_exec = 1\n", "c.toml")).message).toBe("config c.toml: invalid argument: shim.max_exec: unknown key; known: max_parallel_execs");
    expect(parseConfig("[shim]\nmax_parallel_execs = 3\n", "c.toml").shim).toEqual({ max_parallel_execs: 3 });
    expect(errorOf(() => parseConfig("[shim]\nmax_parallel_execs = 0\n", "c.toml")).message).toContain("shim.max_parallel_execs");
    expect(errorOf(() => parseConfig("[shim]\nmax_parallel_execs = 1.5\n", "c.toml")).message).toContain("shim.max_parallel_execs");
    expect(errorOf(() => parseConfig('{"restore": {"tcp-close": true}}', "c.json")).message).toBe(
      "config c.json: invalid argument: restore.tcp-close: unknown key; known: tcp_close, veth_pairs, lsm_profile, lsm_mount_context, manage_cgroups_mode, log_level, mntns_compat_mode",
    );
    // Below arrays and inline tables too: a plugin's keys, a veth pair's, the page server's.
    expect(errorOf(() => parseConfig('[[plugins]]\nname = "a"\npath = "a.wasm"\nhooks = ["admit"]\nfail = "open"\n', "c.toml")).message).toMatch(
      /^config c\.toml: invalid argument: plugins\[0\]\.fail: unknown key; known: name, path, hooks, failure, /,
    );
    expect(errorOf(() => parseConfig('[restore]\nveth_pairs = [{ inside = "eth0", outsid = "v0" }]\n', "c.toml")).message).toBe(
      "config c.toml: invalid argument: restore.veth_pairs[0].outsid: unknown key; known: inside, outside",
    );
    expect(errorOf(() => parseConfig('[checkpoint]\npage_server = { address = "h", prot = 1 }\n', "c.toml")).message).toBe(
      "config c.toml: invalid argument: checkpoint.page_server.prot: unknown key; known: address, port",
    );
  });

  test("every problem of the file is named, the first as before and the others after it (one per run before)", () => {
    // Both keys wrong: only compression_level was said, and log_level came up at the next run.
    expect(errorOf(() => parseConfig('[checkpoint]\nlog_level = "high"\ncompression_level = 99\n', "c.toml")).message).toBe(
      "config c.toml: invalid argument: checkpoint.compression_level: Too big: expected number to be <=22 (and 1 more: checkpoint.log_level: Invalid input: expected number, received string)",
    );
    // In several sections; a misspelt required key stays one problem (its "missing" half is not repeated).
    const text = '[checkpoint]\ncompression = "lz4"\n[restore]\nveth_pairs = [{ inside = "eth0", outsid = "v" }]\n[shim]\nmax_parallel_execs = 0\n';
    expect(errorOf(() => parseConfig(text, "c.toml")).message).toBe(
      'config c.toml: invalid argument: restore.veth_pairs[0].outsid: unknown key; known: inside, outside (and 2 more: checkpoint.compression: Invalid option: expected one of "none"|"zstd"; shim.max_parallel_execs: Too small: expected number to be >=1)',
    );
  });

  test("plugins keep src/plugins' rules (duplicate names) and syntax errors are one clear error", () => {
    const dup = '[[plugins]]\nname = "a"\npath = "a.wasm"\nhooks = ["admit"]\n[[plugins]]\nname = "a"\npath = "b.wasm"\nhooks = ["admit"]\n';
    expect(errorOf(() => parseConfig(dup, "c.toml")).message).toContain('plugins[1].name: duplicate plugin name "a"');
    expect(errorOf(() => parseConfig("[checkpoint\n", "c.toml")).message).toStartWith("config c.toml: invalid argument: cannot parse:");
    // Where in the file: line and column.
    expect(errorOf(() => parseConfig("[checkpoint]\ntcp established = true\n", "c.toml")).message).toBe("config c.toml: invalid argument: cannot parse: Invalid TOML document: illegal character in key (line 2, column 5)");
    expect(errorOf(() => parseConfig("{", "c.json")).message).toStartWith("config c.json: invalid argument: cannot parse:");
    // JSON.parse's error has JavaScriptCore's place in cryo's own code on it, never the file's: no position.
    expect(errorOf(() => parseConfig('{ "plugins": [], }', "c.json")).message).toBe("config c.json: invalid argument: cannot parse: JSON Parse error: Property name must be a string literal");
  });

  test("the plugins' loader reads the same file and refuses the same errors", () => {
    const f = join(dir, "bad-section.toml");
    writeFileSync(f, "[checkpoint]\ncompression = 1\n");
    expect(errorOf(() => loadPolicyConfig({ explicitPath: f })).message).toStartWith(`config ${f}: invalid argument: checkpoint.compression:`);
    const g = join(dir, "good.toml");
    writeFileSync(g, "[checkpoint]\ntcp_established = true\n");
    expect(loadPolicyConfig({ explicitPath: g })).toEqual({ source: g, config: { plugins: [] } });
  });
});

describe("search order", () => {
  test("explicit path, then CRYO_CONFIG, then /etc/cryo/config.toml, then config.json; nothing = empty", () => {
    const explicit = join(dir, "explicit.toml");
    const fromEnv = join(dir, "env.json");
    const def1 = join(dir, "d", "config.toml");
    const def2 = join(dir, "config.json");
    writeFileSync(explicit, "[checkpoint]\nfile_locks = true\n");
    writeFileSync(fromEnv, '{"checkpoint": {"shell_job": true}}');
    writeFileSync(def2, '{"checkpoint": {"auto_dedup": true}}');
    const defaults = [def1, def2];
    expect(loadConfig({ explicitPath: explicit, env: { CRYO_CONFIG: fromEnv }, defaults }).config.checkpoint).toEqual({ file_locks: true });
    expect(loadConfig({ env: { CRYO_CONFIG: fromEnv }, defaults }).config.checkpoint).toEqual({ shell_job: true });
    expect(loadConfig({ env: {}, defaults })).toEqual({ source: def2, config: { plugins: [], checkpoint: { auto_dedup: true }, restore: {}, shim: {} } });
    expect(loadConfig({ env: {}, defaults: [def1] })).toEqual({ source: null, config: emptyCryoConfig });
    expect(findConfigFile({ env: { CRYO_CONFIG: "" }, defaults })).toBe(def2);
  });

  test("a named file that does not exist is an error, not a fallback", () => {
    const missing = join(dir, "missing.toml");
    expect(errorOf(() => loadConfig({ explicitPath: missing, env: {} })).message).toBe(`config ${missing}: invalid argument: file does not exist (runtime options config path)`);
    expect(errorOf(() => loadConfig({ env: { CRYO_CONFIG: missing } })).message).toBe(`config ${missing}: invalid argument: file does not exist (CRYO_CONFIG)`);
  });

  test("a FIFO, a directory or a device is refused without a read (a FIFO blocked the daemon until a writer came); /dev/null is empty", () => {
    const fifo = join(dir, "fifo.toml");
    Bun.spawnSync(["mkfifo", fifo]);
    const e = errorOf(() => loadConfig({ explicitPath: fifo, env: {} }));
    expect([e.code, e.message]).toEqual([Code.INVALID_ARGUMENT, `config ${fifo}: invalid argument: cannot read: ${fifo}: failed precondition: ${fifo} is a FIFO, not a regular file`]);
    expect(errorOf(() => loadConfig({ explicitPath: dir, env: {} })).message).toBe(`config ${dir}: invalid argument: cannot read: ${dir}: failed precondition: ${dir} is a directory, not a file`);
    expect(errorOf(() => loadConfig({ env: { CRYO_CONFIG: "/dev/zero" } })).message).toBe("config /dev/zero: invalid argument: cannot read: /dev/zero: failed precondition: /dev/zero is a device, not a regular file");
    expect(loadConfig({ env: { CRYO_CONFIG: "/dev/null" } }).config).toEqual(emptyCryoConfig);
  });

  test("a relative path is refused with the reason (the shim runs in the bundle directory)", () => {
    expect(errorOf(() => loadConfig({ explicitPath: "config.toml", env: {} })).message).toBe(
      "config config.toml: invalid argument: a relative path (runtime options config path): give an absolute one, the shim runs in each container's bundle directory",
    );
    expect(errorOf(() => loadConfig({ env: { CRYO_CONFIG: "etc/cryo.toml" } })).message).toContain("config etc/cryo.toml: invalid argument: a relative path (CRYO_CONFIG)");
  });
});

describe("per-daemon cache", () => {
  test("a bad config is reported once and then fails every use with the same error; a good one loads once while its file stays as it was", async () => {
    const bad = join(dir, "cache-bad.toml");
    const good = join(dir, "cache-good.toml");
    writeFileSync(bad, "[restore]\ntcp_close = \"yes\"\n");
    writeFileSync(good, "[checkpoint]\ncompression = \"zstd\"\n");
    const reported: string[] = [];
    const cache = createConfigCache({ env: {}, defaults: [] }, (e) => reported.push(e.message));
    const first = await cache.check(bad);
    expect(first?.code).toBe(Code.INVALID_ARGUMENT);
    expect(first?.message).toStartWith(`config ${bad}: invalid argument: restore.tcp_close:`);
    const e1 = await cache.forConfigPath(bad).catch((e: unknown) => e);
    const e2 = await cache.forConfigPath(bad).catch((e: unknown) => e);
    expect(e1).toBe(first!);
    expect(e2).toBe(first!);
    expect(reported).toEqual([first!.message]);
    const loaded = await cache.forConfigPath(good);
    expect(loaded.config.checkpoint.compression).toBe("zstd");
    expect(await cache.forConfigPath(good)).toBe(loaded);
    expect(await cache.check("")).toBeUndefined();
    expect((await cache.forConfigPath("")).source).toBeNull();
  });

  test("an edited config file, or a replaced plugin file, is read again at the next use; a file broken by the edit is reported once", async () => {
    const path = join(dir, "cache-edited.toml");
    const wasm = join(dir, "cache-edited.wasm");
    writeFileSync(wasm, "v1");
    writeFileSync(path, `[checkpoint]\ncompression = "zstd"\n[[plugins]]\nname = "p"\npath = "${wasm}"\nhooks = ["admit"]\n`);
    const reported: string[] = [];
    const cache = createConfigCache({ env: {}, defaults: [] }, (e) => reported.push(e.message));
    const first = await cache.forConfigPath(path);
    expect(first.config.checkpoint.compression).toBe("zstd");
    expect(await cache.forConfigPath(path)).toBe(first);
    // The plugin file replaced (another size): same config, a new stamp, so a policy engine keyed by it reloads.
    writeFileSync(wasm, "v2 longer");
    const second = await cache.forConfigPath(path);
    expect(second).not.toBe(first);
    expect(second.stamp).not.toBe(first.stamp);
    expect(second.config).toEqual(first.config);
    // The config edited into something broken: its error, reported once, until the file changes again.
    writeFileSync(path, "not = [toml");
    const broken = await cache.forConfigPath(path).catch((e: unknown) => e as CryoError);
    expect((broken as CryoError).code).toBe(Code.INVALID_ARGUMENT);
    expect(await cache.forConfigPath(path).catch((e: unknown) => e)).toBe(broken);
    expect(reported).toEqual([(broken as CryoError).message]);
    writeFileSync(path, `[checkpoint]\ncompression = "none"\n`);
    expect((await cache.forConfigPath(path)).config.checkpoint.compression).toBe("none");
  });

  test("a missing explicit file is reported like a bad one; no file anywhere is the empty configuration", async () => {
    const reported: string[] = [];
    const cache = createConfigCache({ env: {}, defaults: [join(dir, "absent.toml")] }, (e) => reported.push(e.message));
    expect(await cache.forConfigPath("")).toEqual({ source: null, config: emptyCryoConfig, stamp: "" });
    const missing = join(dir, "absent-explicit.toml");
    const err = await cache.forConfigPath(missing).catch((e: unknown) => e);
    expect((err as CryoError).message).toBe(`config ${missing}: invalid argument: file does not exist (runtime options config path)`);
    expect(reported).toEqual([(err as CryoError).message]);
  });

  test("the cache module loads neither the TOML parser nor the config schema (only a file to read does)", () => {
    // A fresh process: what importing config-cache.ts and answering for a host without a file pulls in.
    const script = `
      const { createConfigCache } = await import(${JSON.stringify(join(import.meta.dir, "../../../src/config/config-cache.ts"))});
      const cache = createConfigCache({ env: {}, defaults: [] });
      await cache.forConfigPath("");
      const loaded = Object.keys(require.cache).filter((k) => ["smol-toml", "/zod/", "config/schema.ts", "config/loader.ts"].some((m) => k.includes(m)));
      console.log(JSON.stringify(loaded));
    `;
    const r = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    expect(JSON.parse(r.stdout.toString())).toEqual([]);
  });
});

test("the JSON Schema describes every section", () => {
  const s = configJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown> }>; additionalProperties?: unknown };
  expect(Object.keys(s.properties).sort()).toEqual(["checkpoint", "plugins", "restore", "shim"]);
  expect(Object.keys(s.properties.shim!.properties!)).toEqual(["max_parallel_execs"]);
  expect(Object.keys(s.properties.checkpoint!.properties!)).toContain("tcp_established");
  expect(Object.keys(s.properties.restore!.properties!)).toContain("veth_pairs");
  expect(s.additionalProperties).toBe(false);
});
