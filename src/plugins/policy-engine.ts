/**
 * The policy engine: the tiny API the shim calls at Create, Checkpoint and Restore.
 *
 * Plugins run in config order, each only on the containers its match rules select:
 * - admit: stops at the first deny; each plugin sees the spec as changed by the plugins before it,
 *   and the changes compose (the later plugin wins per key, removed mounts accumulate);
 * - checkpointOptions / restoreAdmission: the requested options fold through the chain (each
 *   plugin's options are merged over what it was given); stops at the first deny.
 * A deny is a PERMISSION_DENIED error carrying the plugin's reason. A broken plugin (trap, timeout,
 * memory, bad output) is an error naming plugin and hook, unless that plugin is configured
 * `failure = "open"`: then it counts as "allow, no changes" and a warning is logged.
 */
import { Code, CryoError } from "../errors.ts";
import type { PluginConfig, PolicyConfig } from "./config.ts";
import { loadPolicyConfig, type ConfigSearch } from "./config-loader.ts";
import type {
  AdmitInput,
  CheckpointInput,
  CheckpointOptions,
  HookInputs,
  HookName,
  HookOutputs,
  OciSpec,
  RestoreInput,
  RestoreOptions,
  SpecChanges,
} from "./hook-schemas.ts";
import { matches, type MatchSubject } from "./match.ts";
import { createPluginHost, type LoadedPlugin, type PluginHost } from "./plugin-host.ts";
import { applySpecChanges, mergeSpecChanges } from "./spec-changes.ts";

/** Where the engine reports warnings (fail-open) and plugin log lines. */
export type PolicyLogger = (level: "info" | "warn" | "error", message: string) => void;

/** The result of admission: the spec runc should see and what was changed. */
export interface AdmitDecision {
  spec: OciSpec;
  changes: SpecChanges;
  /** Names of the plugins that were consulted, in order. */
  consulted: string[];
  /** Names of the plugins whose changes were applied, in order. */
  changedBy: string[];
}

/** The options to use after the chain, and who was consulted. */
export interface OptionsDecision<T> {
  options: T;
  consulted: string[];
}

/** What the shim calls. Every method throws PERMISSION_DENIED on a deny. */
export interface PolicyEngine {
  /** Names of the configured plugins, in order. */
  readonly plugins: readonly string[];
  /** Container admission at Create: returns the spec to give runc. */
  admit(input: AdmitInput): Promise<AdmitDecision>;
  /** Checkpoint options before CRIU dumps: returns the options to use. */
  checkpointOptions(input: CheckpointInput): Promise<OptionsDecision<CheckpointOptions>>;
  /** Restore admission before CRIU restores: returns the restore options to use. */
  restoreAdmission(input: RestoreInput): Promise<OptionsDecision<RestoreOptions>>;
  /**
   * Starts the plugin runner and loads every plugin now (call it at daemon start without awaiting),
   * so that the first hook call does not pay for a process start and module instantiation.
   */
  warm(): Promise<void>;
  /** Stops the plugin runner. */
  close(): Promise<void>;
}

/** Options of {@link createPolicyEngine}. */
export interface PolicyEngineOptions {
  /** Defaults to writing to stderr. */
  log?: PolicyLogger;
}

/** "container ID in namespace NS", for log lines about a hook's call. */
function subjectOf(input: unknown): string {
  const { id, namespace } = (input ?? {}) as { id?: unknown; namespace?: unknown };
  return `container ${typeof id === "string" ? id : "?"}${typeof namespace === "string" ? ` in namespace ${namespace}` : ""}`;
}

const defaultLog: PolicyLogger = (level, message) => console.error(`cryo plugins ${level}: ${message}`);

