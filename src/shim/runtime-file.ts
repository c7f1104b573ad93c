/**
 * <bundle>/cryo-runtime.json: the runc settings (binary, root, systemd cgroups) recorded at Create,
 * so that `delete` after a dead shim finds the same runc and root. Kept apart from the runc driver
 * so that `delete` loads the driver only when runc still has state to remove.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as z from "zod/mini"; // light at every `delete` (flags.ts)
import { defaultShimOptions, type ShimOptions } from "./shim-options.ts";

/** The file in a bundle that records how to reach runc for this container. */
export const RUNTIME_FILE = "cryo-runtime.json";

/** Records the runc settings in the bundle. */
export function writeRuntimeFile(bundle: string, options: ShimOptions): void {
  writeFileSync(join(bundle, RUNTIME_FILE), JSON.stringify({ binaryName: options.binaryName, root: options.root, systemdCgroup: options.systemdCgroup }));
}

const runtimeFileSchema = z.looseObject({ binaryName: z.string().check(z.minLength(1)), root: z.string().check(z.minLength(1)), systemdCgroup: z.optional(z.boolean()) });

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
