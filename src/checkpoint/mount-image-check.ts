/**
 * What of the mount images (mountpoints-<id>.img) the restore lets CRIU mount: the mounts a container of the
 * new spec has, with the spec's protections.
 *
 * CRIU mounts every entry of the image again, as root, with the recorded file system type, subtree and
 * flags. runc's restore does not look. So a crafted image could leave out the read-only mount runc puts over
 * /proc/sys (root in the container could then write kernel.core_pattern: code run by the host's kernel), leave
 * a masked path unmasked, mount sysfs or a spec's read-only bind read-write, mount a second procfs
 * elsewhere, or mount debugfs or tracefs. cryo refuses, before anything is made, an image in which
 * - a mount not given by the restore (no external key) has a file system other than proc, sysfs, tmpfs,
 *   devpts, mqueue, cgroup and cgroup2 (the root mount aside: CRIU restores onto the bundle's rootfs; and the
 *   root's own file system, bound elsewhere);
 * - a whole procfs is mounted other than where the spec mounts proc; a part of procfs or sysfs is mounted
 *   read-write; sysfs is mounted other than where the spec mounts sysfs; a cgroup file system other than at
 *   or below where the spec mounts cgroup, or anything read-write there when the spec's cgroup mount is `ro`;
 * - a mount at a destination where the spec's mount is `ro` is read-write (sysfs, cgroups, read-only binds);
 * - a path of the spec's `linux.readonlyPaths` has no mount, or a read-write one, or a read-write mount below
 *   it that is not a masked path; a path of `linux.maskedPaths` has no mount. A path that does not exist on
 *   this host (for paths in /proc and /sys) or in the new rootfs is skipped, as runc skips it.
 */
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { Fstype, MntEntrySchema, type MntEntry } from "../gen/criu/mnt_pb.ts";
import { invalidArgument } from "../errors.ts";

const MS_RDONLY = 1;

/** The spec fields the check reads (OCI runtime spec). */
export interface MountSpec {
  mounts?: unknown;
  linux?: { maskedPaths?: unknown; readonlyPaths?: unknown };
}

/** File systems CRIU may mount from the image itself. */
const MOUNTABLE = new Set([Fstype.PROC, Fstype.SYSFS, Fstype.TMPFS, Fstype.DEVPTS, Fstype.MQUEUE, Fstype.CGROUP, Fstype.CGROUP2]);

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
const below = (p: string, dir: string) => p === dir || p.startsWith(dir === "/" ? "/" : `${dir}/`);

/**
 * Checks the mount entries of the image against spec (see the module comment). exists tells whether a path of
 * the spec's masked or read-only lists exists where the container would see it.
 */
export function checkMountEntries(entries: readonly MntEntry[], spec: MountSpec, where: string, exists: (path: string) => boolean, image = "mount image"): void {
  const refuse = (detail: string) => invalidArgument(where, { detail: `${image}: ${detail}` });
  const specMounts = (Array.isArray(spec.mounts) ? spec.mounts : []).flatMap((m: { destination?: unknown; type?: unknown; options?: unknown }) =>
    typeof m?.destination === "string" ? [{ destination: m.destination.replace(/\/+$/, "") || "/", type: typeof m.type === "string" ? m.type : "", ro: strings(m.options).includes("ro") }] : [],
  );
  const ro = (e: MntEntry) => (e.flags & MS_RDONLY) !== 0;
  const named = (e: MntEntry) => `${Fstype[e.fstype] ?? `file system ${e.fstype}`} mount at ${e.mountpoint}${e.root !== "/" ? ` (its ${e.root})` : ""}`;
  const rootDev = entries.find((e) => e.mountpoint === "/")?.rootDev;
  const masked = strings(spec.linux?.maskedPaths);
  for (const e of entries) {
    if (e.mountpoint === "/" || e.extKey !== "" || e.extMount) {
      // Given by the restore (the rootfs, an external bind whose source the spec confines): only its flags are the image's.
    } else if (!MOUNTABLE.has(e.fstype)) {
      if (e.rootDev !== rootDev) throw refuse(`${named(e)}${e.fsname ? ` (${e.fsname})` : ""}: a container of the spec mounts no such file system`);
    }
    const dests = (types: string[]) => specMounts.filter((m) => types.includes(m.type));
    if (e.fstype === Fstype.PROC && e.extKey === "") {
      if (e.root === "/" && !dests(["proc"]).some((m) => m.destination === e.mountpoint)) throw refuse(`${named(e)}: the spec mounts proc only at ${dests(["proc"]).map((m) => m.destination).join(", ") || "no place"}`);
      if (e.root !== "/" && !ro(e)) throw refuse(`${named(e)} is read-write`);
    }
    if (e.fstype === Fstype.SYSFS && e.extKey === "") {
      if (e.root === "/" && !dests(["sysfs"]).some((m) => m.destination === e.mountpoint)) throw refuse(`${named(e)}: the spec mounts sysfs only at ${dests(["sysfs"]).map((m) => m.destination).join(", ") || "no place"}`);
      if (e.root !== "/" && !ro(e)) throw refuse(`${named(e)} is read-write`);
    }
    // runc mounts a v1 cgroup mount as a tmpfs with one bind per hierarchy below it (cryo's dump keeps those
    // external): everything there is read-only when the spec's mount is.
    const cgroupAt = dests(["cgroup", "cgroup2"]).filter((m) => below(e.mountpoint, m.destination));
    if ((e.fstype === Fstype.CGROUP || e.fstype === Fstype.CGROUP2) && e.extKey === "" && cgroupAt.length === 0) {
      throw refuse(`${named(e)}: the spec mounts cgroups only at ${dests(["cgroup", "cgroup2"]).map((m) => m.destination).join(", ") || "no place"}`);
    }
    const roCgroup = cgroupAt.find((m) => m.ro);
    if (roCgroup && !ro(e)) throw refuse(`${named(e)} is read-write, and the spec mounts ${roCgroup.destination} read-only`);
    const specAt = specMounts.find((m) => m.destination === e.mountpoint && m.ro);
    if (specAt && !ro(e)) throw refuse(`${named(e)} is read-write, and the spec mounts ${specAt.destination} read-only`);
  }
  const at = (p: string) => entries.filter((e) => e.mountpoint === p);
  for (const p of strings(spec.linux?.readonlyPaths)) {
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

/** Reads and checks every mount image of imagesDir (mountpoints-<id>.img). */
export function checkMountImages(imagesDir: string, spec: MountSpec, where: string, rootfs: string): void {
  const exists = containerPathExists(spec, rootfs);
  for (const name of readdirSync(imagesDir).filter((n) => /^mountpoints-\d+\.img$/.test(n))) {
    checkMountEntries(decodeImage(MntEntrySchema, new Uint8Array(readFileSync(join(imagesDir, name))), name, ImageMagic.mnts), spec, where, exists, name);
  }
}
