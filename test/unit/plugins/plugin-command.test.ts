import { expect, test } from "bun:test";
import { pluginTestCommand } from "../../../src/plugins/plugin-command.ts";
import { Code, CryoError } from "../../../src/errors.ts";

const io = { out: () => {}, err: () => {} };
const refusal = (args: string[]) => pluginTestCommand.run(args, io).then(() => undefined, (e: unknown) => e as CryoError);

test("cryo plugin test names what is wrong with its arguments: each missing one, or one plugin too many", async () => {
  const extra = await refusal(["a.wasm", "b.wasm", "--hook", "admit", "--input", "i.json"]);
  expect(extra?.code).toBe(Code.INVALID_ARGUMENT);
  expect(extra?.message).toStartWith("arguments: invalid argument: one PLUGIN.wasm, got 2: a.wasm b.wasm\n");
  expect((await refusal(["--hook", "admit"]))?.message).toStartWith("arguments: invalid argument: missing PLUGIN.wasm, --input\n");
  expect((await refusal(["a.wasm", "--input", "i.json"]))?.message).toStartWith("arguments: invalid argument: missing --hook\n");
});

test("a PLUGIN.wasm or --input that is not there or is a directory is a failure (exit 1), as in every command; before, INVALID_ARGUMENT (exit 2)", async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
  const dir = mkdtempSync("/tmp/cryo-plugin-command-");
  try {
    const input = `${dir}/in.json`;
    writeFileSync(input, "{}");
    const missing = await refusal([`${dir}/nope.wasm`, "--hook", "admit", "--input", input]);
    expect([missing?.code, missing?.message]).toEqual([Code.NOT_FOUND, `plugin ${dir}/nope.wasm: not found`]);
    const noInput = await refusal([input, "--hook", "admit", "--input", `${dir}/nope.json`]);
    expect([noInput?.code, noInput?.message]).toEqual([Code.NOT_FOUND, `input ${dir}/nope.json: not found`]);
    const asDir = await refusal([dir, "--hook", "admit", "--input", input]);
    expect([asDir?.code, asDir?.message]).toEqual([Code.FAILED_PRECONDITION, `plugin ${dir}: failed precondition: ${dir} is a directory, not a file`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cryo plugin schema prints a hook's JSON Schema as plugins/sdk/schema has it; a bad hook or side is named", async () => {
  const { pluginSchemaCommand } = await import("../../../src/plugins/plugin-command.ts");
  const { readFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  for (const [hook, side] of [["admit", "input"], ["restore", "output"]] as const) {
    let printed = "";
    expect(await pluginSchemaCommand.run([hook, side], { out: (t) => void (printed += `${t}\n`), err: () => {} })).toBe(0);
    expect(printed).toBe(readFileSync(join(import.meta.dir, `../../../plugins/sdk/schema/${hook}-${side}.json`), "utf8"));
  }
  const bad = await pluginSchemaCommand.run(["admitt", "input"], io).then(() => undefined, (e: unknown) => e as CryoError);
  expect(bad?.message).toBe('hook "admitt": invalid argument: want one of admit, checkpoint, restore');
});
