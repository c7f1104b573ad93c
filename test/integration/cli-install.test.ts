/**
 * `cryo install` / `cryo uninstall` against temp files only: containerd's own default config (from
 * `containerd config default`) in a temp dir, a temp bin dir; containerd itself (`config dump`) must read
 * the edited file and see the handler. Never touches /etc/containerd or /usr/local/bin. The containerd is
 * $CRYO_CONTAINERD or the one on PATH: 1.6's default config is version 2, 2.x's version 3 (the suite was run
 * against 2.0.11 too).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { criRuntimesPath, splitTomlKey, tomlKeyPath, type ConfigVersion } from "../../src/cli/containerd-config-edit.ts";
import { containerdBinary } from "../../src/containerd/index.ts";
import { parse } from "smol-toml";

const bun = process.execPath;
const main = resolve(import.meta.dir, "../../src/cli/main.ts");
const buildBin = resolve(import.meta.dir, "../../build/bin");
let dir: string;
let config: string;
let binDir: string;
let original: string;
let version: ConfigVersion;
const containerd = containerdBinary();
/** The handler's table header cryo install writes into the default config. */
const handlerHeader = () => `[${tomlKeyPath([...criRuntimesPath(version), "cryo"])}]`;

async function run(argv: string[], cwd?: string) {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", ...(cwd ? { cwd } : {}) });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exitCode };
}

const cryo = (...args: string[]) => run([bun, main, ...args]);

/**
 * The cryo handler's runtime_type as containerd itself reads the config, or undefined. containerd 2.x dumps a
 * version 2 file migrated to version 3, with its own quotes.
 */
