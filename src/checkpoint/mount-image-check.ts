/**
 * What of the mount images (mountpoints-<id>.img) the restore lets CRIU mount: the mounts a container of the
 * new spec has, with the spec's protections.
 *
 * CRIU mounts every entry of the image again, as root, with the recorded file system type, subtree and
 * flags. runc's restore does not look. So a crafted image could leave out the read-only mount runc puts over
 * /proc/sys (root in the container could then write kernel.core_pattern: code run by the host's kernel), leave
 * a masked path unmasked, mount sysfs or a spec's read-only bind read-write, mount a second procfs
 * elsewhere, or mount debugfs or tracefs. cryo refuses, before anything is made, an image in which
 * - a mount point or a mounted root is not an absolute path without empty, `.` or `..` components (CRIU takes
 *   `..` for a name and climbs with it when it builds a bind's source), or two mounts share a mount point
 *   without one being mounted on the other (a stack, the upper hiding the lower, is what a container has when a
 *   mount's destination is another's: each of the stack is checked as any mount), or two of a stack are given by
 *   the restore under one external key;
 * - a mount given by the restore (an external key) is keyed otherwise than cryo's dump keys it: a bind, device
 *   or cgroup bind by its own destination, a mask (`/dev/null`, the masked directory, read-only) only at a
 *   masked path, an empty tmpfs by its destination; so no key's source lands elsewhere (`CRIU:` keys neither);
 * - a mount of its own has a file system other than proc, sysfs, tmpfs, devpts, mqueue and cgroups (not even
 *   the rootfs's: CRIU mounts it anew where its options differ), or CRIU would bind it from the rootfs or a
 *   mount the restore gives (same device and a root within theirs, or their peer group) instead of mounting it;
 * - a whole procfs or sysfs is mounted other than where the spec mounts it, or a part of one other than over
 *   itself (runc's read-only paths) or read-write; a cgroup file system other than at or below where the spec
 *   mounts cgroup, or anything read-write there when the spec's cgroup mount is `ro` (but the tmpfs runc mounts a
 *   v1 cgroup mount as, which runc leaves read-write). Below a spec's recursive bind (`rbind`), a cgroup file system
 *   the bind brings in is allowed: the host has the same hierarchy mounted at the same place below the bind's
 *   source, with the same root (and, read-only there or under an `rro` bind, read-only);
 * - a mount at a destination where the spec's mount is `ro` (or `rro`) is read-write (sysfs, cgroups,
 *   read-only binds), or the rootfs's is where the spec's `root.readonly` is true (CRIU mounts the bundle's
 *   rootfs with the image's flags). Read-only as CRIU mounts it: with MS_RDONLY and the superblock flags
 *   recorded (without them CRIU remounts a bind read-write);
 * - a path of the spec's `linux.readonlyPaths` has no mount, or a read-write one, or a read-write mount below
 *   it that is not a masked path; a path of `linux.maskedPaths` has no mask. A path that does not exist on
 *   this host (for paths in /proc and /sys) or in the new rootfs is skipped, as runc skips it. Spec paths are
 *   compared normalised, and spec mounts where they land (the rootfs's symbolic links resolved inside it);
 * - a mount point has a symbolic link on its way, in the rootfs or in the source of a spec's bind it lies
 *   below (checkMountpointLinks), which CRIU would not resolve inside the container.
 *
 * All of the above is about the mount namespace of the tree's root task (its ids-<pid>.img names it), the one
 * runc made. A process of the container may have made more (`unshare -m`, a sandbox, a service with a private
 * /tmp): CRIU dumps one mountpoints-<id>.img for each, whose mounts are copies of the container's, none of them
 * given by the restore, and mounts of the process's own. CRIU binds each copy from a mount of the same device
 * whose root holds its root (the external ones included), and mounts the others anew. Such an image is checked by
 * checkNestedMountEntries: only where the spec grants CAP_SYS_ADMIN (without it no process of the container makes
 * a mount namespace), and each of its mounts a copy of (a part of) a mount the restore gives, of the rootfs or of a
 * file system of the container's own namespace (checked above), read-only where that one is, or a new tmpfs,
 * devpts, mqueue or proc (no sysfs nor cgroups, which would show the host's).
 */
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { readRegularFile } from "../sys/regular-file.ts";
import { join, posix } from "node:path";
import { isFieldSet } from "@bufbuild/protobuf";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { Fstype, MntEntrySchema, type MntEntry } from "../gen/criu/mnt_pb.ts";
import { invalidArgument } from "../errors.ts";
import { capabilityNumber, grantedCapabilities } from "../criu/capabilities.ts";
import { TaskKobjIdsEntrySchema } from "../gen/criu/core_pb.ts";
import { PstreeEntrySchema } from "../gen/criu/pstree_pb.ts";
import { parseMountinfo } from "../cgroups/mountinfo.ts";
import { cleanAbsolute, readCheckpointImage } from "./image-paths.ts";
import { resolveDestInRoot } from "./restore-root.ts";
import { MASKED_DIR_KEY } from "./runc-criu.ts";
import { MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_RELATIME, MS_STRICTATIME } from "../sys/mount-flags.ts";

