// restore-clone: tells a restore under another name (a clone: the checkpointed container may still be running,
// holding its TCP connections) from a restore under the container's own name (a move), by the restore hook's
// checkpoint.containerId. Clones get their established TCP connections closed on restore, or are refused.
//
// config:
//   clones          "allow" (default) or "deny": may a checkpoint be restored under another name
//   clone_tcp_close "true" (default): a clone's established TCP connections are closed (tcpClose), not
//                   restored, so that it does not talk over the original's connections; "false" keeps what
//                   was requested

import { config, handleRestore, log, OptionsOutput, RestoreInput } from "../sdk/assembly/index";

export function restore(): i32 {
  return handleRestore(policy);
}

function policy(input: RestoreInput): OptionsOutput {
  const from = input.checkpoint.containerId;
  if (from == input.id) return OptionsOutput.allow();
  if (config("clones", "allow") == "deny") {
    return OptionsOutput.deny("checkpoint of " + from + " may not be restored under another name (" + input.id + "): clones are refused");
  }
  const out = OptionsOutput.allow();
  if (config("clone_tcp_close", "true") == "true") {
    out.options.setFlag("tcpEstablished", false);
    out.options.setFlag("tcpClose", true);
    log("restore of " + from + " as " + input.id + ": a clone, its TCP connections closed");
  }
  return out;
}
