/**
 * Applying and composing the spec changes admission plugins return. Pure functions: the input
 * spec is never modified; a new spec is returned.
 */
import type { OciSpec, ResourceChanges, SpecChanges } from "./hook-schemas.ts";

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Returns a copy of `spec` with `changes` applied: env set/overridden, annotations set, resources merged, mounts removed. */
export function applySpecChanges(spec: OciSpec, changes: SpecChanges | undefined): OciSpec {
  const out = structuredClone(spec) as OciSpec;
  if (!changes) return out;
  if (changes.env && Object.keys(changes.env).length > 0) {
    const process = (out.process ??= {});
    const env = [...(process.env ?? [])];
    for (const [name, value] of Object.entries(changes.env)) {
      const entry = `${name}=${value}`;
      const at = env.findIndex((e) => e === name || e.startsWith(`${name}=`));
      if (at === -1) env.push(entry);
      else {
        env[at] = entry;
        // A spec may carry the same name twice; the override must win everywhere.
        for (let i = env.length - 1; i > at; i--) if (env[i] === name || env[i]!.startsWith(`${name}=`)) env.splice(i, 1);
      }
    }
    process.env = env;
  }
  if (changes.annotations && Object.keys(changes.annotations).length > 0) {
    out.annotations = { ...(out.annotations ?? {}), ...changes.annotations };
  }
  if (changes.resources) {
    const linux = (out.linux ??= {});
    linux.resources = mergeResources(linux.resources ?? {}, changes.resources);
  }
  if (changes.removeMounts?.length && out.mounts) {
    const drop = new Set(changes.removeMounts.map(normalizeDestination));
    out.mounts = out.mounts.filter((m) => !drop.has(normalizeDestination(m.destination)));
  }
  return out;
}

function normalizeDestination(d: string): string {
  const trimmed = d.replace(/\/+/g, "/");
  return trimmed.length > 1 ? trimmed.replace(/\/$/, "") : trimmed;
}

function mergeResources(current: Json, changes: ResourceChanges): Json {
  const out: Json = { ...current };
  for (const [group, values] of Object.entries(changes)) {
    if (values === undefined) continue;
    const existing = out[group];
    out[group] = { ...(isObject(existing) ? existing : {}), ...values };
  }
  return out;
}

/** Composes two plugins' changes: the later one wins per key; removed mounts accumulate. */
export function mergeSpecChanges(a: SpecChanges | undefined, b: SpecChanges | undefined): SpecChanges {
  const out: SpecChanges = {};
  const env = { ...a?.env, ...b?.env };
  if (Object.keys(env).length) out.env = env;
  const annotations = { ...a?.annotations, ...b?.annotations };
  if (Object.keys(annotations).length) out.annotations = annotations;
  if (a?.resources || b?.resources) {
    const r: ResourceChanges = {};
    for (const group of ["memory", "cpu", "pids"] as const) {
      const merged = { ...a?.resources?.[group], ...b?.resources?.[group] };
      if (Object.keys(merged).length) (r as Json)[group] = merged;
    }
    out.resources = r;
  }
  const removed = [...new Set([...(a?.removeMounts ?? []), ...(b?.removeMounts ?? [])])];
  if (removed.length) out.removeMounts = removed;
  return out;
}
