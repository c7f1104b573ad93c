// Bad plugin for tests: aborts (traps) on every call.
import { AdmitInput, AdmitOutput, handleAdmit } from "../sdk/assembly/index";

export function admit(): i32 {
  return handleAdmit(policy);
}

function policy(input: AdmitInput): AdmitOutput {
  if (input.id != "") throw new Error("policy bug: cannot decide about " + input.id);
  return AdmitOutput.allow();
}
