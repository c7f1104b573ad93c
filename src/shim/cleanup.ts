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
import { Code, CryoError, invalidArgument } from "../errors.ts";
import { DeleteResponseSchema } from "../gen/containerd/runtime/task/v2/shim_pb.ts";
import { readRuntimeFile, runcFor } from "./bundle-runc.ts";
import type { ShimFlags } from "./flags.ts";
import type { Logger } from "./logger.ts";
import { unmountRootfs } from "./rootfs.ts";

/** Exit status reported for a container whose shim died (128 + SIGKILL). */
export const DEAD_SHIM_EXIT_STATUS = 137;

/** Runs `delete`; returns the serialized DeleteResponse for stdout. */
export async function deleteShim(flags: ShimFlags, log: Logger): Promise<Uint8Array> {
  if (!flags.id) throw invalidArgument("delete", { detail: "-id is required" });
  const bundle = flags.bundle;
  const options = readRuntimeFile(bundle);
  try {
    await runcFor(bundle, options).delete(flags.id, { force: true });
  } catch (err) {
    const e = CryoError.from(err);
    if (e.code !== Code.NOT_FOUND) log.warn(e.message);
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
