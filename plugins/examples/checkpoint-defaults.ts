// checkpoint-defaults: sets CRIU options from container annotations and refuses large checkpoints.
//
// - annotation cryo.checkpoint/tcp-established=true   -> tcpEstablished on (checkpoint and restore)
// - annotation cryo.checkpoint/leave-running=true     -> leaveRunning on
// - memory in use above max_memory_gib (config, default 8) -> checkpoint refused
//
// config:
//   max_memory_gib   the largest container (GiB, may be fractional) that may be checkpointed

import { CheckpointInput, config, handleCheckpoint, handleRestore, OptionsOutput, RestoreInput } from "../sdk/assembly/index";

export function checkpoint(): i32 {
  return handleCheckpoint(onCheckpoint);
}

export function restore(): i32 {
  return handleRestore(onRestore);
}

function onCheckpoint(input: CheckpointInput): OptionsOutput {
  const maxGib = parseFloat(config("max_memory_gib", "8"));
  const limit = maxGib * 1024.0 * 1024.0 * 1024.0;
  if (<f64>input.memoryBytes > limit) {
    const gib = <f64>input.memoryBytes / (1024.0 * 1024.0 * 1024.0);
    return OptionsOutput.deny("container uses " + gib.toString().slice(0, 6) + " GiB of memory, above the checkpoint limit of " + maxGib.toString() + " GiB");
  }
  const out = OptionsOutput.allow();
  if (input.annotations.has("cryo.checkpoint/tcp-established") && input.annotations.get("cryo.checkpoint/tcp-established") == "true") {
    out.options.setFlag("tcpEstablished", true);
  }
  if (input.annotations.has("cryo.checkpoint/leave-running") && input.annotations.get("cryo.checkpoint/leave-running") == "true") {
    out.options.setFlag("leaveRunning", true);
  }
  return out;
}

function onRestore(input: RestoreInput): OptionsOutput {
  const out = OptionsOutput.allow();
  const a = input.checkpoint.annotations;
  if (a.has("cryo.checkpoint/tcp-established") && a.get("cryo.checkpoint/tcp-established") == "true") {
    out.options.setFlag("tcpEstablished", true);
  }
  return out;
}
