/**
 * The admit hook sees the container's image, read by the shim through containerd's gRPC API
 * (issue 5): registry-allowlist allows localhost/cryo-test:latest when `localhost` is listed and denies
 * it, naming the image, when only docker.io is; readImageInfo against the same containerd returns the
 * image's digest as `ctr images ls` shows it, and its config. The shim under test is build/bin's
 * (setup builds it from the current source).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readImageInfo } from "../../src/containerd/image-info.ts";
import { Code, isCode } from "../../src/errors.ts";
import { ensureTestImage, startPrivateContainerd, testImage, uniqueId, type PrivateContainerd, buildPlugins } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const root = join(import.meta.dir, "../..");
const wasm = join(root, "build/plugins/registry-allowlist.wasm");
let pc: PrivateContainerd;
let ns: string;
let dir: string;

function allowlistConfig(name: string, registries: string): string {
  const path = join(dir, `${name}.toml`);
  writeFileSync(path, `[[plugins]]\nname = "registry-allowlist"\npath = "${wasm}"\nhooks = ["admit"]\nconfig = { registries = "${registries}", allow_pinned = "false" }\n`);
  return path;
}

beforeAll(async () => {
  buildPlugins();
  dir = mkdtempSync(join(tmpdir(), "cryo-plugins-image-"));
  ns = uniqueId("plugimg");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
}, 300_000);

afterAll(async () => {
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

function run(config: string, id: string, args: string[]) {
  return pc.ctr(["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", config, testImage, id, ...args], { timeoutMs: 60_000 });
}

test("readImageInfo: name, the digest ctr shows, the config; an unknown container is NOT_FOUND", async () => {
  const id = uniqueId("info");
  await pc.ctrOk(["containers", "create", testImage, id, "true"]);
  try {
    const info = await readImageInfo({ address: pc.address, namespace: ns, containerId: id, timeoutMs: 10_000 });
    const listed = (await pc.ctrOk(["images", "ls"])).split("\n").find((l) => l.split(/\s+/)[0] === testImage);
    expect(listed).toBeDefined();
    const digest = listed?.split(/\s+/).find((w) => w.startsWith("sha256:"));
    expect(info?.name).toBe(testImage);
    expect(info?.digest).toBe(digest as string);
    expect(info?.config.os).toBe("linux");
    expect(info?.config.rootfs).toMatchObject({ type: "layers" });
    expect(info?.labels).toBeDefined();
  } finally {
    await pc.ctr(["containers", "rm", id]);
  }
  const missing = await readImageInfo({ address: pc.address, namespace: ns, containerId: uniqueId("none"), timeoutMs: 10_000 }).catch((e) => e);
  expect(isCode(missing, Code.NOT_FOUND)).toBe(true);
}, 60_000);

test("registry-allowlist listing localhost admits localhost/cryo-test:latest (the plugin saw the image)", async () => {
  const r = await run(allowlistConfig("allow-localhost", "localhost"), uniqueId("allow"), ["sh", "-c", "echo admitted"]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("admitted\n");
  expect(r.exitCode).toBe(0);
}, 60_000);

test("registry-allowlist listing only docker.io denies it with a reason naming the image", async () => {
  const id = uniqueId("deny");
  const r = await run(allowlistConfig("allow-dockerio", "docker.io"), id, ["sh", "-c", "echo should-not-run"]);
  expect(r.exitCode).not.toBe(0);
  expect(r.stdout).not.toContain("should-not-run");
  expect(r.stderr).toContain(
    `container ${id}: denied by plugin registry-allowlist: image ${testImage} is from registry localhost, which is not in the allowlist (docker.io)`,
  );
  await pc.ctr(["containers", "rm", id]);
}, 60_000);
