/**
 * `cryo check` on this machine, through the shim binary's own CRIU helper (libcriu by bun:ffi): what it says of CRIU's
 * features must be what cryo's CRIU says of itself (`criu check --feature ...`, run here directly), and a missing
 * libcriu or CRIU binary is a failure naming it, with exit status 1.
 */
import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { CRYO_CRIU_PATH } from "../../src/criu/binary.ts";

const bun = process.execPath;
const main = resolve(import.meta.dir, "../../src/cli/main.ts");
const shim = resolve(import.meta.dir, "../../build/bin/containerd-shim-cryo-v2");

type Finding = { check: string; status: string; detail: string };

async function check(args: string[], env: Record<string, string> = {}, shimPath = shim) {
  const proc = Bun.spawn([bun, main, "check", "--shim", shimPath, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exitCode };
}

/** cryo's CRIU on one feature, asked directly: true when supported. */
const criuHas = (feature: string) => Bun.spawnSync([CRYO_CRIU_PATH, "check", "--feature", feature], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

test("cryo check through the shim's CRIU helper: CRIU 4.2+, criu check passes, and its feature lines agree with criu check --feature", async () => {
  const r = await check(["--format", "json"]);
  expect(r.stderr).toBe("");
  const findings = JSON.parse(r.stdout) as Finding[];
  const by = (name: string) => findings.find((f) => f.check === name);
  expect(r.exitCode).toBe(findings.some((f) => f.status === "fail") ? 1 : 0);
  expect(by("criu version")).toMatchObject({ status: "ok", detail: expect.stringMatching(/^CRIU 4\.([2-9]|\d\d)/) });
  expect(by("criu check")?.status).toBe("ok");
  expect(by("pre-dump")?.status).toBe(criuHas("mem_dirty_track") ? "ok" : "warn");
  expect(by("lazy pages")?.status).toBe(criuHas("uffd-noncoop") ? "ok" : "warn");
  expect(by("runc")).toMatchObject({ status: "ok", detail: expect.stringContaining("runc version") });
  expect(by("cgroups")?.status).toBe("ok");
  // The text form: the same checks, one line each, then the counts.
  const text = await check([]);
  expect(text.exitCode).toBe(r.exitCode);
  const lines = text.stdout.trim().split("\n");
  expect(lines.length).toBe(findings.length + 1);
  expect(lines.at(-1)).toMatch(/^cryo check: \d+ ok, \d+ warning\(s\), \d+ failure\(s\)$/);
}, 60_000);

test("a libcriu that cannot be loaded, a CRIU binary that is not there, or a shim that is not cryo's fails cryo check naming it (exit 1)", async () => {
  const noLib = await check(["--format", "json"], { CRYO_LIBCRIU: "/nonexistent/libcriu.so" });
  expect(noLib.exitCode).toBe(1);
  expect((JSON.parse(noLib.stdout) as Finding[]).find((f) => f.check === "criu version")).toMatchObject({ status: "fail", detail: expect.stringContaining("/nonexistent/libcriu.so") });
  const noCriu = await check(["--format", "json"], { CRYO_CRIU: "/nonexistent/criu" });
  expect(noCriu.exitCode).toBe(1);
  expect((JSON.parse(noCriu.stdout) as Finding[]).find((f) => f.check === "criu binary")).toMatchObject({ status: "fail", detail: expect.stringContaining("/nonexistent/criu") });
  // Another program as the shim is refused before it is run as the CRIU helper.
  const notShim = await check(["--format", "json"], {}, "/bin/true");
  expect(notShim.exitCode).toBe(1);
  const found = JSON.parse(notShim.stdout) as Finding[];
  expect(found.find((f) => f.check === "shim")).toMatchObject({ status: "fail", detail: "/bin/true: not cryo's shim (its -v does not print cryo's version)" });
  expect(found.find((f) => f.check === "criu version")).toBeUndefined();
}, 60_000);
