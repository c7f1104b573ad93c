/** oci-hooks.ts: a restore's OCI hooks run as runc runs them. */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CryoError } from "../../../src/errors.ts";
import { runOciHooks } from "../../../src/shim/oci-hooks.ts";
import { specHooksOf } from "../../../src/shim/restore-state-file.ts";

const dir = mkdtempSync("/tmp/cryo-oci-hooks-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const state = { ociVersion: "1.0.2", id: "c1", status: "stopped", pid: 42, bundle: dir, annotations: { a: "b" } };

test("each hook gets its args (args[0] as argv[0]), its env only, the state on stdin and the bundle as its directory, in order", async () => {
  const out = join(dir, "out");
  const hook = join(dir, "hook.sh");
  writeFileSync(hook, `#!/bin/sh\necho "$1|$(pwd)|$HOOK_ENV|$HOME|$(cat)" >> ${out}\n`, { mode: 0o755 });
  // argv[0] is args[0], not the path: busybox runs the applet argv[0] names.
  const argv0 = { path: "/bin/busybox", args: ["sh", "-c", `echo argv0 >> ${out}`] };
  await runOciHooks("prestart", [{ path: hook, args: ["first", "one"], env: ["HOOK_ENV=x=y", "PATH=/bin:/usr/bin"] }, { path: hook }, argv0], state, dir);
  expect(readFileSync(out, "utf8").trim().split("\n")).toEqual([`one|${dir}|x=y||${JSON.stringify(state)}`, `|${dir}||${process.env.HOME ?? ""}|${JSON.stringify(state)}`, "argv0"]);
});

test("a hook that exits non-zero, cannot be run, or outlives its timeout fails with runc's words, and the hooks after it do not run", async () => {
  const out = join(dir, "after");
  const fails = join(dir, "fails.sh");
  writeFileSync(fails, "#!/bin/sh\necho said; echo complained >&2; exit 3\n", { mode: 0o755 });
  const after = { path: "/bin/sh", args: ["sh", "-c", `touch ${out}`] };
  const err = (p: Promise<void>) => p.then(() => undefined, (e: unknown) => e as CryoError);
  const e1 = await err(runOciHooks("createRuntime", [{ path: "/bin/true" }, { path: fails }, after], state, dir));
  expect(e1?.message).toBe("error running createRuntime hook #1: exit status 3, stdout: said, stderr: complained");
  const e2 = await err(runOciHooks("prestart", [{ path: join(dir, "missing") }], state, dir));
  expect(e2?.message).toStartWith(`error running prestart hook #0: cannot run ${join(dir, "missing")}`);
  const e3 = await err(runOciHooks("prestart", [{ path: "/bin/sleep", args: ["sleep", "60"], timeout: 1 }], state, dir));
  expect(e3?.message).toBe("error running prestart hook #0: timeout after 1 seconds");
  expect(() => readFileSync(out)).toThrow();
});

test("the spec's hooks of a kind; none, or no hooks at all, is an empty list", () => {
  expect(specHooksOf({ prestart: [{ path: "/x" }] }, "prestart")).toEqual([{ path: "/x" }]);
  expect(specHooksOf({ prestart: [{ path: "/x" }] }, "createRuntime")).toEqual([]);
  expect(specHooksOf(undefined, "prestart")).toEqual([]);
});
