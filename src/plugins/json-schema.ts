/**
 * JSON Schema for plugin authors in any language, generated from the zod hook schemas.
 * Inputs are described as plugins receive them (defaults filled in); outputs as plugins may write them.
 */
import { z } from "zod";
import { hookNames, hookSchemas } from "./hook-schemas.ts";

/** File name -> JSON Schema document, for plugins/sdk/schema/. */
export function hookJsonSchemas(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const hook of hookNames) {
    out[`${hook}-input.json`] = z.toJSONSchema(hookSchemas[hook].input, { io: "output", target: "draft-2020-12" });
    out[`${hook}-output.json`] = z.toJSONSchema(hookSchemas[hook].output, { io: "input", target: "draft-2020-12" });
  }
  return out;
}

/** The text cryo commits for one schema file (stable formatting, trailing newline). */
export function schemaFileText(schema: unknown): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}
