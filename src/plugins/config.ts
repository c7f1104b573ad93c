/**
 * cryo's policy configuration: which plugins run, in which order, on which containers, with which
 * limits and grants. One file, TOML or JSON, with the same keys (snake_case):
 *
 * ```toml
 * [[plugins]]
 * name = "deny-privileged"
 * path = "plugins/deny-privileged.wasm"   # relative to the config file's folder
 * hooks = ["admit"]
 * failure = "closed"                     # or "open": a broken plugin then allows, with a warning
 * match = { namespaces = ["default", "prod-*"], images = ["docker.io/*"], annotations = { "cryo.policy" = "on" } }
 * config = { reason = "no privileged containers here" }   # passed to the plugin as Extism config
 * limits = { timeout_ms = 500, memory_mib = 32 }
 * grants = { allowed_hosts = [], allowed_paths = {} }      # nothing unless granted
 * ```
 */
import { z } from "zod";
import { hookNameSchema } from "./hook-names.ts";

/** Default per-call time limit. */
export const defaultTimeoutMs = 1000;
/** Default memory limit of a plugin's linear memory. */
export const defaultMemoryMib = 32;

const globList = z.array(z.string().min(1));

/** Which containers a plugin applies to; every given rule must match (empty = all). */
export const matchRulesSchema = z.strictObject({
  namespaces: globList.optional().describe("containerd namespace globs; one must match"),
  images: globList.optional().describe("image reference globs; one must match (unknown image: no match)"),
  annotations: z
    .record(z.string(), z.string())
    .optional()
    .describe("annotation key -> value glob; all must match"),
});
/** Which containers a plugin applies to. */
export type MatchRules = z.infer<typeof matchRulesSchema>;

/** One plugin's configuration entry. */
export const pluginConfigSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]*$/, "must be lower-case letters, digits, '.', '_' or '-'")
    .describe("the name used in logs and errors"),
  path: z.string().min(1).describe("path to the .wasm file, relative to the config file's folder"),
  hooks: z.array(hookNameSchema).min(1).describe("hooks this plugin implements (exports of the same name)"),
  failure: z.enum(["closed", "open"]).default("closed"),
  match: matchRulesSchema.default({}),
  config: z.record(z.string(), z.string()).default({}).describe("values the plugin reads with Config.get"),
  limits: z
    .strictObject({
      timeout_ms: z.number().int().positive().max(60_000).default(defaultTimeoutMs),
      memory_mib: z.number().int().positive().max(4096).default(defaultMemoryMib),
    })
    .default({ timeout_ms: defaultTimeoutMs, memory_mib: defaultMemoryMib }),
  grants: z
    .strictObject({
      allowed_hosts: z
        .array(
          z
            .string()
            .regex(/^(\[[0-9A-Fa-f:.*?]+\]|[^\s/:\[\]@]+)$/, "must be a host name or IP address (globs * and ?; IPv6 in [ ]), without scheme, port or path"),
        )
        .default([])
        .describe("hosts the plugin may reach with Extism's HTTP requests (matched against the URL's host name)"),
      allowed_paths: z.record(z.string(), z.string()).default({}),
    })
    .default({ allowed_hosts: [], allowed_paths: {} }),
});
/** One plugin's configuration entry, with defaults filled in. */
export type PluginConfig = z.infer<typeof pluginConfigSchema>;

/** The whole policy configuration file. */
export const policyConfigSchema = z
  .strictObject({
    plugins: z.array(pluginConfigSchema).default([]),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.plugins.forEach((p, i) => {
      if (seen.has(p.name)) ctx.addIssue({ code: "custom", path: ["plugins", i, "name"], message: `duplicate plugin name "${p.name}"` });
      seen.add(p.name);
    });
  });
/** The policy configuration, validated, with plugin paths as written in the file. */
export type PolicyConfig = z.infer<typeof policyConfigSchema>;

/** A configuration with no plugins: every hook allows and changes nothing. */
export const emptyPolicyConfig: PolicyConfig = { plugins: [] };
