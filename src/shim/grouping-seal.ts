/**
 * When a shim daemon's group can no longer be joined ("sealed"), so that lingering after its last
 * container would only delay its exit. A Kubernetes pod's group is keyed by the
 * `io.kubernetes.cri.sandbox-id` annotation; once the sandbox container itself (id = sandbox id,
 * `io.kubernetes.cri.container-type: sandbox`) is deleted, or its Create failed, CRI never creates another
 * container in that pod. No protobuf or crypto here: the daemon loads this.
 */

/** CRI's annotation naming the pod sandbox a container belongs to (also a group annotation, see grouping.ts). */
export const SANDBOX_ID_ANNOTATION = "io.kubernetes.cri.sandbox-id";
/** CRI's annotation saying whether a container is the pod's sandbox or a container in it. */
export const CONTAINER_TYPE_ANNOTATION = "io.kubernetes.cri.container-type";
/** The annotation that names a group ahead of the sandbox id (containerd's runc shim reads it too). */
export const RUNC_GROUP_ANNOTATION = "io.containerd.runc.v2.group";
/** Environment variable through which `start` tells the daemon its group key. */
export const GROUP_KEY_ENV = "CRYO_SHIM_GROUP_KEY";

/**
 * True when deleting the container `id` (with these spec annotations) means no container will join
 * the group `key` again: it is the CRI sandbox whose id names the group (per-pod, no other group
 * annotation overriding the sandbox id).
 */
export function sealsGroup(key: string, id: string, annotations: Readonly<Record<string, string>>): boolean {
  if (id === "" || key !== `group/${id}`) return false;
  if (annotations[CONTAINER_TYPE_ANNOTATION] !== "sandbox" || annotations[SANDBOX_ID_ANNOTATION] !== id) return false;
  const runcGroup = annotations[RUNC_GROUP_ANNOTATION];
  return runcGroup === undefined || runcGroup === "" || runcGroup === id;
}

/** Tracks, in a daemon, whether its group has been sealed by the deletion of the container that closes it. */
export interface GroupSeal {
  /** A container was created; annotations are read (lazily) only for the one whose id could seal the group. */
  created(id: string, annotations: () => Readonly<Record<string, string>>): void;
  /** A container (its init, not an exec) was deleted. */
  deleted(id: string): void;
  /**
   * A container's Create failed. When it is the sandbox that keys the group, the pod never comes: CRI's RunPodSandbox
   * fails and cleans up, and its next attempt makes a sandbox with a new id (a new group). The group is sealed then.
   */
  createFailed(id: string, annotations: () => Readonly<Record<string, string>>): void;
  /** True once the sealing container has been deleted: the daemon exits without lingering. */
  readonly sealed: boolean;
}

/** A GroupSeal for the daemon of group key ("" when unknown: never sealed). */
export function createGroupSeal(key: string): GroupSeal {
  let sealer: string | undefined;
  let sealed = false;
  return {
    created(id, annotations) {
      if (key !== `group/${id}`) return;
      try {
        if (sealsGroup(key, id, annotations())) sealer = id;
      } catch {
        // unreadable annotations: the group is never sealed, the daemon lingers as before
      }
    },
    deleted(id) {
      if (sealer !== undefined && id === sealer) sealed = true;
    },
    createFailed(id, annotations) {
      if (key !== `group/${id}`) return;
      try {
        if (sealsGroup(key, id, annotations())) sealed = true;
      } catch {
        // unreadable annotations: not sealed, the daemon lingers as before
      }
    },
    get sealed() {
      return sealed;
    },
  };
}
