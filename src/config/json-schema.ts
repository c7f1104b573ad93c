/** JSON Schema of the whole config file, generated from the zod schema (for editors and other tools). */
import { z } from "zod";
import { cryoConfigSchema } from "./schema.ts";

/** The config file's JSON Schema (draft 2020-12), describing the file as written (defaults optional). */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(cryoConfigSchema, { io: "input", target: "draft-2020-12" }) as Record<string, unknown>;
}
