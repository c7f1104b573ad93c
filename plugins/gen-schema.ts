// Writes the hooks' JSON Schema (generated from src/plugins/hook-schemas.ts) to plugins/sdk/schema/.
// Run: node_modules/.bin/bun plugins/gen-schema.ts   (test/unit/plugins/json-schema.test.ts checks it is current)
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hookJsonSchemas, schemaFileText } from "../src/plugins/json-schema.ts";

const dir = join(import.meta.dir, "sdk", "schema");
mkdirSync(dir, { recursive: true });
for (const [file, schema] of Object.entries(hookJsonSchemas())) {
  writeFileSync(join(dir, file), schemaFileText(schema));
  console.log(`wrote ${join(dir, file)}`);
}
