/**
 * runc's state.json for a container cryo restored itself, so that runc (kill, ps, exec, pause,
 * delete) and `runc list` manage it like one runc created. runc 1.1.5 keys it on
 * `init_process_pid` + `init_process_start` (field 22 of /proc/<pid>/stat); no `exec.fifo` in the
 * state directory means "running", not "created". The rest is the checkpointed container's state
 * with the new id, bundle, rootfs, pid, namespaces and stdio, as runc's own restore writes it.
 *
 * Not from the checkpoint: the hooks and Intel RDT. The checkpoint may come from anywhere, and runc acts on
 * both as root when it deletes the container (it runs the poststop hooks, and removes the RDT directory).
 * The hooks are the new bundle's spec's, as `runc restore` takes them; the RDT group is the one the restore
 * made or joined for the new spec's linux.intelRdt (cgroups/intel-rdt.ts), or none.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DeviceRule } from "../cgroups/v1-devices.ts";
import { NS_PROC_NAME } from "../checkpoint/runc-criu.ts";
import { Code, CryoError, invalidArgument } from "../errors.ts";
import { runcSeccompConfig } from "../seccomp/runc-config.ts";
import { stringifyPreciseJson } from "../sys/precise-json.ts";

/** The start time of pid in clock ticks since boot (/proc/<pid>/stat field 22). */
export function processStartTicks(statText: string): number {
  const close = statText.lastIndexOf(")");
  const fields = statText.slice(close + 2).split(" ");
  // fields[0] is field 3 (state): field 22 is fields[19].
  const v = Number(fields[19]);
  if (close < 0 || !Number.isInteger(v)) throw invalidArgument("/proc/<pid>/stat", { detail: "no start time" });
  return v;
}

/** What changed between the checkpointed container and the restored one. */
export interface RestoredFacts {
  id: string;
  pid: number;
  /** /proc/<pid>/stat field 22. */
  startTicks: number;
  /** RFC 3339 time of the restore. */
  created: string;
  bundle: string;
  rootfs: string;
  /** runc's cgroup_paths for the restored container. */
  cgroupPaths: Record<string, string>;
  /** readlinks of the restored init's stdio as the shim handed it over. */
  descriptors: string[];
  /** The new bundle's spec's `hooks` (OCI format), if any. */
  specHooks?: unknown;
  /** The restored container's namespaces, as confineToSpec made them (types of the dump, paths of the spec). */
  namespaces?: { type: string; path: string }[];
  /** The spec's cgroupsPath (runc's config.cgroups.path). */
  cgroupsPath?: string;
  /** The device rules the restore set (v1-devices.ts runcDeviceRules): runc's config.cgroups.devices. */
  deviceRules?: readonly DeviceRule[];
  /** What `runc exec` applies to the processes it starts, from the new spec (runcSecurityFromSpec). */
  security: RuncSecurity;
  /** The resctrl group the restore put the tasks in, and runc's config.intel_rdt for it (intel-rdt.ts IntelRdtPlan). */
  intelRdt?: { path: string; config: Record<string, string> };
}

/** The keys of runc's config that `runc exec` takes its processes' confinement from. */
export interface RuncSecurity {
  /** configs.Seccomp (src/seccomp/runc-config.ts), or null. */
  seccomp: Record<string, unknown> | null;
  app_armor_profile: string;
  process_label: string;
  mount_label: string;
  no_new_privileges: boolean;
}

/**
 * The confinement runc keeps in its config for the spec, as its specconv sets it at create: the seccomp filter,
 * AppArmor profile, SELinux labels and no_new_privs that `runc exec` gives each process it starts (where the exec's
 * own process spec names none). From the new spec, never the checkpoint's config, which could carry none.
 */
export function runcSecurityFromSpec(spec: { process?: { apparmorProfile?: unknown; selinuxLabel?: unknown; noNewPrivileges?: unknown }; linux?: { seccomp?: unknown; mountLabel?: unknown } }, where: string): RuncSecurity {
  const str = (v: unknown) => (typeof v === "string" ? v : "");
  return {
    seccomp: runcSeccompConfig(spec.linux?.seccomp, where),
    app_armor_profile: str(spec.process?.apparmorProfile),
    process_label: str(spec.process?.selinuxLabel),
    mount_label: str(spec.linux?.mountLabel),
    no_new_privileges: spec.process?.noNewPrivileges === true,
  };
}


/** The keys of config that cryo writes itself; whatever the checkpoint has under them, in any case, goes. */
const OWN_CONFIG_KEYS = ["rootfs", "labels", "hooks", "intel_rdt", "cgroups", "namespaces", "seccomp", "app_armor_profile", "process_label", "mount_label", "no_new_privileges"];

/**
 * The checkpoint's config without the keys cryo sets. runc reads state.json with Go's encoding/json, which
 * matches keys regardless of case, the later one winning: so a key that differs only in case from another (a
 * second "hooks" beside "Hooks") is refused, not just overwritten.
 */
function checkpointConfig(config: Record<string, unknown>): Record<string, unknown> {
  const seen = new Map<string, string>();
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    const folded = k.toLowerCase();
    const other = seen.get(folded);
    if (other !== undefined) throw invalidArgument("checkpoint runc state: config", { detail: `keys ${JSON.stringify(other)} and ${JSON.stringify(k)} differ only in case` });
    seen.set(folded, k);
    if (!OWN_CONFIG_KEYS.includes(folded)) out[k] = v;
  }
  return out;
}

