/**
 * containerd's CRI directory for a container, where Kubernetes' forensic checkpoint looks for CRIU's files.
 *
 * containerd 2.1 and later answer CRI CheckpointContainer (the kubelet's checkpoint API) by checkpointing the task,
 * then copying `stats-dump` (required: the call fails without it) and `dump.log` (if there) from their own
 * directory for the container, `<containerd root>/io.containerd.grpc.v1.cri/containers/<id>`, into the archive.
 * They get them there by giving runc's shim that directory as CRIU's work path, in runc's CheckpointOptions; any
 * other runtime gets no options at all, so nothing tells cryo the directory (read in containerd 2.2.4's
 * internal/cri/server/container_checkpoint_linux.go). cryo finds it from the spec: CRI bind-mounts the pod's
 * hostname, hosts, resolv.conf or shm from `<containerd root>/io.containerd.grpc.v1.cri/sandboxes/<pod id>/`.
 *
 * containerd 2.3.2 and later instead make a fresh `ctrd-checkpoint` directory in there before they checkpoint the
 * task, give runc's shim that one as CRIU's work path, and archive it without copying anything from the container's
 * directory (where the files had piled up); read in 2.3.4's container_checkpoint_linux.go. So where that
 * directory is, the files go into it (`criCheckpointFilesDir`).
 */
import { constants, copyFileSync, lstatSync, rmSync } from "node:fs";
import { join } from "node:path";

/** The CRI plugin's directory name under containerd's root (the same in 1.x and 2.x). */
const CRI_ROOT = "io.containerd.grpc.v1.cri";
/** Files CRI keeps in a sandbox's directory and mounts into its containers. */
const SANDBOX_FILE = new RegExp(`^(/.+)/${CRI_ROOT.replace(/\./g, "\\.")}/sandboxes/[^/]+/(?:hostname|hosts|resolv\\.conf|shm)$`);

interface SpecLike {
  annotations?: Record<string, unknown>;
  mounts?: { source?: unknown }[];
}

/**
 * The CRI directory of container `id`, or undefined when the container is not a CRI container (annotation
 * `io.kubernetes.cri.container-type: container`), no mount names a sandbox file, or the directory is not there as a
 * plain directory (never through a symbolic link).
 */
export function criContainerDir(spec: SpecLike, id: string): string | undefined {
  if (spec.annotations?.["io.kubernetes.cri.container-type"] !== "container") return undefined;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) return undefined;
  for (const mount of spec.mounts ?? []) {
    if (typeof mount.source !== "string") continue;
    const m = SANDBOX_FILE.exec(mount.source);
    if (!m) continue;
    const dir = `${m[1]}/${CRI_ROOT}/containers/${id}`;
    try {
      if (lstatSync(dir).isDirectory()) return dir;
    } catch {
      // not there: not this containerd's layout
    }
  }
  return undefined;
}

/** The directory containerd 2.3.2+ makes in a container's CRI directory for the checkpoint it is taking. */
export const CRI_CHECKPOINT_SUBDIR = "ctrd-checkpoint";

/**
 * Where CRIU's `dump.log` and `stats-dump` go for CRI: `<criDir>/ctrd-checkpoint` when it is there as a plain
 * directory (containerd 2.3.2+ makes it before the checkpoint and archives it), else criDir itself (2.1 to 2.3.1
 * copy the files from there after the checkpoint, and remove their own ctrd-checkpoint when done).
 */
export function criCheckpointFilesDir(criDir: string): string {
  const sub = join(criDir, CRI_CHECKPOINT_SUBDIR);
  try {
    if (lstatSync(sub).isDirectory()) return sub;
  } catch {
    // not there: containerd before 2.3.2
  }
  return criDir;
}

/** Copies file into dir under the same name, replacing what is there without following a link planted in its place. */
export function copyInto(file: string, dir: string, name: string): void {
  const target = join(dir, name);
  rmSync(target, { force: true });
  copyFileSync(file, target, constants.COPYFILE_EXCL);
}
