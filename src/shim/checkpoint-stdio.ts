/**
 * The container init's stdio across a checkpoint.
 *
 * runc records fds 0..2 as readlink strings (`descriptors.json`: "pipe:[123]", "/dev/null") and, on
 * restore, hands CRIU the new task's pipes under the old pipe names (`inherit_fd`). cryo's shim
 * gives a container its stdout/stderr FIFOs directly (docs/shim.md), and a host FIFO lives on a
 * mount the container's mount namespace does not have, which CRIU cannot dump. So a descriptor
 * whose mount is not one of the container's is dumped as an external file, `file[MNT:INO]` (CRIU's
 * key, hex), and restored from the new task's descriptor under that key, exactly like a pipe.
 *
 * A character device of the host counts too: the host's /dev/null, which a restore gives each of fds 0..2 that the
 * new task has no IO for (a Create with stdin "", as CRI's for a container without stdin). runc's create reopens such
 * a /dev/null as the container's own, but a restore cannot: the container's /dev is made by CRIU. Not keyed, the
 * restored container's next dump failed (CRIU: "Can't lookup mount=N for fd=0 path=/dev/null").
 */
import { readFileSync, readlinkSync, statSync } from "node:fs";
import { fdTargets, processTree } from "../sys/proc.ts";

/**
 * runc's name for the stdio record in the images directory (checkpoint-dump.ts writes it under the same
 * name; here so that a restore reads it without loading the dump's module).
 */
export const DESCRIPTORS_FILE = "descriptors.json";

/** One of fds 0..2 of the init at dump time. */
export interface DumpedStdio {
  /** readlink of /proc/<pid>/fd/<n>, as runc records it. */
  descriptor: string;
  /** CRIU's key when the file is outside the container (dumped as external), else null. */
  criuKey: string | null;
}

/** Mount ids of a process's mount namespace (first field of /proc/<pid>/mountinfo). */
export function mountIds(mountinfo: string): Set<number> {
  const ids = new Set<number>();
  for (const line of mountinfo.split("\n")) {
    const id = Number(line.split(" ", 1)[0]);
    if (line !== "" && Number.isInteger(id)) ids.add(id);
  }
  return ids;
}

/** The `mnt_id:` field of /proc/<pid>/fdinfo/<fd> text. */
export function fdinfoMountId(fdinfo: string): number | undefined {
  const m = /^mnt_id:\s*(\d+)/m.exec(fdinfo);
  return m ? Number(m[1]) : undefined;
}

/** CRIU's external-file key for a file on mount mntId with inode ino ("file[%x:%lx]"). */
export function externalFileKey(mntId: number, ino: bigint): string {
  return `file[${mntId.toString(16)}:${ino.toString(16)}]`;
}

/** The external key of pid's fd when its file is on a mount outside the container (own), else null. */
function outsideKey(pid: number, fd: number, own: ReadonlySet<number>): string | null {
  try {
    const mnt = fdinfoMountId(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
    if (mnt === undefined || own.has(mnt)) return null;
    const st = statSync(`/proc/${pid}/fd/${fd}`, { bigint: true });
    return st.isFIFO() || st.isFile() || st.isCharacterDevice() ? externalFileKey(mnt, st.ino) : null;
  } catch {
    return null; // closed meanwhile
  }
}

/** The external key of the first descriptor of pids that names path on a mount outside the container, if any. */
function findOutside(pids: readonly number[], path: string, own: ReadonlySet<number>): string | null {
  for (const p of pids) {
    for (const { fd, target } of fdTargets(p)) {
      if (target !== path) continue;
      const key = outsideKey(p, fd, own);
      if (key !== null) return key;
    }
  }
  return null;
}

/**
 * Reads fds 0..2 of pid; files on mounts outside the container get an external key. expected: the files runc recorded
 * for fds 0..2 at create (state.json's external_descriptors). One the init has moved away for now is looked for at its
 * other descriptors, then its descendants': a shell runs `cmd > file` in its own process by moving its stdout to fd 10
 * and back, so a tree frozen in between had the FIFO at fd 10 only, and CRIU failed the dump on it ("Can't lookup
 * mount=27 for fd=10 path=/run/containerd/fifo/...-stdout"; seen in checkpoint-cancel's checkpoints of a paused counter
 * on a loaded machine). Keyed by its role, the restore hands the new task's FIFO in its place wherever it was.
 */
export function inspectStdio(pid: number, expected: readonly string[] = []): DumpedStdio[] {
  const own = mountIds(readFileSync(`/proc/${pid}/mountinfo`, "utf8"));
  const out: DumpedStdio[] = [];
  let tree: number[] | undefined;
  for (let fd = 0; fd < 3; fd++) {
    let descriptor: string;
    try {
      descriptor = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      descriptor = "";
    }
    let criuKey = descriptor.startsWith("/") ? outsideKey(pid, fd, own) : null;
    const want = expected[fd];
    if (criuKey === null && want !== undefined && want.startsWith("/") && want !== descriptor) {
      criuKey = findOutside((tree ??= processTree(pid)), want, own);
    }
    out.push({ descriptor, criuKey });
  }
  return out;
}

/** `--external` entries for the stdio files dumped as external (each once). */
export function stdioExternals(stdio: readonly DumpedStdio[]): string[] {
  return [...new Set(stdio.map((s) => s.criuKey).filter((k): k is string => k !== null))];
}

/**
 * Whether the checkpointed task's stdout or stderr was a pipe (a `file://` or `binary://` log's, which the shim copied
 * from): its restore then gets pipes again, which the shim copies into the new task's FIFOs. CRIU reopens an inherited
 * pipe through /proc/self/fd/N with the flags it dumped (write-only), so a FIFO handed over in its place came back
 * write-only, without a reader once the shim closed its copy: the restored tree's writes failed with EPIPE, and every
 * process but the init died of SIGPIPE (a helper session; runc's shim copies from pipes).
 */
export function outputWasPipe(descriptors: readonly string[], criuKeys: readonly (string | null)[] | undefined): boolean {
  return [1, 2].some((i) => (criuKeys?.[i] ?? descriptors[i] ?? "").startsWith("pipe:"));
}

/**
 * The inherit-fd pairs of a restore: for each old fd n whose key CRIU will look up (a pipe, or an
 * external file), the new task's fd n. A key is given once (the first fd that had it).
 */
export function restoreInheritFds(descriptors: readonly string[], criuKeys: readonly (string | null)[] | undefined, newFds: readonly number[]): { fd: number; key: string }[] {
  const out: { fd: number; key: string }[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < Math.min(3, newFds.length); i++) {
    const key = criuKeys?.[i] ?? descriptors[i];
    if (key === undefined || key === null) continue;
    if (!key.startsWith("pipe:") && !key.startsWith("file[")) continue;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ fd: newFds[i]!, key });
    // CRIU 4.2 looks an external file up twice: first by its "path", which for an external file is its
    // key without the first character ("ile[..]"), and only then by the key, on a path that reopens
    // /proc/<pid>/fd/N with the pid of the restored task's own pid namespace (wrong inside the
    // container's new pid namespace). Giving the first name hands CRIU the descriptor as it is.
    if (key.startsWith("file[")) out.push({ fd: newFds[i]!, key: key.slice(1) });
  }
  return out;
}