/** The hook lists runc's state.json carries (libcontainer's configs.Hooks names). */
const HOOK_NAMES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] as const;

/** An OCI hook as the spec has it: path, args, env, timeout in seconds. */
export interface SpecHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

function isSpecHook(h: unknown): h is SpecHook {
  if (typeof h !== "object" || h === null) return false;
  const o = h as Record<string, unknown>;
  const strings = (v: unknown) => v === undefined || (Array.isArray(v) && v.every((x) => typeof x === "string"));
  return typeof o.path === "string" && o.path.startsWith("/") && strings(o.args) && strings(o.env) && (o.timeout === undefined || (Number.isInteger(o.timeout) && (o.timeout as number) > 0));
}

/**
 * libcontainer's `Hooks` for state.json from an OCI spec's `hooks`: each list of {path, args, env, dir,
 * timeout (ns, or null)}, or null when empty, as runc writes them. INVALID_ARGUMENT for a malformed hook.
 */
export function runcHooksFromSpec(specHooks: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of HOOK_NAMES) {
    const list = specHooksOf(specHooks, name);
    out[name] = list.length === 0 ? null : list.map((h) => ({ path: h.path, args: h.args ?? null, env: h.env ?? null, dir: "", timeout: h.timeout === undefined ? null : h.timeout * 1e9 }));
  }
  return out;
}

/** The spec's hooks of one kind (none, or null: an empty list). INVALID_ARGUMENT for a malformed one. */
export function specHooksOf(specHooks: unknown, kind: string): SpecHook[] {
  const list = typeof specHooks === "object" && specHooks !== null ? (specHooks as Record<string, unknown>)[kind] : undefined;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list) || !list.every(isSpecHook)) {
    throw invalidArgument(`spec hooks.${kind}`, { detail: "expected a list of {path (absolute), args, env, timeout (seconds > 0)}" });
  }
  return list;
}

/** Builds the state.json object from the checkpointed one (as it was on disk) and the new facts. */
export function restoredRuncState(old: Record<string, unknown>, f: RestoredFacts): Record<string, unknown> {
  const oldConfig = (old.config ?? {}) as Record<string, unknown>;
  const labels = Array.isArray(oldConfig.labels) ? (oldConfig.labels as unknown[]).filter((l): l is string => typeof l === "string" && !l.startsWith("bundle=")) : [];
  const namespaces = f.namespaces ?? (Array.isArray(oldConfig.namespaces) ? (oldConfig.namespaces as { type: string; path: string }[]) : []);
  const config = {
    ...checkpointConfig(oldConfig),
    rootfs: f.rootfs,
    labels: [...labels, `bundle=${f.bundle}`],
    Hooks: runcHooksFromSpec(f.specHooks),
    namespaces,
    ...f.security,
    // cgroupfs, never systemd: runc's systemd manager would stop the unit the checkpoint named at `runc delete`.
    // Of the resources (inline in libcontainer's JSON) only the device rules, which runc's v1 manager needs
    // some resource to exist for; the limits are in the cgroups already, and cryo updates them itself.
    cgroups: {
      path: f.cgroupsPath ?? "",
      scope_prefix: "",
      devices: (f.deviceRules ?? []).map((r) => ({ type: r.type.charCodeAt(0), major: r.major === "*" ? -1 : r.major, minor: r.minor === "*" ? -1 : r.minor, permissions: r.access, allow: r.allow })),
      Systemd: false,
      Rootless: false,
    },
    ...(f.intelRdt ? { intel_rdt: f.intelRdt.config } : {}),
  };
  // As runc records them: every namespace the init is in, at /proc/<init>/ns/<name> (runc exec joins these).
  const namespacePaths: Record<string, string> = {};
  for (const type of Object.keys((old.namespace_paths ?? {}) as Record<string, unknown>)) {
    const name = NS_PROC_NAME[type];
    if (name !== undefined) namespacePaths[type] = `/proc/${f.pid}/ns/${name}`;
  }
  // Only runc's own keys, each written here: another key that differs in case would win in Go's decoder.
  return {
    id: f.id,
    init_process_pid: f.pid,
    init_process_start: f.startTicks,
    created: f.created,
    config,
    rootless: false,
    cgroup_paths: f.cgroupPaths,
    namespace_paths: namespacePaths,
    external_descriptors: f.descriptors,
    intel_rdt_path: f.intelRdt?.path ?? "",
  };
}

/** Writes <root>/<id>/state.json atomically (temp file + rename, as libcontainer does); the directory is 0711. */
export function writeRuncStateFile(root: string, id: string, state: Record<string, unknown>): string {
  const dir = join(root, id);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  chmodSync(dir, 0o711);
  const tmp = join(dir, `state-${process.pid}-${Date.now()}`);
  const path = join(dir, "state.json");
  try {
    writeFileSync(tmp, stringifyPreciseJson(state), { mode: 0o600 });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    // A full /run (ENOSPC) said only "ENOSPC: no space left on device, write" (a helper session).
    const code = (err as NodeJS.ErrnoException).code;
    throw CryoError.from(err, code === "ENOSPC" || code === "EDQUOT" ? Code.RESOURCE_EXHAUSTED : Code.UNKNOWN).wrap(`write runc's state of the restored container, ${path}`);
  }
  return path;
}

/** Reads /proc/<pid>/stat's start time. */
export function readStartTicks(pid: number): number {
  return processStartTicks(readFileSync(`/proc/${pid}/stat`, "utf8"));
}
