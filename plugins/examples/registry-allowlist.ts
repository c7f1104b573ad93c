// registry-allowlist: allows only images from listed registries, or pinned by digest.
//
// config:
//   registries      comma-separated registry hosts, e.g. "docker.io,ghcr.io,registry.example.com:5000"
//   allow_pinned    "true" (default) also allows any image referenced by digest (name@sha256:...)
//   allow_unknown   "true" allows containers whose image the shim could not learn (default: deny)

import { AdmitInput, AdmitOutput, config, handleAdmit } from "../sdk/assembly/index";

export function admit(): i32 {
  return handleAdmit(policy);
}

function policy(input: AdmitInput): AdmitOutput {
  const image = input.image;
  if (image === null) {
    if (config("allow_unknown", "false") == "true") return AdmitOutput.allow();
    return AdmitOutput.deny("image unknown: cannot check it against the registry allowlist");
  }
  if (config("allow_pinned", "true") == "true" && image.pinned()) return AdmitOutput.allow();
  const list = config("registries", "").split(",");
  const registry = image.registry();
  for (let i = 0; i < list.length; i++) {
    if (list[i].trim() == registry) return AdmitOutput.allow();
  }
  return AdmitOutput.deny("image " + image.name + " is from registry " + registry + ", which is not in the allowlist (" + list.join(", ") + ")");
}
