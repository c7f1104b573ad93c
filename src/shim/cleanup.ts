/**
 * The `delete` action: containerd runs it when a shim died, to clean up its container.
 * It force-deletes the container in runc (with the runc binary and root recorded at Create),
 * unmounts the rootfs, and prints a binary DeleteResponse: the init pid, exit status 137
 * (128 + SIGKILL) and the current time, as containerd's runc shim reports.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { invalidArgument } from "../errors.ts";
import { DeleteResponseSchema } from "../gen/containerd/runtime/task/v2/shim_pb.ts";
import { RUNTIME_FILE, runcConfig, unmountRootfs } from "./engine.ts";
import type { ShimFlags } from "./flags.ts";
import type { Logger } from "./logger.ts";
import { runRunc } from "./runc-cli.ts";
import { defaultShimOptions, type ShimOptions } from "./runtime-options.ts";

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

/** Exit status reported for a container whose shim died (128 + SIGKILL). */
export const DEAD_SHIM_EXIT_STATUS = 137;

/** Runs `delete`; returns the serialized DeleteResponse for stdout. */
export async function deleteShim(flags: ShimFlags, log: Logger): Promise<Uint8Array> {
  if (!flags.id) throw invalidArgument("delete", { detail: "-id is required" });
  const bundle = flags.bundle;
  const options = readRuntimeFile(bundle);
  try {
    await runRunc(runcConfig(bundle, options), ["delete", "--force", flags.id], `delete container ${flags.id}`);
  } catch (err) {
    log.warn(`runc delete: ${err instanceof Error ? err.message : String(err)}`);
  }
  await unmountRootfs(bundle);
  let pid = 0;
  try {
    pid = Number(readFileSync(join(bundle, "init.pid"), "utf8").trim()) || 0;
  } catch {
    // never created
  }
  return toBinary(
    DeleteResponseSchema,
    create(DeleteResponseSchema, { pid, exitStatus: DEAD_SHIM_EXIT_STATUS, exitedAt: timestampFromDate(new Date()) }),
  );
}
