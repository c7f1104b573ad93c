/**
 * What the shim itself reads from a bundle's OCI spec (<bundle>/config.json) before runc runs: that it
 * exists and is a JSON object (so a broken bundle is a clear NOT_FOUND / INVALID_ARGUMENT instead of
 * runc's message), whether the container gets its own PID namespace, and its `cryo.checkpoint/`
 * annotations (checked at Create, so that a typo fails `ctr run`, not the checkpoint an hour later).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as z from "zod/mini";
import { lazySchema, parseDetail } from "../runtime/schema-detail.ts";
import { parseCheckpointAnnotations } from "../checkpoint/annotations.ts";
import { invalidArgument, notFound } from "../errors.ts";

/** The facts the shim needs from a spec. */
export interface BundleSpec {
  /**
   * True when the container has no PID namespace of its own (none in linux.namespaces, or one joined
   * by path): then its processes outlive init unless killed, so the shim kills them all when init
   * exits, as containerd's runc shim does.
   */
  killAllOnExit: boolean;
}

// zod/mini, built at the first Create (every daemon loads this module at start).
const specSchema = lazySchema(() =>
  z.looseObject({
    ociVersion: z.string(),
    annotations: z.optional(z.record(z.string(), z.string())),
    linux: z.optional(z.looseObject({ namespaces: z.optional(z.array(z.looseObject({ type: z.string(), path: z.optional(z.string()) }))) })),
  }),
);

/** Reads and checks <bundle>/config.json: missing -> NOT_FOUND, unreadable JSON or wrong shape -> INVALID_ARGUMENT. */
export function readBundleSpec(bundle: string): BundleSpec {
  const path = join(bundle, "config.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw notFound(`bundle ${bundle}: config.json`, { cause: err });
    throw invalidArgument(`bundle ${bundle}: config.json`, { cause: err, detail: err instanceof Error ? err.message : String(err) });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`bundle ${bundle}: config.json`, { cause: err, detail: `not valid JSON: ${err instanceof Error ? err.message : String(err)}` });
  }
  const r = parseDetail(specSchema(), json, "spec");
  if (!r.ok) throw invalidArgument(`bundle ${bundle}: config.json`, { detail: r.detail });
  const ownPid = (r.data.linux?.namespaces ?? []).some((ns) => ns.type === "pid" && !ns.path);
  // An unknown key or a bad value: INVALID_ARGUMENT naming the annotation.
  parseCheckpointAnnotations(r.data.annotations ?? {});
  return { killAllOnExit: !ownPid };
}
