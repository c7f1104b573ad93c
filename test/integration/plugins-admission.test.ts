/**
 * Policy plugins through `ctr run` and the cryo shim (issue 5 acceptance): deny-privileged refuses
 * `ctr run --privileged` with the plugin's reason and creates no container process; an ordinary run
 * succeeds; spec changes reach the container; bad plugins (loop, trap, unbounded allocation,
 * malformed JSON) each fail their container with a clear error while other containers keep running.
 * The config reaches the shim through `ctr run --runtime-config-path` (runtimeoptions.v1.Options).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, shimDaemonPids, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd, buildPlugins } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const root = join(import.meta.dir, "../..");
const plugins = join(root, "build/plugins");
let pc: PrivateContainerd;
let ns: string;
let dir: string;
let config: string;

beforeAll(async () => {
  buildPlugins();
  dir = mkdtempSync(join(tmpdir(), "cryo-plugins-it-"));
  config = join(dir, "config.toml");
  const bad = (name: string) =>
    `[[plugins]]\nname = "${name}"\npath = "${join(plugins, `${name}.wasm`)}"\nhooks = ["admit"]\nlimits = { timeout_ms = 2000, memory_mib = 16 }\nmatch = { annotations = { "cryo.test/bad" = "${name}" } }\n`;
  writeFileSync(
    config,
    [
      `[[plugins]]\nname = "deny-privileged"\npath = "${join(plugins, "deny-privileged.wasm")}"\nhooks = ["admit"]\n`,
      `[[plugins]]\nname = "set-env"\npath = "${join(plugins, "set-env.wasm")}"\nhooks = ["admit"]\nconfig = { name = "CRYO_POLICY", value = "checked" }\n`,
      ...["loop-forever", "trap", "alloc-unbounded", "malformed-json"].map(bad),
    ].join("\n"),
  );
  ns = uniqueId("plugins");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
}, 300_000);

afterAll(async () => {
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

function run(id: string, flags: string[], args: string[]) {
  return pc.ctr(["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", config, ...flags, testImage, id, ...args], { timeoutMs: 60_000 });
}

/** Whether anything of container `id` exists: a runc state dir or a task. */
async function containerTraces(id: string): Promise<string[]> {
  const found: string[] = [];
  if (existsSync(`/run/containerd/runc/${ns}/${id}`)) found.push("runc state");
  const tasks = await pc.ctrOk(["task", "ls"]);
  if (tasks.split("\n").some((l) => l.split(/\s+/)[0] === id)) found.push("task");
  return found;
}

test("ctr run --privileged is refused with the plugin's reason; no container process is created", async () => {
  const id = uniqueId("priv");
  const r = await run(id, ["--privileged"], ["sh", "-c", "echo should-not-run"]);
  expect(r.exitCode).not.toBe(0);
  expect(r.stdout).not.toContain("should-not-run");
  expect(r.stderr).toContain(`container ${id}: denied by plugin deny-privileged: privileged containers are not allowed (CAP_SYS_ADMIN in the bounding set, all devices allowed)`);
  expect(await containerTraces(id)).toEqual([]);
  await pc.ctr(["containers", "rm", id]);
}, 60_000);

test("a Create that runc refuses because of a plugin's change names the plugin", async () => {
  // Without /proc in the spec, runc cannot set the container up (it needs the container's /proc).
  const noProc = join(dir, "no-proc.toml");
  writeFileSync(noProc, `[[plugins]]\nname = "drop-proc"\npath = "${join(plugins, "set-env.wasm")}"\nhooks = ["admit"]\nconfig = { remove_mount = "/proc" }\n`);
  const id = uniqueId("noproc");
  const r = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", noProc, testImage, id, "true"], { timeoutMs: 60_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain("(the spec carried changes of admission plugin drop-proc)");
  expect(await containerTraces(id)).toEqual([]);
  await pc.ctr(["containers", "rm", id]);
}, 60_000);

test("a restore an admit plugin denies is refused with its reason, and leaves no copy of the checkpoint behind", async () => {
  const noRestores = join(dir, "no-restores.toml");
  writeFileSync(noRestores, `[[plugins]]\nname = "no-restores"\npath = "${join(plugins, "set-env.wasm")}"\nhooks = ["admit"]\nconfig = { deny_restore = "true" }\n`);
  const id = uniqueId("norest");
  const ref = `localhost/checkpoint/${id}:1`;
  const extractions = () => readdirSync(pc.layout.tmp).filter((n) => n.startsWith("ctrd-checkpoint"));
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", noRestores, testImage, id, "sleep", "600"]);
  try {
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 60_000 });
    await pc.ctr(["task", "kill", "-s", "KILL", id]);
    await pc.ctr(["task", "rm", "-f", id]);
    await pc.ctrOk(["containers", "rm", id]);
    const before = extractions();
    const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 60_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(`container ${id}: denied by plugin no-restores: restores are not admitted here`);
    expect(extractions()).toEqual(before);
  } finally {
    await pc.ctr(["task", "rm", "-f", id]);
    await pc.ctr(["containers", "rm", id]);
    await pc.ctr(["images", "rm", ref]);
  }
}, 120_000);

