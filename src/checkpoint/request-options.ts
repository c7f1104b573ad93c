/**
 * The request's checkpoint options as containerd sends them: a google.protobuf.Any holding either
 * runc's containerd.runc.v1.CheckpointOptions (`ctr containers checkpoint --task` always sends it, with
 * file locks on) or cryo's cryo.v1.CheckpointOptions. `ctr task checkpoint` sends none for a runtime
 * not named io.containerd.runc.*.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { invalidArgument } from "../errors.ts";
import { CheckpointOptionsSchema as RuncCheckpointOptionsSchema } from "../gen/containerd/runc/options/oci_pb.ts";
import { CheckpointOptionsSchema as CryoCheckpointOptionsSchema } from "../gen/cryo/v1/options_pb.ts";
import type { CheckpointRequestOptions } from "./plan.ts";

/** The type names accepted in the Any (with or without a "type.googleapis.com/" style prefix). */
export const CHECKPOINT_OPTION_TYPES = {
  runc: "containerd.runc.v1.CheckpointOptions",
  cryo: "cryo.v1.CheckpointOptions",
} as const;

/** Decodes the Any's payload by its type URL; absent or empty Any means no options. */
export function checkpointOptionsFromAny(any: { typeUrl: string; value: Uint8Array } | undefined): CheckpointRequestOptions {
  if (!any || any.typeUrl === "") return undefined;
  const name = any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
  try {
    if (name === CHECKPOINT_OPTION_TYPES.runc) return { kind: "runc", options: fromBinary(RuncCheckpointOptionsSchema, any.value) };
    if (name === CHECKPOINT_OPTION_TYPES.cryo) return { kind: "cryo", options: fromBinary(CryoCheckpointOptionsSchema, any.value) };
  } catch (err) {
    throw invalidArgument(`checkpoint options ${name}`, { cause: err, detail: err instanceof Error ? err.message : String(err) });
  }
  throw invalidArgument(`checkpoint options of type ${JSON.stringify(any.typeUrl)}`, {
    detail: `want ${CHECKPOINT_OPTION_TYPES.runc} or ${CHECKPOINT_OPTION_TYPES.cryo}`,
  });
}
