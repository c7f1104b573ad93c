// Test plugin for restore admission by image: allows restoring a checkpoint only when the image the
// checkpoint recorded starts with one of the listed prefixes; otherwise denies, naming the image.
// (The examples' restore hook, checkpoint-defaults, only sets options; registry-allowlist is admit-only.)
//
// config: images (comma-separated image name prefixes).
import { config, handleRestore, OptionsOutput, RestoreInput } from "../sdk/assembly/index";

export function restore(): i32 {
  return handleRestore(policy);
}

function policy(input: RestoreInput): OptionsOutput {
  const image = input.checkpoint.image;
  const list = config("images", "").split(",");
  if (image === null) return OptionsOutput.deny("checkpoint of " + input.id + " records no image; restore allowed only for images " + list.join(", "));
  for (let i = 0; i < list.length; i++) {
    const prefix = list[i].trim();
    if (prefix != "" && image.name.startsWith(prefix)) return OptionsOutput.allow();
  }
  return OptionsOutput.deny("checkpoint image " + image.name + " is not allowed to restore here (allowed: " + list.join(", ") + ")");
}