/** The spec fields the check reads (OCI runtime spec). */
export interface MountSpec {
  mounts?: unknown;
  root?: { readonly?: unknown };
  process?: { capabilities?: Partial<Record<string, unknown>> };
  linux?: { maskedPaths?: unknown; readonlyPaths?: unknown };
}

/** A host mount a spec's recursive bind brings into the container, where a mount point lands in the bind's source. */
export interface HostSubmount {
  fsType: string;
  root: string;
  superOptions: string[];
  /** Read-only on the host, or under a recursively read-only (`rro`) bind. */
  ro: boolean;
}

/** File systems CRIU may mount from the image itself. */
const MOUNTABLE = new Set([Fstype.PROC, Fstype.SYSFS, Fstype.TMPFS, Fstype.DEVPTS, Fstype.MQUEUE, Fstype.CGROUP, Fstype.CGROUP2]);
/** File systems CRIU may mount anew in a mount namespace a process of the container made (checkNestedMountEntries). */
const NESTED_NEW = new Set([Fstype.PROC, Fstype.TMPFS, Fstype.DEVPTS, Fstype.MQUEUE]);

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
const below = (p: string, dir: string) => p === dir || p.startsWith(dir === "/" ? "/" : `${dir}/`);
/** A spec path as the image would name it: normalised, without a trailing slash. */
const specPath = (p: string) => (p.startsWith("/") ? posix.normalize(p).replace(/(.)\/+$/, "$1") : posix.normalize(`/${p}`).replace(/(.)\/+$/, "$1"));

/** The external keys cryo's dump gives masks and empty tmpfs mounts (runc-criu.ts); any other key is the mount's own destination. */
const DEV_NULL_KEY = "/dev/null";
const EMPTY_TMPFS_KEY = "cryo-empty-tmpfs";

/**
 * Checks the mount entries of the image against spec (see the module comment). exists tells whether a path of
 * the spec's masked or read-only lists exists where the container would see it.
 */
