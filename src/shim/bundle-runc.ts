/**
 * How the shim reaches runc for a container: the runc driver of src/runtime configured from the
 * runtime options (binary, root, systemd cgroups) with runc's JSON log in <bundle>/log.json, and the
 * record of those settings in <bundle>/cryo-runtime.json, written at Create so that `delete` after a
 * dead shim finds the same runc and root.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { createRunc, type Runc } from "../runtime/index.ts";
import { defaultShimOptions, type ShimOptions } from "./runtime-options.ts";

/** The file in a bundle that records how to reach runc for this container. */
export const RUNTIME_FILE = "cryo-runtime.json";

/** Deadline of one runc call (a hung runc must not hold a container's queue forever). */
export const RUNC_TIMEOUT_MS = 120_000;

/** The runc driver for a container in bundle. */
export function runcFor(bundle: string, options: ShimOptions): Runc {
  return createRunc({
    binary: options.binaryName,
    root: options.root,
    systemdCgroup: options.systemdCgroup,
    logPath: join(bundle, "log.json"),
    timeoutMs: RUNC_TIMEOUT_MS,
  });
}

/** Records the runc settings in the bundle. */
export function writeRuntimeFile(bundle: string, options: ShimOptions): void {
  writeFileSync(join(bundle, RUNTIME_FILE), JSON.stringify({ binaryName: options.binaryName, root: options.root, systemdCgroup: options.systemdCgroup }));
}

const runtimeFileSchema = z.object({ binaryName: z.string().min(1), root: z.string().min(1), systemdCgroup: z.boolean().optional() }).loose();

/** Reads the runc settings Create recorded in the bundle; defaults when absent or unreadable. */
export function readRuntimeFile(bundle: string): ShimOptions {
  const o = defaultShimOptions();
  try {
    const r = runtimeFileSchema.safeParse(JSON.parse(readFileSync(join(bundle, RUNTIME_FILE), "utf8")));
    if (r.success) {
      o.binaryName = r.data.binaryName;
      o.root = r.data.root;
      o.systemdCgroup = r.data.systemdCgroup ?? false;
    }
  } catch {
    // never created, or the bundle is gone: defaults
  }
  return o;
}
