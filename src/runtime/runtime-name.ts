/** Runtime name matching: does a runtime name, given in full or in part, select cryo? */

/** cryo's full runtime name, as containerd knows it. */
export const RUNTIME_NAME = "io.containerd.cryo.v2";
/** The shim binary containerd derives from the runtime name. */
export const SHIM_BINARY = "containerd-shim-cryo-v2";

const segments = RUNTIME_NAME.split(".");

/**
 * True when name selects cryo: the full name, or any run of its dot-separated parts that contains
 * "cryo" (`cryo`, `cryo.v2`, `containerd.cryo`, `io.containerd.cryo`), or the shim binary's name or
 * path. Case and surrounding blanks are ignored. `runc`, `io.containerd.runc.v2`, `v2` do not match.
 */
export function matchesRuntime(name: string): boolean {
  const n = name.trim().toLowerCase();
  if (n === "") return false;
  if (n === SHIM_BINARY || n.endsWith(`/${SHIM_BINARY}`)) return true;
  const parts = n.split(".");
  const cryoAt = parts.indexOf("cryo");
  if (cryoAt < 0) return false;
  const start = segments.indexOf("cryo") - cryoAt;
  if (start < 0 || start + parts.length > segments.length) return false;
  return parts.every((p, i) => segments[start + i] === p);
}
