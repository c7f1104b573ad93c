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
