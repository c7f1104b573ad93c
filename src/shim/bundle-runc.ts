/**
 * How the shim reaches runc for a container: the runc driver of src/runtime configured from the
 * runtime options (binary, root, systemd cgroups) with runc's JSON log in <bundle>/log.json.
 */
import { join } from "node:path";
import { createRunc, type Runc } from "../runtime/index.ts";
import type { ShimOptions } from "./shim-options.ts";

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
export { RUNTIME_FILE, readRuntimeFile, writeRuntimeFile } from "./runtime-file.ts";
