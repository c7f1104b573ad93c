/**
 * runc's on-disk state: `<root>/<id>/state.json`, written by libcontainer (runc 1.1: State embeds
 * BaseState). The schema covers the fields cryo relies on and keeps every other field as it is.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { CryoError, invalidArgument, notFound } from "../errors.ts";
import { assertValidContainerId } from "./container-errors.ts";

/** A namespace of the container's config: type (NEWPID, NEWNET, ...) and path when joined, "" otherwise. */
export const namespaceSchema = z.object({ type: z.string(), path: z.string().optional().default("") }).loose();

/** A mount of the container's config (libcontainer configs.Mount). */
export const mountSchema = z
  .object({
    source: z.string(),
    destination: z.string(),
    device: z.string(),
    flags: z.number().int(),
    data: z.string().optional(),
  })
  .loose();

/** The cgroup part of the container's config (libcontainer configs.Cgroup). */
export const cgroupConfigSchema = z
  .object({
    path: z.string().optional(),
    name: z.string().optional(),
    parent: z.string().optional(),
    scope_prefix: z.string().optional(),
    systemd: z.boolean().optional(),
  })
  .loose();

/** The container's config as libcontainer stores it (configs.Config), the fields cryo reads. */
export const containerConfigSchema = z
  .object({
    rootfs: z.string(),
    readonlyfs: z.boolean().optional(),
    no_pivot_root: z.boolean().optional(),
    no_new_keyring: z.boolean().optional(),
    hostname: z.string().optional(),
    version: z.string().optional(),
    labels: z.array(z.string()).nullish().transform((v) => v ?? []),
    namespaces: z.array(namespaceSchema).nullish().transform((v) => v ?? []),
    mounts: z.array(mountSchema).nullish().transform((v) => v ?? []),
    cgroups: cgroupConfigSchema.nullish(),
  })
  .loose();

/** runc 1.1 state.json (libcontainer State = BaseState + the Linux fields). */
export const runcStateSchema = z
  .object({
    id: z.string().min(1),
    init_process_pid: z.number().int(),
    /** Start time of init in clock ticks since boot (/proc/<pid>/stat field 22). */
    init_process_start: z.number().int().nonnegative(),
    /** RFC 3339 with nanoseconds, UTC. */
    created: z.string(),
    config: containerConfigSchema,
    rootless: z.boolean().optional().default(false),
    /** v1: controller -> path; the unified (v2) path under the key "". */
    cgroup_paths: z.record(z.string(), z.string()).nullish().transform((v) => v ?? {}),
    /** NEWNS, NEWPID, ... -> /proc/<pid>/ns/... */
    namespace_paths: z.record(z.string(), z.string()).nullish().transform((v) => v ?? {}),
    /** What init's stdin, stdout, stderr pointed to at create time (for checkpoint/restore). */
    external_descriptors: z.array(z.string()).nullish().transform((v) => v ?? []),
    intel_rdt_path: z.string().optional().default(""),
  })
  .loose();

/** A parsed state.json. */
export type RuncState = z.infer<typeof runcStateSchema>;

/** Parses state.json text; malformed content is INVALID_ARGUMENT naming the source. */
export function parseRuncState(text: string, source = "state.json"): RuncState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(source, { detail: `not JSON: ${(err as Error).message}`, cause: err });
  }
  const r = runcStateSchema.safeParse(json);
  if (!r.success) {
    throw invalidArgument(source, { detail: r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
  }
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
