/**
 * Which shim daemon serves a container (grouping), and where that daemon's socket lives.
 *
 * Policies: "per-container" (one daemon each), "per-pod" (the default, as containerd's runc shim:
 * containers whose config.json carries the same `io.containerd.runc.v2.group` or
 * `io.kubernetes.cri.sandbox-id` annotation share one), "per-namespace" (every container of a
 * containerd namespace shares one). The socket path is a hash of containerd's address, the namespace
 * and the group key, so two containerds or namespaces never meet in one daemon.
 */
import { statSync } from "node:fs";
import { invalidArgument } from "../errors.ts";
import { parseGroupingPolicy, type GroupingPolicy } from "./grouping-policy.ts";
import { RUNC_GROUP_ANNOTATION, SANDBOX_ID_ANNOTATION } from "./grouping-seal.ts";

/** Annotations that name a group, in priority order (containerd's runc shim reads the same two). */
export const GROUP_ANNOTATIONS = [RUNC_GROUP_ANNOTATION, SANDBOX_ID_ANNOTATION] as const;
/** Annotation with which one container asks for a grouping policy. */
export const GROUPING_ANNOTATION = "io.cryo.shim.grouping";
/** Environment variable that sets the grouping policy for every container of a containerd. */
export const GROUPING_ENV = "CRYO_SHIM_GROUPING";
/** Environment variable that moves the socket directory (default DEFAULT_SOCKET_DIR). */
export const SOCKET_DIR_ENV = "CRYO_SHIM_SOCKET_DIR";
/** Where daemon sockets live: a root-only (0700) directory. */
export const DEFAULT_SOCKET_DIR = "/run/cryo/s";
/** The default policy. */
export const DEFAULT_GROUPING: GroupingPolicy = "per-pod";

/** The prefix of GROUPING_ANNOTATION: another key under it is a typo, refused as an unknown `cryo.checkpoint/` key is. */
export const SHIM_ANNOTATION_PREFIX = "io.cryo.shim.";

/**
 * Picks the policy: runtime options, then the container's annotation, then the environment, then per-pod. An
 * `io.cryo.shim.` annotation other than GROUPING_ANNOTATION is INVALID_ARGUMENT: a misspelt one
 * (`io.cryo.shim.groupng=per-namespace`) left the container on the default policy without a word.
 */
export function resolveGrouping(
  fromOptions: GroupingPolicy | undefined,
  annotations: Readonly<Record<string, string>>,
  env: Readonly<Record<string, string | undefined>>,
): GroupingPolicy {
  for (const key of Object.keys(annotations)) {
    if (key.startsWith(SHIM_ANNOTATION_PREFIX) && key !== GROUPING_ANNOTATION) {
      throw invalidArgument(`annotation ${key}`, { detail: `unknown key; the only ${SHIM_ANNOTATION_PREFIX} annotation is ${GROUPING_ANNOTATION}` });
    }
  }
  if (fromOptions) return fromOptions;
  const a = annotations[GROUPING_ANNOTATION];
  if (a) return parseGroupingPolicy(a, `annotation ${GROUPING_ANNOTATION}`);
  const e = env[GROUPING_ENV];
  if (e) return parseGroupingPolicy(e, `${GROUPING_ENV} (containerd's environment)`);
  return DEFAULT_GROUPING;
}

/** The group a container belongs to under a policy; containers with equal keys share a daemon. */
export function groupKey(
  policy: GroupingPolicy,
  id: string,
  namespace: string,
  annotations: Readonly<Record<string, string>>,
): string {
  switch (policy) {
    case "per-container":
      return `container/${id}`;
    case "per-namespace":
      return `namespace/${namespace}`;
    case "per-pod":
      for (const name of GROUP_ANNOTATIONS) {
        const g = annotations[name];
        if (g) return `group/${g}`;
      }
      return `container/${id}`;
  }
}

/**
 * The socket path of a group's daemon: <dir>/<sha256(address/namespace/key[/binary])>, short enough for sun_path.
 * `binary` (binaryIdentity) keys the daemon by the executable too: `start` gives it for per-namespace groups (below).
 */
export function socketPath(socketDir: string, containerdAddress: string, namespace: string, key: string, binary?: string): string {
  // Bun.CryptoHasher, not node:crypto: loading node:crypto costs 5-9 ms at every launch of the binary.
  const text = `${containerdAddress}\0${namespace}\0${key}` + (binary === undefined ? "" : `\0\0${binary}`);
  const h = new Bun.CryptoHasher("sha256").update(text).digest("hex");
  return `${socketDir}/${h}`;
}

/**
 * This executable as it is on disk now: its path, inode, size and modification time (the path alone when it cannot be
 * stat'ed). An upgrade or rebuild that puts a new binary at the path (a rename over it, or a copy) changes it.
 */
export function binaryIdentity(path: string = process.execPath): string {
  try {
    const st = statSync(path);
    return `${path}\0${st.ino}\0${st.size}\0${st.mtimeMs}`;
  } catch {
    return path;
  }
}

/**
 * Whether a group's daemon is keyed by the binary as well (binaryIdentity). A pod's or a container's group ends with
 * it, so after an upgrade of cryo its daemon serves it to the end, as containerd's runc shim serves a group it
 * started. A namespace's group never ends while anything runs there: keyed by the binary, new containers go to a
 * daemon of the new binary, and the old daemon exits once its last container is gone.
 */
export function keyedByBinary(policy: GroupingPolicy): boolean {
  return policy === "per-namespace";
}

/** "unix:///path" as containerd expects it from `start`. */
export function socketAddress(path: string): string {
  return `unix://${path}`;
}

/** The path of a "unix://" address (or the address itself when it has no scheme). */
export function addressPath(address: string): string {
  return address.startsWith("unix://") ? address.slice("unix://".length) : address;
}
