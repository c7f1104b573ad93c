// Test plugin for chaining: sets an environment variable and an annotation, optionally removes a
// mount, and (when configured) denies unless it sees a variable an earlier plugin set.
//
// config: name, value (the variable to set), remove_mount, expect_env ("NAME=value" that must be
// in the spec it receives), pids_limit, deny_restore ("true": a restore's Create is denied).
import { AdmitInput, AdmitOutput, config, handleAdmit } from "../sdk/assembly/index";

export function admit(): i32 {
  return handleAdmit(policy);
}

function policy(input: AdmitInput): AdmitOutput {
  if (input.restore && config("deny_restore", "") == "true") return AdmitOutput.deny("restores are not admitted here");
  const expect = config("expect_env", "");
  if (expect != "") {
    const eq = expect.indexOf("=");
    const env = input.env();
    const name = expect.substring(0, eq);
    if (!env.has(name) || env.get(name) != expect.substring(eq + 1)) return AdmitOutput.deny("did not see " + expect);
  }
  const out = AdmitOutput.allow().setEnv(config("name", "CRYO_POLICY"), config("value", "on"));
  out.setAnnotation("cryo.test/" + config("name", "CRYO_POLICY"), config("value", "on"));
  const mount = config("remove_mount", "");
  if (mount != "") out.removeMount(mount);
  const pids = config("pids_limit", "");
  if (pids != "") out.setPidsLimit(<i64>parseInt(pids));
  return out;
}