test("an ordinary run succeeds, and the plugins' spec changes reach the container", async () => {
  const r = await run(uniqueId("ok"), [], ["sh", "-c", "echo policy=$CRYO_POLICY"]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("policy=checked\n");
  expect(r.exitCode).toBe(0);
}, 60_000);

test("bad plugins fail their container with a clear error; a running container is unaffected", async () => {
  const steady = uniqueId("steady");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", config, testImage, steady, "sh", "-c", "while true; do sleep 0.1; done"]);
  const expected: Record<string, string> = {
    "loop-forever": "plugin loop-forever: hook admit: timed out after 2000 ms",
    trap: "plugin trap: hook admit: trapped: abort: policy bug: cannot decide about",
    "alloc-unbounded": "plugin alloc-unbounded: hook admit: exceeded its memory limit of 16 MiB",
    "malformed-json": "plugin malformed-json: hook admit: returned malformed JSON",
  };
  for (const [name, message] of Object.entries(expected)) {
    const id = uniqueId(name.replace(/-/g, "").slice(0, 8));
    const r = await run(id, ["--annotation", `cryo.test/bad=${name}`], ["sh", "-c", "echo should-not-run"]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(message);
    expect(await containerTraces(id)).toEqual([]);
    await pc.ctr(["containers", "rm", id]);
    const ex = await pc.ctr(["task", "exec", "--exec-id", uniqueId("e"), steady, "echo", "alive"]);
    expect(ex.stdout).toBe("alive\n");
  }
  await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", steady]);
  await pc.ctr(["task", "rm", "-f", steady]);
  await pc.ctrOk(["containers", "rm", steady]);
}, 120_000);

test("a config whose restore-only plugin lacks its export fails the first Create, naming the config and the plugin", async () => {
  // No admit plugin in it: before, such a config was first checked at a checkpoint, which it then failed.
  const broken = join(dir, "restore-only.toml");
  writeFileSync(broken, `[[plugins]]\nname = "a"\npath = "${join(plugins, "set-env.wasm")}"\nhooks = ["restore"]\n`);
  const id = uniqueId("rconly");
  const r = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", broken, testImage, id, "true"], { timeoutMs: 60_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain(`config ${broken}: plugin a: invalid argument: hooks lists "restore" but the module has no export "restore"`);
  expect(await containerTraces(id)).toEqual([]);
  await pc.ctr(["containers", "rm", id]);
}, 60_000);

test("a shared daemon reads an edited config again at the next Create: a plugin added to the file applies to the next container; a fail-open warning in containerd's log names the container", async () => {
  const edited = join(dir, "edited.toml");
  writeFileSync(edited, "");
  const shared = ["--annotation", "io.cryo.shim.grouping=per-namespace", "--runtime-config-path", edited];
  const first = uniqueId("edit1");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, ...shared, testImage, first, "sleep", "100"], { timeoutMs: 60_000 });
  const daemons = shimDaemonPids(pc.address, first);
  expect(daemons.length).toBe(1);

  // The file edited while that daemon runs: deny-privileged added, and a broken plugin that fails open.
  writeFileSync(
    edited,
    `[[plugins]]\nname = "deny-privileged"\npath = "${join(plugins, "deny-privileged.wasm")}"\nhooks = ["admit"]\n` +
      `[[plugins]]\nname = "malformed-json"\npath = "${join(plugins, "malformed-json.wasm")}"\nhooks = ["admit"]\nfailure = "open"\n`,
  );
  const denied = uniqueId("edit2");
  const r = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, ...shared, "--privileged", testImage, denied, "true"], { timeoutMs: 60_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain(`container ${denied}: denied by plugin deny-privileged`);
  await pc.ctr(["containers", "rm", denied]);
  const allowed = uniqueId("edit3");
  const ok = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, ...shared, testImage, allowed, "echo", "allowed"], { timeoutMs: 60_000 });
  expect(ok.stdout.trim()).toBe("allowed");
  expect(ok.exitCode).toBe(0);
  // Both were served by the daemon that was running before the edit.
  expect(shimDaemonPids(pc.address)).toEqual(daemons);
  // The fail-open warning is one of the daemon's own log lines (logfmt, level warn), naming the container. It reaches
  // containerd's log through a FIFO: waited for, as in shim-notify.
  const line = await waitFor(() => readFileSync(pc.layout.log, "utf8").split("\n").find((l) => l.includes(`container ${allowed} in namespace ${ns}: plugin malformed-json`)), { what: "the daemon's fail-open warning in containerd's log" });
  expect(line).toMatch(/^time=\S+ level=warn msg=/);
  expect(line).toContain('(failure = \\"open\\": allowing)');

  await pc.ctr(["task", "rm", "-f", first]);
  await pc.ctrOk(["containers", "rm", first]);
  // The daemon's last container gone, the next Create joins it while it lingers: its warning, logged during that
  // Create, reaches containerd too. Before, the log moved to the new container's FIFO only once its Create had
  // answered, and the warning went to the deleted container's FIFO, which nobody reads any more.
  const after = uniqueId("edit4");
  const again = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, ...shared, testImage, after, "true"], { timeoutMs: 60_000 });
  expect(again.exitCode).toBe(0);
  await waitFor(() => readFileSync(pc.layout.log, "utf8").includes(`container ${after} in namespace ${ns}: plugin malformed-json`), { what: `the fail-open warning about ${after} in containerd's log` });
}, 120_000);
