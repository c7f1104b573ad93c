/**
 * runc's on-disk state: `<root>/<id>/state.json`, written by libcontainer (runc 1.1: State embeds
 * BaseState). The schema covers the fields cryo relies on and keeps every other field as it is.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
// zod/mini: the same validation as zod, loaded and built faster (every shim daemon loads this module at start).
import * as z from "zod/mini";
import { CryoError, invalidArgument, notFound } from "../errors.ts";
import { assertValidContainerId } from "./container-errors.ts";
import { lazySchema, parseDetail } from "./schema-detail.ts";

/** null or missing -> the empty value (runc writes null for empty Go slices and maps). */
const orEmpty = <T extends z.ZodMiniType, E>(schema: T, empty: () => E) =>
  z.pipe(
    z.nullish(schema),
    z.transform((v: z.output<T> | null | undefined) => (v ?? empty()) as z.output<T> | E),
  );

function buildRuncStateSchema() {
  /** A namespace of the container's config: type (NEWPID, NEWNET, ...) and path when joined, "" otherwise. */
  const namespace = z.looseObject({ type: z.string(), path: z._default(z.optional(z.string()), "") });

  /** A mount of the container's config (libcontainer configs.Mount). */
  const mount = z.looseObject({
    source: z.string(),
    destination: z.string(),
    device: z.string(),
    flags: z.number().check(z.int()),
    data: z.optional(z.string()),
  });

  /** The cgroup part of the container's config (libcontainer configs.Cgroup). */
  const cgroupConfig = z.looseObject({
    path: z.optional(z.string()),
    name: z.optional(z.string()),
    parent: z.optional(z.string()),
    scope_prefix: z.optional(z.string()),
    systemd: z.optional(z.boolean()),
  });

  /** The container's config as libcontainer stores it (configs.Config), the fields cryo reads. */
  const containerConfig = z.looseObject({
    rootfs: z.string(),
    readonlyfs: z.optional(z.boolean()),
    no_pivot_root: z.optional(z.boolean()),
    no_new_keyring: z.optional(z.boolean()),
    hostname: z.optional(z.string()),
    version: z.optional(z.string()),
    labels: orEmpty(z.array(z.string()), () => [] as string[]),
    namespaces: orEmpty(z.array(namespace), () => [] as z.output<typeof namespace>[]),
    mounts: orEmpty(z.array(mount), () => [] as z.output<typeof mount>[]),
    cgroups: z.nullish(cgroupConfig),
  });

  /** runc 1.1 state.json (libcontainer State = BaseState + the Linux fields). */
  return z.looseObject({
    id: z.string().check(z.minLength(1)),
    init_process_pid: z.number().check(z.int()),
    /** Start time of init in clock ticks since boot (/proc/<pid>/stat field 22). */
    init_process_start: z.number().check(z.int(), z.nonnegative()),
    /** RFC 3339 with nanoseconds, UTC. */
    created: z.string(),
    config: containerConfig,
    rootless: z._default(z.optional(z.boolean()), false),
    /** v1: controller -> path; the unified (v2) path under the key "". */
    cgroup_paths: orEmpty(z.record(z.string(), z.string()), () => ({}) as Record<string, string>),
    /** NEWNS, NEWPID, ... -> /proc/<pid>/ns/... */
    namespace_paths: orEmpty(z.record(z.string(), z.string()), () => ({}) as Record<string, string>),
    /** What init's stdin, stdout, stderr pointed to at create time (for checkpoint/restore). */
    external_descriptors: orEmpty(z.array(z.string()), () => [] as string[]),
    intel_rdt_path: z._default(z.optional(z.string()), ""),
  });
}

/** The schema of runc 1.1's state.json (libcontainer State = BaseState + the Linux fields), built on first use. */
export const runcStateSchema = lazySchema(buildRuncStateSchema);

/** A parsed state.json. */
export type RuncState = z.infer<ReturnType<typeof buildRuncStateSchema>>;

/** Parses state.json text; malformed content is INVALID_ARGUMENT naming the source. */
export function parseRuncState(text: string, source = "state.json"): RuncState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(source, { detail: `not JSON: ${(err as Error).message}`, cause: err });
  }
  const r = parseDetail(runcStateSchema(), json);
  if (!r.ok) throw invalidArgument(source, { detail: r.detail });
  return r.data;
}

/** Reads `<root>/<id>/state.json`; a missing container is NOT_FOUND. */
export function readRuncState(root: string, id: string): RuncState {
  assertValidContainerId(id);
  const path = join(root, id, "state.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") throw notFound(`container ${id}`, { detail: `no ${path}`, cause: err });
    throw CryoError.from(err).wrap(`read ${path}`);
  }
  return parseRuncState(text, path);
}

/** Splits libcontainer labels ("key=value") into the bundle path and the user annotations, as runc does. */
export function labelsToAnnotations(labels: readonly string[]): { bundle: string; annotations: Record<string, string> } {
  let bundle = "";
  const annotations: Record<string, string> = {};
  for (const l of labels) {
    const eq = l.indexOf("=");
    if (eq < 0) continue;
    const key = l.slice(0, eq);
    const value = l.slice(eq + 1);
    if (key === "bundle") bundle = value;
    else annotations[key] = value;
  }
  return { bundle, annotations };
}
