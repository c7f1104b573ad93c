// deny-privileged: refuses privileged containers and containers that share the host's namespaces.
//
// What `ctr run --privileged` puts in the spec (containerd's oci.WithPrivileged,
// WithAllDevicesAllowed, WithHostDevices): every capability, including CAP_SYS_ADMIN, in the bounding
// set; no masked and no read-only paths; a device cgroup rule that allows all devices ("a", rwm).
// Any of CAP_SYS_ADMIN or the allow-all device rule is enough to deny.
//
// config:
//   allow_host_namespaces  comma-separated namespace types that may be shared with the host, e.g. "network"
//   message                text put before the details in the denial reason

import { AdmitInput, AdmitOutput, config, handleAdmit, JsonValue } from "../sdk/assembly/index";

export function admit(): i32 {
  return handleAdmit(policy);
}

function allowsAllDevices(spec: JsonValue): bool {
  const devices = spec.path(["linux", "resources", "devices"]);
  if (devices === null) return false;
  for (let i = 0; i < devices.items.length; i++) {
    const rule = devices.items[i];
    const type = rule.getString("type", "a");
    if (rule.getBool("allow") && (type == "a" || type == "") && !rule.has("major") && !rule.has("minor")) return true;
  }
  return false;
}

function policy(input: AdmitInput): AdmitOutput {
  const problems: string[] = [];
  if (input.boundingCapabilities().includes("CAP_SYS_ADMIN")) problems.push("CAP_SYS_ADMIN in the bounding set");
  if (allowsAllDevices(input.spec)) problems.push("all devices allowed");

  const allowed = config("allow_host_namespaces", "").split(",");
  const shared = input.hostNamespaces();
  for (let i = 0; i < shared.length; i++) {
    if (!allowed.includes(shared[i])) problems.push("host " + shared[i] + " namespace");
  }
  if (problems.length == 0) return AdmitOutput.allow();
  const message = config("message", "privileged containers are not allowed");
  return AdmitOutput.deny(message + " (" + problems.join(", ") + ")");
}
