import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hookSchemas } from "../../../src/plugins/hook-schemas.ts";

const dir = join(import.meta.dir, "../../../plugins/testdata/inputs");

test("every sample input of plugins/testdata/inputs fits its hook's input schema (HOOK-NAME.json), and each hook has one", () => {
  const names = readdirSync(dir).filter((n) => n.endsWith(".json"));
  const hooks = new Set<string>();
  for (const name of names) {
    const hook = name.split("-")[0] as keyof typeof hookSchemas;
    expect(Object.keys(hookSchemas)).toContain(hook);
    const parsed = hookSchemas[hook].input.safeParse(JSON.parse(readFileSync(join(dir, name), "utf8")));
    expect({ name, issues: parsed.success ? [] : parsed.error.issues }).toEqual({ name, issues: [] });
    hooks.add(hook);
  }
  expect([...hooks].sort()).toEqual(Object.keys(hookSchemas).sort());
});