/** Builds the engine for a validated config; every plugin is read and checked now (errors name it). */
export function createPolicyEngine(config: PolicyConfig, options: PolicyEngineOptions = {}): PolicyEngine {
  const log = options.log ?? defaultLog;
  const host: PluginHost = createPluginHost();
  let loaded: LoadedPlugin[];
  try {
    loaded = config.plugins.map((p) => host.load(p));
  } catch (err) {
    void host.close();
    throw err;
  }

  /**
   * Runs one plugin's hook; a failure of a fail-open plugin becomes null (= allow, nothing changed). A failure of a
   * fail-closed one names `what` (`checkpoint of container c1`) before the plugin, as a deny does.
   */
  async function run<H extends HookName>(p: LoadedPlugin, hook: H, input: HookInputs[H], what: string): Promise<HookOutputs[H] | null> {
    try {
      const result = await host.call(p, hook, input);
      for (const l of result.logs) log(l.level === "error" ? "error" : l.level === "warn" ? "warn" : "info", `plugin ${p.config.name} (${hook} of ${subjectOf(input)}): ${l.message}`);
      return result.output;
    } catch (err) {
      const e = CryoError.from(err);
      if (p.config.failure === "open" && e.code !== Code.INVALID_ARGUMENT) {
        log("warn", `${subjectOf(input)}: ${e.message} (failure = "open": allowing)`);
        return null;
      }
      throw e.wrap(what);
    }
  }

  function selected(hook: HookName, subject: MatchSubject): LoadedPlugin[] {
    return loaded.filter((p) => p.config.hooks.includes(hook) && matches(p.config.match, subject));
  }

  function denied(what: string, plugin: PluginConfig, reason: string | undefined): CryoError {
    return new CryoError(Code.PERMISSION_DENIED, `${what}: denied by plugin ${plugin.name}: ${reason ? capReason(reason) : "no reason given"}`);
  }

  return {
    plugins: config.plugins.map((p) => p.name),

    async admit(input) {
      let spec = input.spec;
      let changes: SpecChanges = {};
      const consulted: string[] = [];
      const changedBy: string[] = [];
      const subject = { namespace: input.namespace, annotations: input.annotations, image: input.image?.name ?? null };
      const what = `container ${input.id}`;
      for (const p of selected("admit", subject)) {
        consulted.push(p.config.name);
        const out = await run(p, "admit", { ...input, spec, annotations: spec.annotations ?? input.annotations }, what);
        if (out === null) continue;
        if (!out.allow) throw denied(what, p.config, out.reason);
        if (out.changes && input.restore) out.changes = restoreChanges(out.changes, (dropped) => log("warn", `plugin ${p.config.name} (admit of ${subjectOf(input)}): ${dropped.join(", ")} not applied: a restored container's processes and mounts come back from its checkpoint`));
        if (out.changes && Object.keys(out.changes).length > 0) {
          spec = applySpecChanges(spec, out.changes);
          changes = mergeSpecChanges(changes, out.changes);
          changedBy.push(p.config.name);
        }
      }
      return { spec, changes, consulted, changedBy };
    },

    async checkpointOptions(input) {
      let requested = input.requested;
      const consulted: string[] = [];
      const subject = { namespace: input.namespace, annotations: input.annotations, image: input.image?.name ?? null };
      const what = `checkpoint of container ${input.id}`;
      for (const p of selected("checkpoint", subject)) {
        consulted.push(p.config.name);
        const out = await run(p, "checkpoint", { ...input, requested }, what);
        if (out === null) continue;
        if (!out.allow) throw denied(what, p.config, out.reason);
        requested = { ...requested, ...out.options };
      }
      return { options: requested, consulted };
    },

    async restoreAdmission(input) {
      let requested = input.requested;
      const consulted: string[] = [];
      const cp = input.checkpoint;
      const subject = { namespace: input.namespace, annotations: cp.annotations, image: cp.image?.name ?? null };
      const what = `restore of container ${input.id}`;
      for (const p of selected("restore", subject)) {
        consulted.push(p.config.name);
        const out = await run(p, "restore", { ...input, requested }, what);
        if (out === null) continue;
        if (!out.allow) throw denied(what, p.config, out.reason);
        requested = { ...requested, ...out.options };
      }
      return { options: requested, consulted };
    },

    async warm() {
      for (const p of loaded) await host.preload(p);
    },

    close: () => host.close(),
  };
}

/** Finds and loads the config by the documented search order and builds the engine (call once at shim start). */
export function loadPolicyEngine(search: ConfigSearch = {}, options: PolicyEngineOptions = {}): PolicyEngine & { source: string | null } {
  const { source, config } = loadPolicyConfig(search);
  try {
    return Object.assign(createPolicyEngine(config, options), { source });
  } catch (err) {
    // A plugin that cannot be loaded (its file, its imports and exports) is a mistake in the config: say which.
    throw source ? CryoError.from(err).wrap(`config ${source}`) : err;
  }
}

/**
 * The most of a deny reason shown, as of a plugin's log line: a reason goes into the error that reaches containerd and
 * its client, and ttrpc and gRPC refuse a message over 4 MiB, which would lose the deny and the plugin's name with it.
 */
export const MAX_REASON_CHARS = 4096;

/** A deny reason as the shim reports it: cut at MAX_REASON_CHARS (`... (N more characters)`). */
export function capReason(reason: string): string {
  return reason.length <= MAX_REASON_CHARS ? reason : `${reason.slice(0, MAX_REASON_CHARS)}... (${reason.length - MAX_REASON_CHARS} more characters)`;
}

/**
 * The changes of an admit plugin that take effect at a restore's Create: resources (the restore applies the new spec's
 * cgroup limits) and annotations (they set the restored container's later checkpoints). Its env and mounts come back
 * from the checkpoint, so changes to them would only make config.json say what the container does not have.
 */
function restoreChanges(changes: SpecChanges, warn: (dropped: string[]) => void): SpecChanges {
  const { env, removeMounts, ...kept } = changes;
  const dropped = [env !== undefined && Object.keys(env).length > 0 && "env", removeMounts !== undefined && removeMounts.length > 0 && "removeMounts"].filter((x): x is string => x !== false);
  if (dropped.length > 0) warn(dropped);
  return kept;
}
