import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { admitInputSchema, admitOutputSchema, checkpointOutputSchema, restoreInputSchema } from "../../../src/plugins/hook-schemas.ts";
import { hookJsonSchemas, schemaFileText } from "../../../src/plugins/json-schema.ts";

const schemaDir = join(import.meta.dir, "../../../plugins/sdk/schema");

describe("hook schemas", () => {
  test("admit input keeps unknown spec fields and fills image labels", () => {
    const parsed = admitInputSchema.parse({
      id: "c1",
      namespace: "default",
      bundle: "/b",
      annotations: {},
      spec: { ociVersion: "1.0.2", vendorThing: { x: 1 }, process: { args: ["sh"], extra: true } },
      image: { name: "docker.io/library/busybox:latest" },
    });
    expect(parsed.spec.vendorThing).toEqual({ x: 1 });
    expect((parsed.spec.process as Record<string, unknown>).extra).toBe(true);
    expect(parsed.image?.labels).toEqual({});
  });

  test("admit output rejects unknown change kinds and wrong types", () => {
    expect(admitOutputSchema.safeParse({ allow: true, changes: { env: { A: "1" }, removeMounts: ["/x"] } }).success).toBe(true);
    expect(admitOutputSchema.safeParse({ allow: "yes" }).success).toBe(false);
    expect(admitOutputSchema.safeParse({ allow: true, changes: { privileged: true } }).success).toBe(false);
    expect(admitOutputSchema.safeParse({ allow: true, changes: { resources: { memory: { limit: 1.5 } } } }).success).toBe(false);
  });

  test("admit output changes that would make a bad spec are refused: env names empty or with =, empty annotation keys, limits below -1", () => {
    const ok = (changes: unknown) => admitOutputSchema.safeParse({ allow: true, changes }).success;
    expect(ok({ env: { TEAM: "a", "": "x" } })).toBe(false);
    expect(ok({ env: { "A=B": "c" } })).toBe(false);
    expect(ok({ annotations: { "": "x" } })).toBe(false);
    expect(ok({ resources: { memory: { limit: -5 } } })).toBe(false);
    expect(ok({ resources: { pids: { limit: -2 } } })).toBe(false);
    expect(ok({ env: { TEAM: "a" }, annotations: { "a.b/c": "" }, resources: { memory: { limit: -1, swap: -1 }, pids: { limit: 0 }, cpu: { quota: -1 } } })).toBe(true);
  });

  test("checkpoint output options are the CRIU option set", () => {
    expect(checkpointOutputSchema.safeParse({ allow: true, options: { tcpEstablished: true, cgroupsMode: "soft" } }).success).toBe(true);
    expect(checkpointOutputSchema.safeParse({ allow: true, options: { cgroupsMode: "sometimes" } }).success).toBe(false);
    expect(checkpointOutputSchema.safeParse({ allow: true, options: { tcpEstablishd: true } }).success).toBe(false);
  });

  test("restore input requires the checkpoint metadata", () => {
    const base = { id: "c1", namespace: "n", requested: {} };
    expect(restoreInputSchema.safeParse(base).success).toBe(false);
    const checkpoint = { containerId: "c0", originHost: "h", kernel: "6.18", criuVersion: "4.2.1", image: null, createdAt: "2026-01-01T00:00:00Z", annotations: {} };
    expect(restoreInputSchema.safeParse({ ...base, checkpoint }).success).toBe(true);
  });

  test("the committed JSON Schema files are generated from the zod schemas (run plugins/gen-schema.ts)", () => {
    const schemas = hookJsonSchemas();
    expect(Object.keys(schemas).sort()).toEqual([
      "admit-input.json",
      "admit-output.json",
      "checkpoint-input.json",
      "checkpoint-output.json",
      "restore-input.json",
      "restore-output.json",
    ]);
    for (const [file, schema] of Object.entries(schemas)) {
      expect(readFileSync(join(schemaDir, file), "utf8")).toBe(schemaFileText(schema));
    }
  });
});