async function handlerSeenByContainerd(file = config): Promise<string | undefined> {
  const r = await run([containerd, "--config", file, "config", "dump"]);
  expect(r.exitCode).toBe(0);
  const lines = r.stdout.split("\n");
  const wanted = ([2, 3] as const).map((v) => [...criRuntimesPath(v), "cryo"].join("\0"));
  const at = lines.findIndex((l) => {
    const m = /^\s*\[([^[\]]+)\]\s*$/.exec(l);
    return m !== null && wanted.includes(splitTomlKey(m[1]!)?.join("\0") ?? "");
  });
  if (at < 0) return undefined;
  const typeLine = lines.slice(at + 1).find((l) => l.trim().startsWith("runtime_type"));
  return typeLine?.split("=")[1]?.trim().replace(/["']/g, "");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cryo-install-"));
  config = join(dir, "config.toml");
  binDir = join(dir, "bin");
  mkdirSync(binDir);
  const def = await run([containerd, "config", "default"]);
  expect(def.exitCode).toBe(0);
  original = def.stdout;
  const v = Number(/^version = (\d+)/m.exec(original)?.[1]);
  if (v !== 2 && v !== 3 && v !== 4) throw new Error(`containerd config default: version ${v}`);
  version = v;
  writeFileSync(config, original, { mode: 0o600 });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("--dry-run prints the diff and what it would copy, and changes nothing", async () => {
  const r = await cryo("install", "--config", config, "--bin-dir", binDir, "--dry-run");
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toContain(`${binDir}/containerd-shim-cryo-v2: would be installed from ${buildBin}/containerd-shim-cryo-v2`);
  expect(r.stdout).toContain(`--- ${config}\n+++ ${config} (after)\n@@ `);
  expect(r.stdout).toContain(`+${handlerHeader()}\n+  runtime_type = "io.containerd.cryo.v2"`);
  expect(r.stdout).toContain("dry run: nothing was changed");
  expect(readFileSync(config, "utf8")).toBe(original);
  expect(readdirSync(binDir)).toEqual([]);
  expect(existsSync(`${config}.bak`)).toBe(false);
});

test("install copies both binaries, adds the handler containerd then sees, keeps a backup and the file mode", async () => {
  const r = await cryo("install", "--config", config, "--bin-dir", binDir);
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  // systemd's command only where systemd runs (none on this VM).
  expect(r.stdout).toContain(existsSync("/run/systemd/system") ? "restart containerd to load the new handler: systemctl restart containerd" : "restart containerd to load the new handler (no systemd runs here: restart it as it was started)");
  for (const name of ["containerd-shim-cryo-v2", "cryo"]) {
    const installed = join(binDir, name);
    expect(statSync(installed).mode & 0o777).toBe(0o755);
    expect(Buffer.compare(readFileSync(installed), readFileSync(join(buildBin, name)))).toBe(0);
  }
  expect(readFileSync(`${config}.bak`, "utf8")).toBe(original);
  const now = readFileSync(config, "utf8");
  expect(now.startsWith(original)).toBe(true);
  expect(statSync(config).mode & 0o777).toBe(0o600);
  expect(await handlerSeenByContainerd()).toBe("io.containerd.cryo.v2");
  // No temp files left next to the config or the binaries.
  expect(readdirSync(dir).sort()).toEqual(["bin", "config.toml", "config.toml.bak"]);
  expect(readdirSync(binDir).sort()).toEqual(["containerd-shim-cryo-v2", "cryo"]);
});

test("install again changes nothing", async () => {
  const before = readFileSync(config, "utf8");
  const mtime = statSync(config).mtimeMs;
  const r = await cryo("install", "--config", config, "--bin-dir", binDir);
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toContain(`${binDir}/cryo: unchanged`);
  expect(r.stdout).toContain(`${config}: unchanged (the cryo handler is already there)`);
  expect(readFileSync(config, "utf8")).toBe(before);
  expect(statSync(config).mtimeMs).toBe(mtime);
});

test("uninstall restores the original config byte for byte; --remove-binaries removes the binaries", async () => {
  const dry = await cryo("uninstall", "--config", config, "--bin-dir", binDir, "--remove-binaries", "--dry-run");
  expect(dry.exitCode).toBe(0);
  expect(dry.stdout).toContain(`-${handlerHeader()}`);
  expect(dry.stdout).toContain(`${binDir}/cryo: would be removed`);
  expect(await handlerSeenByContainerd()).toBe("io.containerd.cryo.v2");

  const r = await cryo("uninstall", "--config", config, "--bin-dir", binDir, "--remove-binaries");
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(readFileSync(config, "utf8")).toBe(original);
  expect(await handlerSeenByContainerd()).toBeUndefined();
  expect(readdirSync(binDir)).toEqual([]);
  const again = await cryo("uninstall", "--config", config);
  expect(again.exitCode).toBe(0);
  expect(again.stdout).toContain("unchanged");
});

test("a version 1 config is refused (exit 1), an unparsable one is malformed input (exit 2), and nothing is installed", async () => {
  const v1 = join(dir, "v1.toml");
  writeFileSync(v1, `root = "/var/lib/containerd"\n[plugins.cri]\n  sandbox_image = "pause"\n`);
  const r = await cryo("install", "--config", v1, "--bin-dir", binDir);
  expect(r.exitCode).toBe(1);
  expect(r.stderr.trim()).toStartWith(`cryo install: containerd config ${v1}: failed precondition: version 1`);
  const bad = join(dir, "bad.toml");
  writeFileSync(bad, "version = 2\n[plugins\n");
  const r2 = await cryo("install", "--config", bad, "--bin-dir", binDir);
  // Malformed content is exit 2, as for `cryo config check` (docs/cli.md); before, 1.
  expect(r2.exitCode).toBe(2);
  expect(r2.stderr.trim()).toStartWith(`cryo install: containerd config ${bad}: invalid argument: not valid TOML: `);
  const r3 = await cryo("uninstall", "--config", bad);
  expect(r3.exitCode).toBe(2);
  expect(r3.stderr).toContain("not valid TOML");
  expect(readdirSync(binDir)).toEqual([]);
  expect(existsSync(`${v1}.bak`) || existsSync(`${bad}.bak`)).toBe(false);
});

test("a missing bin dir is created; a --from without both binaries is refused before anything changes", async () => {
  const cfg = join(dir, "fresh.toml");
  const nested = join(dir, "new", "bin");
  const r = await cryo("install", "--config", cfg, "--bin-dir", nested, "--from", buildBin);
  expect(r.exitCode).toBe(0);
  expect(readdirSync(nested).sort()).toEqual(["containerd-shim-cryo-v2", "cryo"]);
  expect(readFileSync(cfg, "utf8")).toStartWith("version = 2\n");
  expect(await handlerSeenByContainerd(cfg)).toBe("io.containerd.cryo.v2");

  const half = join(dir, "half");
  mkdirSync(half);
  writeFileSync(join(half, "cryo"), "#!/bin/sh\n", { mode: 0o755 });
  const other = join(dir, "other.toml");
  const refused = await cryo("install", "--config", other, "--bin-dir", join(dir, "bin2"), "--from", half);
  expect(refused.exitCode).toBe(1);
  expect(refused.stderr.trim()).toBe(`cryo install: cryo binaries in ${half}: failed precondition: containerd-shim-cryo-v2 missing; run \`npm run build\` or pass --from DIR`);
  expect(existsSync(join(dir, "bin2")) || existsSync(other)).toBe(false);
});

test("a symlinked config stays a link: install edits its target (and backs the target up)", async () => {
  const { lstatSync, readlinkSync, symlinkSync } = await import("node:fs");
  const target = join(dir, "managed.toml");
  const link = join(dir, "link.toml");
  writeFileSync(target, original);
  symlinkSync(target, link);
  const r = await cryo("install", "--config", link, "--bin-dir", join(dir, "bin-link"), "--from", buildBin);
  expect(r.exitCode).toBe(0);
  expect(lstatSync(link).isSymbolicLink()).toBe(true);
  expect(readlinkSync(link)).toBe(target);
  expect(readFileSync(target, "utf8")).toContain('runtime_type = "io.containerd.cryo.v2"');
  expect(readFileSync(`${target}.bak`, "utf8")).toBe(original);
});

test("a link to a config not made yet stays a link (the file is made where it points); a FIFO is refused unread", async () => {
  const { lstatSync, readlinkSync, symlinkSync } = await import("node:fs");
  const link = join(dir, "link-to-new.toml");
  symlinkSync("new-managed.toml", link);
  const r = await cryo("install", "--config", link, "--bin-dir", join(dir, "bin-dangling"), "--from", buildBin);
  expect(r.exitCode).toBe(0);
  // Before, the link was replaced by a regular file and new-managed.toml never made.
  expect(lstatSync(link).isSymbolicLink()).toBe(true);
  expect(readlinkSync(link)).toBe("new-managed.toml");
  expect(await handlerSeenByContainerd(join(dir, "new-managed.toml"))).toBe("io.containerd.cryo.v2");
  // A link into a directory that is not there is that directory's failure, before any binary is copied.
  const far = join(dir, "link-far.toml");
  symlinkSync(join(dir, "no-dir", "c.toml"), far);
  const refused = await cryo("install", "--config", far, "--bin-dir", join(dir, "bin-far"), "--from", buildBin);
  expect([refused.exitCode, refused.stderr.trim()]).toEqual([1, `cryo install: containerd config ${far}: failed precondition: its directory ${join(dir, "no-dir")} does not exist`]);
  expect(existsSync(join(dir, "bin-far")) || lstatSync(far).isSymbolicLink() === false).toBe(false);

  // A FIFO: the read waited for a writer for ever.
  const fifo = join(dir, "fifo.toml");
  Bun.spawnSync(["mkfifo", fifo]);
  for (const [command, ...args] of [["install", "--from", buildBin], ["uninstall"]] as const) {
    const f = await cryo(command, "--config", fifo, "--bin-dir", join(dir, "bin-fifo"), ...args, "--dry-run");
    expect([f.exitCode, f.stderr.trim()]).toEqual([1, `cryo ${command}: containerd config ${fifo}: failed precondition: ${fifo} is a FIFO, not a regular file`]);
  }
  // A device (here a second node of /dev/null's): read as an empty config, it was to be replaced by the written one;
  // the binaries were copied first and the backup then failed ("ENOTSUP ... copyfile").
  const nullNode = join(dir, "null-node");
  Bun.spawnSync(["mknod", nullNode, "c", "1", "3"]);
  const dev = await cryo("install", "--config", nullNode, "--bin-dir", join(dir, "bin-dev"), "--from", buildBin);
  expect([dev.exitCode, dev.stderr.trim()]).toEqual([1, `cryo install: containerd config ${nullNode}: failed precondition: ${nullNode} is a device, not a regular file`]);
  expect(existsSync(join(dir, "bin-dev"))).toBe(false);
  expect(statSync(nullNode).isCharacterDevice()).toBe(true);
}, 30_000);

test("an empty config file gets a whole version 2 config; a config in a missing directory fails before any binary is copied", async () => {
  const empty = join(dir, "empty.toml");
  writeFileSync(empty, "");
  const r = await cryo("install", "--config", empty, "--bin-dir", join(dir, "bin-empty"), "--from", buildBin);
  expect(r.exitCode).toBe(0);
  expect(readFileSync(empty, "utf8")).toStartWith("version = 2\n");
  expect(await handlerSeenByContainerd(empty)).toBe("io.containerd.cryo.v2");

  const nowhere = join(dir, "no-such-dir", "config.toml");
  const bins = join(dir, "bin-nowhere");
  const refused = await cryo("install", "--config", nowhere, "--bin-dir", bins, "--from", buildBin);
  expect(refused.exitCode).toBe(1);
  expect(refused.stderr.trim()).toBe(`cryo install: containerd config ${nowhere}: failed precondition: its directory ${join(dir, "no-such-dir")} does not exist`);
  expect(existsSync(bins)).toBe(false);
  // A dry run foretells that failure (it printed a whole diff and exited 0).
  const dry = await cryo("install", "--config", nowhere, "--bin-dir", bins, "--from", buildBin, "--dry-run");
  expect(dry.exitCode).toBe(1);
  expect(dry.stderr.trim()).toBe(refused.stderr.trim());
});

test("a config that is a directory or unreadable, and a --bin-dir that is a file, are named in words; the dry run foretells the bin dir's failure", async () => {
  const { chmodSync, copyFileSync } = await import("node:fs");
  const asDir = join(dir, "config-dir.toml");
  mkdirSync(asDir);
  // Before: `read <dir>: unavailable: EISDIR: illegal operation on a directory, read`.
  for (const cmd of ["install", "uninstall"]) {
    const r = await cryo(cmd, "--config", asDir, "--bin-dir", join(dir, "bin-x"), "--dry-run");
    expect(r.stderr.trim()).toBe(`cryo ${cmd}: containerd config ${asDir}: failed precondition: ${asDir} is a directory, not a file`);
    expect(r.exitCode).toBe(1);
  }
  const file = join(dir, "bin-file");
  writeFileSync(file, "x");
  const cfg = join(dir, "binfile.toml");
  // Before: the dry run printed "would be installed" and exited 0; the real run failed with `EEXIST: file already exists, mkdir`.
  for (const dry of [["--dry-run"], []]) {
    const r = await cryo("install", "--config", cfg, "--bin-dir", file, "--from", buildBin, ...dry);
    expect(r.stderr.trim()).toBe(`cryo install: bin dir ${file}: failed precondition: ${file} is a file, not a directory`);
    expect(r.exitCode).toBe(1);
  }
  expect(existsSync(cfg)).toBe(false);
  // uninstall --remove-binaries the same, before it touches the config (before: "<file>/cryo: not there", exit 0).
  writeFileSync(cfg, original);
  for (const dry of [["--dry-run"], []]) {
    const r = await cryo("uninstall", "--config", cfg, "--bin-dir", file, "--remove-binaries", ...dry);
    expect([r.exitCode, r.stderr.trim()]).toEqual([1, `cryo uninstall: bin dir ${file}: failed precondition: ${file} is a file, not a directory`]);
  }
  expect(existsSync(`${cfg}.bak`)).toBe(false);
  rmSync(cfg);
  // A config nobody may read: permission denied naming the uid, not UNAVAILABLE with node's EACCES text.
  chmodSync(dir, 0o711);
  // The binaries where nobody reaches them: the checkout may be in a directory only root enters (a `mktemp -d` clone).
  const pubBin = join(dir, "pub-bin");
  mkdirSync(pubBin, { mode: 0o755 });
  for (const name of ["cryo", "containerd-shim-cryo-v2"]) {
    copyFileSync(join(buildBin, name), join(pubBin, name));
    chmodSync(join(pubBin, name), 0o755);
  }
  const asNobody = join(pubBin, "cryo");
  const uid = Number(Bun.spawnSync(["id", "-u", "nobody"]).stdout.toString().trim());
  for (const cmd of ["install", "uninstall"]) {
    const r = await run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", asNobody, cmd, "--config", config, ...(cmd === "install" ? ["--from", pubBin] : []), "--dry-run"], "/");
    expect(r.stderr.trim()).toBe(`cryo ${cmd}: containerd config ${config}: permission denied: uid ${uid} may not open ${config}`);
    expect(r.exitCode).toBe(1);
  }
}, 30_000);

test("uninstall with no config file says there is none, and exits 0 (nothing to remove)", async () => {
  const none = join(dir, "none.toml");
  const r = await cryo("uninstall", "--config", none);
  expect(r.stdout.trim()).toBe(`${none}: does not exist; no cryo handler to remove`);
  expect(r.exitCode).toBe(0);
  expect(existsSync(none)).toBe(false);
});

test("--pod-annotations, --container-annotations and --config-path land in the handler's table as containerd reads it; uninstall takes them out", async () => {
  const file = join(dir, "settings.toml");
  writeFileSync(file, original, { mode: 0o600 });
  const cryoConfig = join(dir, "cryo-config.toml");
  const r = await cryo("install", "--config", file, "--bin-dir", binDir, "--pod-annotations", "cryo.checkpoint/*, io.cryo.*", "--container-annotations", "cryo.notify/*", "--config-path", cryoConfig);
  expect([r.exitCode, r.stderr]).toEqual([0, ""]);
  expect(r.stdout).toContain(`note: ${cryoConfig} (--config-path) does not exist yet: every container of the handler fails at Create until it does`);
  // containerd's own reading of the file (1.6 dumps version 2, 2.x a version 3 migration of it).
  const dump = await run([containerd, "--config", file, "config", "dump"]);
  expect(dump.exitCode).toBe(0);
  const doc = parse(dump.stdout) as Record<string, any>;
  const handler = ([2, 3] as const).map((v) => criRuntimesPath(v).reduce((t: any, k) => t?.[k], doc)?.cryo).find((h) => h !== undefined);
  expect(handler).toMatchObject({ runtime_type: "io.containerd.cryo.v2", pod_annotations: ["cryo.checkpoint/*", "io.cryo.*"], container_annotations: ["cryo.notify/*"], options: { ConfigPath: cryoConfig } });
  // The same again changes nothing; another value is refused, naming the key.
  const again = await cryo("install", "--config", file, "--bin-dir", binDir, "--pod-annotations", "cryo.checkpoint/*,io.cryo.*", "--container-annotations", "cryo.notify/*", "--config-path", cryoConfig);
  expect([again.exitCode, again.stderr]).toEqual([0, ""]);
  expect(again.stdout).toContain("containerd's config already had the handler");
  const other = await cryo("install", "--config", file, "--bin-dir", binDir, "--pod-annotations", "cryo.*");
  expect(other.exitCode).toBe(1);
  expect(other.stderr).toContain('failed precondition: its runtime handler "cryo" has another pod_annotations than asked for');
  const bad = await cryo("install", "--config", file, "--bin-dir", binDir, "--config-path", "relative.toml");
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr).toContain("--config-path: an absolute path");
  const un = await cryo("uninstall", "--config", file, "--bin-dir", binDir);
  expect([un.exitCode, un.stderr]).toEqual([0, ""]);
  expect(readFileSync(file, "utf8")).toBe(original);
});
