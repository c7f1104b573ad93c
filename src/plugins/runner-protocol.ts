/**
 * The messages between the plugin host (in the shim or CLI) and the plugin runner process, over
 * Bun's IPC channel. Both ends validate what they receive.
 */
import { z } from "zod";

/** Host -> runner: compile a plugin under `key` (instantiated by an `init`). */
export const loadRequestSchema = z.strictObject({
  t: z.literal("load"),
  id: z.number().int(),
  key: z.string(),
  wasm: z.instanceof(Uint8Array),
  config: z.record(z.string(), z.string()),
  maxPages: z.number().int().positive(),
  allowedHosts: z.array(z.string()),
});

/**
 * Host -> runner: instantiate plugin `key`, which runs the module's start function: the plugin's own code, so it
 * runs under the plugin's time limit, not the load's.
 */
export const initRequestSchema = z.strictObject({
  t: z.literal("init"),
  id: z.number().int(),
  key: z.string(),
});

/** Host -> runner: call export `fn` of plugin `key` with `input`. */
export const callRequestSchema = z.strictObject({
  t: z.literal("call"),
  id: z.number().int(),
  key: z.string(),
  fn: z.string(),
  input: z.string(),
});

/** Any request to the runner. */
export const runnerRequestSchema = z.discriminatedUnion("t", [loadRequestSchema, initRequestSchema, callRequestSchema]);
/** Any request to the runner. */
export type RunnerRequest = z.infer<typeof runnerRequestSchema>;

/** A log line a plugin wrote (Extism log_* functions) during the request. */
export const pluginLogSchema = z.strictObject({ level: z.string(), message: z.string() });
/** A plugin log line. */
export type PluginLog = z.infer<typeof pluginLogSchema>;

/** Why a request failed inside the runner. */
export const failureKindSchema = z.enum(["trap", "memory", "network", "http", "missing-export", "load", "not-loaded"]);
/** Why a request failed inside the runner. */
export type FailureKind = z.infer<typeof failureKindSchema>;

/** Runner -> host: the answer to one request. */
export const runnerReplySchema = z.discriminatedUnion("ok", [
  z.strictObject({
    id: z.number().int(),
    ok: z.literal(true),
    output: z.string().nullable(),
    memoryBytes: z.number().int().nonnegative(),
    durationMs: z.number().nonnegative(),
    logs: z.array(pluginLogSchema),
  }),
  z.strictObject({
    id: z.number().int(),
    ok: z.literal(false),
    kind: failureKindSchema,
    message: z.string(),
    memoryBytes: z.number().int().nonnegative(),
    durationMs: z.number().nonnegative(),
    logs: z.array(pluginLogSchema),
  }),
]);
/** Runner -> host: the answer to one request. */
export type RunnerReply = z.infer<typeof runnerReplySchema>;

/** The environment variable that turns a cryo binary into a plugin runner (see runner-main.ts). */
export const runnerEnvVar = "CRYO_PLUGIN_RUNNER";