export function checkMountEntries(
  entries: readonly MntEntry[],
  spec: MountSpec,
  where: string,
  exists: (path: string) => boolean,
  image = "mount image",
  resolveDest: (path: string) => string = (p) => p,
  rbindSubmount: (mountpoint: string) => HostSubmount | undefined = () => undefined,
): void {
  const refuse = (detail: string) => invalidArgument(where, { detail: `${image}: ${detail}` });
  // Where each spec mount lands: its destination with the rootfs's symbolic links resolved (as runc mounts it,
  // and as the image names an honest dump's mount point).
  const specMounts = (Array.isArray(spec.mounts) ? spec.mounts : []).flatMap((m: { destination?: unknown; type?: unknown; options?: unknown }) =>
    typeof m?.destination === "string"
      ? [{ destination: resolveDest(specPath(m.destination)), type: typeof m.type === "string" ? m.type : "", ro: strings(m.options).some((o) => o === "ro" || o === "rro") }]
      : [],
  );
  // Read-only as CRIU mounts it: with no superblock flags recorded, CRIU moves MS_RDONLY from the mount's flags to
  // the superblock's, and remounts a bind with the mount's flags alone, read-write.
  const ro = (e: MntEntry) => (e.flags & MS_RDONLY) !== 0 && isFieldSet(e, MntEntrySchema.field.sbFlags);
  const named = (e: MntEntry) => `${Fstype[e.fstype] ?? `file system ${e.fstype}`} mount at ${e.mountpoint}${e.root !== "/" ? ` (its ${e.root})` : ""}`;
  const masked = strings(spec.linux?.maskedPaths).map(specPath);
  const external = (e: MntEntry) => e.extKey !== "" || e.extMount;
  const dests = (types: string[]) => specMounts.filter((m) => types.includes(m.type));
  const given = entries.filter((e) => external(e) || e.mountpoint === "/");
  // The given mount (or the rootfs) CRIU would bind a mount of its own from, instead of mounting it anew
  // (criu/mount.c propagate_mount, propagate_siblings): one of the same device whose root holds the mount's root,
  // or one of its peer group (shared, or the master of a slave).
  const bindSource = (e: MntEntry) =>
    given.find((g) => g !== e && ((g.rootDev === e.rootDev && below(e.root, g.root)) || (g.sharedId !== 0 && (g.sharedId === e.sharedId || g.sharedId === e.masterId))));
  const visible = checkStacks(entries, refuse);
  for (const e of entries) {
    if (!cleanAbsolute(e.mountpoint) || !cleanAbsolute(e.root)) throw refuse(`${named(e)}: its mount point and root must be absolute paths without empty, "." or ".." components`);
    if (e.mountpoint === "/") {
      // The rootfs: CRIU restores onto the bundle's (only its flags are the image's).
      if (spec.root?.readonly === true && !ro(e)) throw refuse(`${named(e)}: the rootfs is read-write, and the spec's root.readonly makes it read-only`);
    } else if (external(e)) {
      // Given by the restore, whose source the spec confines: the key must be the one cryo's dump gives a mount there.
      const k = e.extKey;
      if (k === DEV_NULL_KEY || k === MASKED_DIR_KEY) {
        if (!masked.includes(e.mountpoint) && e.mountpoint !== k) throw refuse(`${named(e)}: external ${JSON.stringify(k)} is only a mask of a masked path, and the spec does not mask ${e.mountpoint}`);
        if (k === MASKED_DIR_KEY && !ro(e)) throw refuse(`${named(e)}: a masked directory is read-only`);
      } else if (k.startsWith(`${EMPTY_TMPFS_KEY}/`)) {
        if (k !== `${EMPTY_TMPFS_KEY}${e.mountpoint}`) throw refuse(`${named(e)}: external ${JSON.stringify(k)} belongs at ${k.slice(EMPTY_TMPFS_KEY.length)}`);
      } else if (k !== e.mountpoint) {
        throw refuse(`${named(e)}: external ${JSON.stringify(k)} is not this mount's destination (cryo's dump keys a bind by where it is mounted)`);
      }
    } else {
      if (!MOUNTABLE.has(e.fstype)) throw refuse(`${named(e)}${e.fsname ? ` (${e.fsname})` : ""}: a container of the spec mounts no such file system`);
      // A new mount of its own, which CRIU would bind from a mount the restore gives (its host source). A
      // mount of the same device that CRIU cannot bind it from is fine: runc's masks are /dev/null binds of the
      // container's /dev tmpfs (root /null), which a /dev dumped whole shares its device with.
      const from = bindSource(e);
      if (from) throw refuse(`${named(e)}: CRIU would bind it from the ${from.mountpoint === "/" ? "rootfs" : `mount the restore gives at ${from.mountpoint}`} (${from.rootDev === e.rootDev ? `device ${e.rootDev}` : `peer group ${from.sharedId}`})`);
    }
    if (masked.includes(e.mountpoint) && !(e.extKey === DEV_NULL_KEY || e.extKey === MASKED_DIR_KEY)) throw refuse(`${named(e)}: the spec masks ${e.mountpoint}, and this is not a mask`);
    if ((e.fstype === Fstype.PROC || e.fstype === Fstype.SYSFS) && !external(e)) {
      const [kind, fs] = e.fstype === Fstype.PROC ? ["proc", "proc"] : ["sysfs", "sysfs"];
      const homes = dests([kind]).map((m) => m.destination);
      // The whole file system where the spec mounts it; a part of it only read-only over itself (runc's read-only paths).
      if (e.root === "/" && !homes.includes(e.mountpoint)) throw refuse(`${named(e)}: the spec mounts ${fs} only at ${homes.join(", ") || "no place"}`);
      if (e.root !== "/" && !homes.some((h) => e.mountpoint === (h === "/" ? e.root : `${h}${e.root}`))) throw refuse(`${named(e)}: a part of ${fs} is only mounted over itself`);
      if (e.root !== "/" && !ro(e)) throw refuse(`${named(e)} is read-write`);
    }
    // runc mounts a v1 cgroup mount as a tmpfs with one bind per hierarchy below it (cryo's dump keeps those
    // external): the binds are read-only when the spec's mount is. The tmpfs itself runc 1.1 leaves read-write
    // (a container whose spec mounts cgroup `ro`, as CRI's and Docker's do, shows `rw,nosuid,nodev,noexec,relatime
    // tmpfs` there), so it comes back as runc made it: nothing is writable that a new container of the spec lacks.
    const runcCgroupTmpfs = (m: { destination: string; type: string }) => m.type === "cgroup" && e.fstype === Fstype.TMPFS && e.mountpoint === m.destination;
    const cgroupAt = dests(["cgroup", "cgroup2"]).filter((m) => below(e.mountpoint, m.destination));
    if ((e.fstype === Fstype.CGROUP || e.fstype === Fstype.CGROUP2) && !external(e) && cgroupAt.length === 0) {
      // A hierarchy a recursive bind of the host's cgroup tree brought in (`rbind` of /sys/fs/cgroup): the same as
      // the host has there, so nothing a new container of the spec lacks.
      const host = rbindSubmount(e.mountpoint);
      // A v1 hierarchy is named by its super options (its controllers, `name=`); cgroup2 has one hierarchy.
      const controllers = (options: string[]) => (e.fstype === Fstype.CGROUP ? options.filter((o) => o !== "" && o !== "rw" && o !== "ro").sort().join(",") : "");
      const same = host && host.fsType === (e.fstype === Fstype.CGROUP ? "cgroup" : "cgroup2") && host.root === e.root && controllers(host.superOptions) === controllers(e.options.split(",").filter((o) => o !== ""));
      if (!same) {
        const where = dests(["cgroup", "cgroup2"]).map((m) => m.destination).join(", ") || "no place";
        throw refuse(`${named(e)}: the spec mounts cgroups only at ${where}${host ? `, and the host's mount its recursive bind brings there is ${host.fsType} (its ${host.root}, ${host.superOptions.join(",")})` : ""}`);
      }
      if (host.ro && !ro(e)) throw refuse(`${named(e)} is read-write, and the host's mount the spec's bind brings there is read-only`);
    }
    const roCgroup = cgroupAt.find((m) => m.ro && !runcCgroupTmpfs(m));
    if (roCgroup && !ro(e)) throw refuse(`${named(e)} is read-write, and the spec mounts ${roCgroup.destination} read-only`);
    const specAt = specMounts.find((m) => m.destination === e.mountpoint && m.ro && !runcCgroupTmpfs(m));
    if (specAt && !ro(e)) throw refuse(`${named(e)} is read-write, and the spec mounts ${specAt.destination} read-only`);
  }
  // What the container sees at p: a mount hidden under a stack does not protect it.
  const at = (p: string) => entries.filter((e) => e.mountpoint === p && visible(e));
  for (const p of strings(spec.linux?.readonlyPaths).map(specPath)) {
    if (!exists(p)) continue;
    if (at(p).length === 0) throw refuse(`nothing is mounted at ${p}, which the spec makes read-only`);
    const rw = entries.find((e) => below(e.mountpoint, p) && !ro(e) && !(e.mountpoint !== p && masked.includes(e.mountpoint)));
    if (rw) throw refuse(`${named(rw)} is read-write, and the spec makes ${p} read-only`);
  }
  for (const p of masked) {
    if (exists(p) && at(p).length === 0) throw refuse(`nothing is mounted at ${p}, which the spec masks`);
  }
}

/**
 * Checks the mounts of a mount namespace a process of the container made (not the root task's, whose mounts are
 * rootEntries) as CRIU will restore them (see the module comment). grantsSysAdmin: the spec grants CAP_SYS_ADMIN.
 */
export function checkNestedMountEntries(entries: readonly MntEntry[], rootEntries: readonly MntEntry[], grantsSysAdmin: boolean, where: string, image: string): void {
  const refuse = (detail: string) => invalidArgument(where, { detail: `${image}: ${detail}` });
  if (!grantsSysAdmin) throw refuse("a mount namespace other than the container's, which no process of a container without CAP_SYS_ADMIN makes");
  const named = (e: MntEntry) => `${Fstype[e.fstype] ?? `file system ${e.fstype}`} mount at ${e.mountpoint}${e.root !== "/" ? ` (its ${e.root})` : ""}`;
  // What CRIU binds a copy from: a mount the restore gives (external) or the rootfs, in the container's namespace.
  const given = rootEntries.filter((g) => g.extKey !== "" || g.extMount || g.mountpoint === "/");
  checkStacks(entries, refuse);
  for (const e of entries) {
    if (!cleanAbsolute(e.mountpoint) || !cleanAbsolute(e.root)) throw refuse(`${named(e)}: its mount point and root must be absolute paths without empty, "." or ".." components`);
    if (e.extKey !== "" || e.extMount) throw refuse(`${named(e)}: external ${JSON.stringify(e.extKey)}: the restore gives mounts only to the container's own mount namespace`);
    // A copy of (a part of) a given mount: CRIU binds it from that one, read-only where it is.
    // The nearest (longest root) of each kind: a copy of runc's read-only /proc/sys is one of it, not of /proc.
    const nearest = (ms: MntEntry[]) => ms.sort((a, b) => b.root.length - a.root.length)[0];
    const from = nearest(given.filter((g) => g.rootDev === e.rootDev && below(e.root, g.root)));
    if (from) {
      if ((from.flags & MS_RDONLY) !== 0 && (e.flags & MS_RDONLY) === 0) throw refuse(`${named(e)} is read-write, and the mount the restore gives at ${from.mountpoint}, of which it is a copy, is read-only`);
      continue;
    }
    // A copy of (a part of) a mount of the container's own namespace, checked there (its proc, sysfs, cgroups, /dev):
    // CRIU binds it from that one; read-only where that one is.
    const own = nearest(rootEntries.filter((r) => r.fstype === e.fstype && r.rootDev === e.rootDev && below(e.root, r.root) && MOUNTABLE.has(r.fstype)));
    if (own) {
      if ((own.flags & MS_RDONLY) !== 0 && (e.flags & MS_RDONLY) === 0) throw refuse(`${named(e)} is read-write, and the container's mount at ${own.mountpoint}, of which it is a copy, is read-only`);
      continue;
    }
    // Else only a new file system of a kind that shows nothing of the host (not sysfs nor cgroups: a user namespace's
    // CAP_SYS_ADMIN mounts neither, and CRIU mounts as the host's root).
    if (e.mountpoint === "/" || !NESTED_NEW.has(e.fstype)) throw refuse(`${named(e)}${e.fsname ? ` (${e.fsname})` : ""}: neither a copy of a mount of the container nor a file system a process of it mounts in a namespace of its own (tmpfs, devpts, mqueue, proc)`);
    // A file system of the container's own that CRIU would bind from a given mount's peer group: not a copy of it.
    const peer = given.find((g) => g.sharedId !== 0 && (g.sharedId === e.sharedId || g.sharedId === e.masterId));
    if (peer) throw refuse(`${named(e)}: CRIU would bind it from the mount the restore gives at ${peer.mountpoint} (peer group ${peer.sharedId})`);
  }
}

/**
 * Mounts that share a mount point must be a stack, each mounted on the one below (`ctr run --mount
 * type=tmpfs,dst=/run` over the spec's own /run tmpfs, or a spec with two mounts at one destination): CRIU mounts
 * them so, as the container had them, the upper hiding the lower. Two side by side, or two of a stack given by
 * the restore under one external key (CRIU would give both one source), are refused. Returns whether a mount is
 * seen in the container: not hidden by a stack (at or below its place, only its top and what descends from it).
 */
function checkStacks(entries: readonly MntEntry[], refuse: (detail: string) => Error): (e: MntEntry) => boolean {
  const byPoint = new Map<string, MntEntry[]>();
  for (const e of entries) byPoint.set(e.mountpoint, [...(byPoint.get(e.mountpoint) ?? []), e]);
  const tops: MntEntry[] = []; // the upper mount of each stack
  for (const [point, stack] of byPoint) {
    if (stack.length < 2) continue;
    const ids = new Set(stack.map((e) => e.mntId));
    const bottoms = stack.filter((e) => !ids.has(e.parentMntId) || e.parentMntId === e.mntId);
    const parents = new Set(stack.map((e) => e.parentMntId));
    if (ids.size !== stack.length || bottoms.length !== 1 || parents.size !== stack.length) throw refuse(`${stack.length} mounts at ${point} that are not each mounted on the one below`);
    const keys = stack.map((e) => e.extKey).filter((k) => k !== "");
    if (new Set(keys).size !== keys.length) throw refuse(`two mounts at ${point} given by the restore under one key`);
    tops.push(stack.find((e) => !parents.has(e.mntId))!);
  }
  const byId = new Map(entries.map((e) => [e.mntId, e]));
  const descends = (e: MntEntry, top: MntEntry) => {
    const seen = new Set<number>();
    for (let m: MntEntry | undefined = e; m && !seen.has(m.mntId); m = byId.get(m.parentMntId)) {
      if (m === top) return true;
      seen.add(m.mntId);
    }
    return false;
  };
  // Seen in the container: at or below a stack's place, only the top and what is mounted on it.
  return (e) => tops.every((t) => !below(e.mountpoint, t.mountpoint) || descends(e, t));
}

/**
 * Whether path exists as a container of spec would see it: paths below the spec's proc or sysfs mounts on
 * this host's /proc and /sys, others in rootfs (not following a last symbolic link).
 */
export function containerPathExists(spec: MountSpec, rootfs: string): (path: string) => boolean {
  const mounts = Array.isArray(spec.mounts) ? (spec.mounts as { destination?: unknown; type?: unknown }[]) : [];
  return (path) => {
    for (const m of mounts) {
      if (typeof m?.destination !== "string" || (m.type !== "proc" && m.type !== "sysfs")) continue;
      if (below(path, m.destination)) return existsSync(join(m.type === "proc" ? "/proc" : "/sys", path.slice(m.destination.length)));
    }
    try {
      lstatSync(join(rootfs, path));
      return true;
    } catch {
      return false;
    }
  };
}

/**
 * Refuses a mount point with a symbolic link on its way, in the directory tree its nearest mount above shows
 * there: the rootfs, or the host directory of a bind mount of the spec (`bindSources`: where the bind lands ->
 * its source). CRIU does not resolve such a link inside the container: its current mount engine then fails to
 * find the mount point, and its older one (mntns-compat-mode) mounts in a copy of the host's mount namespace,
 * where the link leads out of the container (a bind over a host directory, which reaches the host where its
 * mounts are shared). An honest dump names the resolved path, as the container's mount table does. Below
 * other mounts (a tmpfs, whose contents CRIU makes) nothing is looked up.
 */
export function checkMountpointLinks(entries: readonly MntEntry[], rootfs: string, where: string, image = "mount image", bindSources: ReadonlyMap<string, string> = new Map()): void {
  const points = entries.map((e) => e.mountpoint);
  for (const e of entries) {
    if (e.mountpoint === "/") continue;
    const nearest = points.filter((p) => p !== e.mountpoint && below(e.mountpoint, p)).sort((a, b) => b.length - a.length)[0];
    if (nearest === undefined) continue;
    const base = nearest === "/" ? rootfs : bindSources.get(nearest);
    if (base === undefined) continue;
    const tree = nearest === "/" ? "the rootfs" : `the source of the bind at ${nearest} (${base})`;
    let here = base;
    for (const c of e.mountpoint.slice(nearest.length).split("/").filter((part) => part !== "")) {
      here = join(here, c);
      let st;
      try {
        st = lstatSync(here);
      } catch {
        break; // made at the restore, as a directory
      }
      if (st.isSymbolicLink()) {
        const path = posix.join(nearest, here.slice(join(base).length));
        throw invalidArgument(where, {
          detail: `${image}: the mount at ${e.mountpoint} goes through ${path}, a symbolic link in ${tree} (to ${readlinkSync(here)}), which CRIU would not resolve inside the container`,
        });
      }
      if (!st.isDirectory()) break;
    }
  }
}

/**
 * With CRIU's older mount engine only (`[restore] mntns_compat_mode`): refuses a mount below a tmpfs whose contents
 * CRIU extracts from the checkpoint (`hasContents(dev)`: its tmpfs-dev-<dev>.tar.gz.img exists). That engine
 * extracts them and then mounts below them, in a copy of the host's mount namespace, so a symbolic link among
 * those contents on the way would lead the mount out of the container. The current engine builds the tree in a
 * namespace of its own, where no link reaches the host.
 */
export function checkCompatModeMounts(entries: readonly MntEntry[], hasContents: (dev: number) => boolean, where: string, image = "mount image"): void {
  for (const t of entries) {
    if (t.fstype !== Fstype.TMPFS || t.extKey !== "" || t.extMount || !hasContents(t.rootDev)) continue;
    const nested = entries.find((e) => e.mountpoint !== t.mountpoint && below(e.mountpoint, t.mountpoint));
    if (nested) {
      throw invalidArgument(where, {
        detail: `${image}: with CRIU's older mount engine ([restore] mntns_compat_mode), the mount at ${nested.mountpoint} lies below the tmpfs at ${t.mountpoint}, whose contents come from the checkpoint: a symbolic link among them would lead it out of the container`,
      });
    }
  }
}

/** checkCompatModeMounts for every mount image of imagesDir. */
export function checkCompatModeImages(imagesDir: string, where: string): void {
  const hasContents = (dev: number) => existsSync(join(imagesDir, `tmpfs-dev-${dev}.tar.gz.img`));
  for (const name of readdirSync(imagesDir).filter((n) => /^mountpoints-\d+\.img$/.test(n))) {
    checkCompatModeMounts(decodeImage(MntEntrySchema, new Uint8Array(readRegularFile(join(imagesDir, name))), name, ImageMagic.mnts), hasContents, where, name);
  }
}

/** The per-mount flags a mount made for CRIU beforehand may carry: read-only, the restrictions and the access-time mode. */
export const STAGED_MOUNT_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME;

/**
 * External key -> the mount's recorded per-mount flags, limited to STAGED_MOUNT_FLAGS: the flags CRIU bind-remounts
 * that external mount with. A mount the restore makes for CRIU (a new tmpfs, a source bound in for a user namespace)
 * gets them up front: in a user namespace of the container's own the kernel refuses CRIU's remount (EPERM) when it
 * changes the access-time mode of a mount made outside, or clears one of its restrictions (they are locked there).
 */
export function externalMountFlags(entries: readonly MntEntry[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of entries) if (e.extKey !== "") out.set(e.extKey, e.flags & STAGED_MOUNT_FLAGS);
  return out;
}

/**
 * Where a container's mount point lies below a spec's recursive bind (the nearest), the host's mount at the matching
 * place below the bind's source (this process's mount table, the shim's: the host's), if any.
 */
export function hostSubmounts(rbinds: readonly { dest: string; source: string; rro: boolean }[], mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): (mountpoint: string) => HostSubmount | undefined {
  const host = parseMountinfo(mountinfo);
  return (mountpoint) => {
    const bind = rbinds.filter((b) => b.dest !== mountpoint && below(mountpoint, b.dest)).sort((a, b) => b.dest.length - a.dest.length)[0];
    if (!bind) return undefined;
    const at = posix.join(bind.source, mountpoint.slice(bind.dest.length));
    // The last mount there is the one seen.
    const m = host.filter((h) => h.mountPoint === at).at(-1);
    return m ? { fsType: m.fsType, root: m.root, superOptions: m.superOptions, ro: bind.rro || m.mountOptions.includes("ro") } : undefined;
  };
}

/**
 * Reads and checks every mount image of imagesDir (mountpoints-<id>.img). Returns the external mounts' flags
 * (externalMountFlags) of all of them.
 */
export function checkMountImages(imagesDir: string, spec: MountSpec, where: string, rootfs: string): Map<string, number> {
  const exists = containerPathExists(spec, rootfs);
  const resolved = new Map<string, string>();
  const resolve = (p: string) => resolved.get(p) ?? resolved.set(p, resolveDestInRoot(rootfs, p)).get(p)!;
  // Where each of the spec's bind mounts lands -> its host directory (a relative source is the bundle's, the rootfs's parent).
  const bindSources = new Map<string, string>();
  // The recursive ones: where each lands -> its host directory, and whether it is recursively read-only.
  const rbinds: { dest: string; source: string; rro: boolean }[] = [];
  const flags = new Map<string, number>();
  for (const m of Array.isArray(spec.mounts) ? (spec.mounts as { destination?: unknown; type?: unknown; source?: unknown; options?: unknown }[]) : []) {
    const options = strings(m?.options);
    const bind = m?.type === "bind" || options.some((o) => o === "bind" || o === "rbind");
    if (bind && typeof m.destination === "string" && typeof m.source === "string") {
      const dest = resolve(specPath(m.destination));
      const source = posix.resolve(posix.dirname(rootfs), m.source);
      bindSources.set(dest, source);
      if (options.includes("rbind")) rbinds.push({ dest, source, rro: options.includes("rro") });
    }
  }
  const rbindSubmount = rbinds.length === 0 ? undefined : hostSubmounts(rbinds);
  const images = new Map(
    readdirSync(imagesDir)
      .filter((n) => /^mountpoints-\d+\.img$/.test(n))
      .map((name) => [name, decodeImage(MntEntrySchema, new Uint8Array(readRegularFile(join(imagesDir, name))), name, ImageMagic.mnts)] as const),
  );
  // The container's mount namespace: the root task's. Others are ones its processes made (checkNestedMountEntries).
  const rootName = images.size > 1 ? `mountpoints-${rootMountNamespace(imagesDir, where)}.img` : [...images.keys()][0];
  const rootEntries = rootName === undefined ? undefined : images.get(rootName);
  if (images.size > 1 && rootEntries === undefined) throw invalidArgument(where, { detail: `${rootName}: the root task's mount namespace has no mount image` });
  const grantsSysAdmin = grantedCapabilities(spec.process?.capabilities).has(capabilityNumber("CAP_SYS_ADMIN"));
  for (const [name, entries] of images) {
    if (name === rootName) checkMountEntries(entries, spec, where, exists, name, resolve, rbindSubmount);
    else checkNestedMountEntries(entries, rootEntries!, grantsSysAdmin, where, name);
    checkMountpointLinks(entries, rootfs, where, name, bindSources);
    for (const [k, f] of externalMountFlags(entries)) flags.set(k, f);
  }
  return flags;
}

/** The id of the root task's mount namespace (pstree.img's first task, its ids-<pid>.img). */
function rootMountNamespace(imagesDir: string, where: string): number {
  const root = decodeImage(PstreeEntrySchema, readCheckpointImage(imagesDir, "pstree.img"), "pstree.img", ImageMagic.pstree)[0];
  if (!root) throw invalidArgument(where, { detail: "pstree.img: no task" });
  const idsName = `ids-${root.pid}.img`;
  const ids = decodeImage(TaskKobjIdsEntrySchema, readCheckpointImage(imagesDir, idsName), idsName, ImageMagic.ids)[0];
  if (!ids) throw invalidArgument(where, { detail: `${idsName}: no entry` });
  return ids.mntNsId;
}
