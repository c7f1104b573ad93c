import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configCheckCommand } from "../../../src/config/check-command.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { builtPlugins } from "../plugins/built-plugins.ts";

let dir = "";
let plugins = "";
beforeAll(() => {
  plugins = builtPlugins();
  dir = mkdtempSync("/tmp/cryo-config-check-");
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function check(name: string, text: string): Promise<{ out: string } | CryoError> {
  const file = join(dir, name);
  writeFileSync(file, text);
  let out = "";
  try {
    expect(await configCheckCommand.run([file], { out: (t) => void (out += `${t}\n`), err: () => {} })).toBe(0);
    return { out };
  } catch (err) {
    if (err instanceof CryoError) return err;
    throw err;
  }
}

test("a good config: its plugins in order with their limits and match rules, and its sections", async () => {
  const r = await check("good.toml", `[[plugins]]\nname = "set-env"\npath = "${join(plugins, "set-env.wasm")}"\nhooks = ["admit"]\nmatch = { namespaces = ["prod-*"] }\n[checkpoint]\ntcp_established = true\n`);
  expect(r).not.toBeInstanceOf(CryoError);
  expect((r as { out: string }).out).toBe(
    [
      `config ${join(dir, "good.toml")}: ok`,
      "plugins (in order):",
      `  set-env: hooks admit; ${join(plugins, "set-env.wasm")}; failure closed; 1000 ms, 32 MiB; match {"namespaces":["prod-*"]}`,
      "[checkpoint]: tcp_established=true",
      "[restore]: cryo's defaults",
      "[shim]: cryo's defaults",
      "",
    ].join("\n"),
  );
});

test("[restore] manage_cgroups_mode = \"strict\" is read, with a note that it fails every restore here", async () => {
  const r = await check("strict.toml", `[restore]\nmanage_cgroups_mode = "strict"\n`);
  expect(r).not.toBeInstanceOf(CryoError);
  const out = (r as { out: string }).out;
  expect(out).toContain(`[restore]: manage_cgroups_mode="strict"\nnote: [restore] manage_cgroups_mode = "strict" fails every restore (FAILED_PRECONDITION, before CRIU runs)`);
  // full is not noted.
  const full = await check("full.toml", `[restore]\nmanage_cgroups_mode = "full"\n`);
  expect((full as { out: string }).out).not.toContain("note:");
});

test("the [shim] section is shown too, with where a daemon reads it", async () => {
  const r = await check("shim.toml", "[shim]\nmax_parallel_execs = 4\n");
  expect((r as { out: string }).out.split("\n").at(-2)).toBe(
    "[shim]: max_parallel_execs=4 (a shim daemon reads these from its own config, CRYO_CONFIG or /etc/cryo, not from a container's runtime options config path)",
  );
});

test("what the shim would refuse at a Create is refused with the shim's error: a plugin's missing export, options that cannot go together, a parse error", async () => {
  const missing = await check("missing.toml", `[[plugins]]\nname = "set-env"\npath = "${join(plugins, "set-env.wasm")}"\nhooks = ["admit", "restore"]\n`);
  expect((missing as CryoError).code).toBe(Code.INVALID_ARGUMENT);
  expect((missing as CryoError).message).toBe(`config ${join(dir, "missing.toml")}: plugin set-env: invalid argument: hooks lists "restore" but the module has no export "restore" (its functions: admit)`);
  const combo = await check("combo.toml", "[checkpoint]\npre_dump = true\nlazy_pages = true\n");
  expect((combo as CryoError).message).toStartWith("checkpoint options: invalid argument: pre-dump cannot be combined with lazy pages");
  const json = await check("c.json", '{ "plugins": [], }');
  expect((json as CryoError).message).toBe(`config ${join(dir, "c.json")}: invalid argument: cannot parse: JSON Parse error: Property name must be a string literal`);
});

test("a FILE that is not there or is a directory is a failure (NOT_FOUND, FAILED_PRECONDITION: exit 1), not the shim's INVALID_ARGUMENT (exit 2); so is such a CRYO_CONFIG", async () => {
  const refusal = (args: string[]) => configCheckCommand.run(args, { out: () => {}, err: () => {} }).then(() => undefined, (e: unknown) => e as CryoError);
  const absent = await refusal([join(dir, "nope.toml")]);
  expect([absent?.code, absent?.message]).toEqual([Code.NOT_FOUND, `config ${join(dir, "nope.toml")}: not found`]);
  const asDir = await refusal([dir]);
  expect([asDir?.code, asDir?.message]).toEqual([Code.FAILED_PRECONDITION, `config ${dir}: failed precondition: ${dir} is a directory, not a file`]);
  // A FIFO: refused without waiting on it (the read waited for a writer), a failure of the path as a directory is.
  const fifo = join(dir, "fifo.toml");
  Bun.spawnSync(["mkfifo", fifo]);
  const asFifo = await refusal([fifo]);
  expect([asFifo?.code, asFifo?.message]).toEqual([Code.FAILED_PRECONDITION, `config ${fifo}: failed precondition: ${fifo} is a FIFO, not a regular file`]);
  // A file that passes the access check and still may not be opened, even by root: a write-only sysfs attribute
  // (kernfs refuses a read open of it with EACCES). /proc/1/mem was not one: in a pid namespace (CI runs the tests in
  // one) its pid 1 is the tests' own parent, whose mem opens and fails the read with EIO.
  const wo = "/sys/bus/platform/drivers_probe";
  const writeOnly = await refusal([wo]);
  expect([writeOnly?.code, writeOnly?.message]).toEqual([Code.PERMISSION_DENIED, `config ${wo}: permission denied: uid ${process.getuid?.()} may not open ${wo}`]);
  const saved = process.env.CRYO_CONFIG;
  process.env.CRYO_CONFIG = join(dir, "nope.toml");
  try {
    const env = await refusal([]);
    expect([env?.code, env?.message]).toEqual([Code.NOT_FOUND, `config ${join(dir, "nope.toml")} (CRYO_CONFIG): not found`]);
  } finally {
    if (saved === undefined) delete process.env.CRYO_CONFIG;
    else process.env.CRYO_CONFIG = saved;
  }
});
