/**
 * The namespace kinds CRIU makes anew for a restored tree where the root task's id differs from the dumping CRIU's
 * own (criu/pstree.c get_clone_mask), named as the OCI spec names them, with the ids entry's field of each. The
 * time namespace is left out (CRIU gives every restored tree a new one), and so is the cgroup namespace (not in
 * the clone mask).
 */
import type { TaskKobjIdsEntry } from "../gen/criu/core_pb.ts";

export const NS_KINDS = [
  ["pid", "pidNsId"],
  ["network", "netNsId"],
  ["ipc", "ipcNsId"],
  ["uts", "utsNsId"],
  ["mount", "mntNsId"],
  ["user", "userNsId"],
] as const satisfies readonly (readonly [string, keyof TaskKobjIdsEntry])[];

/** The kinds a restore makes: where the root task's ids (ids-PID.img) differ from CRIU's own (inventory.img root_ids). */
export function madeNamespaceKinds(root: TaskKobjIdsEntry, criu: TaskKobjIdsEntry): string[] {
  return NS_KINDS.filter(([, field]) => root[field] !== criu[field]).map(([kind]) => kind);
}
