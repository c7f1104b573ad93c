/**
 * What of cgroup.img the restore lets CRIU act on: only paths inside the container's own cgroups.
 *
 * On restore CRIU (as root, in every cgroup mode but `ignore`) moves each task into the paths of its cgroup
 * set, writing its pid into `<hierarchy>/<path>/cgroup.procs`. It rewrites a path that starts with one of the
 * hierarchy's top-level directories to lie below the cgroup root it is given (the container's cgroup, which
 * the CRIU helper joined), and uses any other path as it stands. It also makes the image's directories that do
 * not exist (`mkdir -p`, so `..` walks up) and applies their recorded owner and mode. So a crafted image could
 * move a restored task into the host's root cgroup, out of the container's memory, pids and devices limits
 * (the root devices cgroup allows every device: the host's disks), or make directories anywhere in a
 * hierarchy. runc's restore does not look. cryo refuses, before anything is made, an image in which
 * - a directory's name is empty or has an empty, `.` or `..` component (top-level ones are paths, children
 *   paths below their parent);
 * - a set's path is not absolute and clean in the same way, or does not lie (component-wise: "/a/b" is not
 *   below "/a/bc") at or below a top-level directory of its own controller, so that CRIU rewrites it below the
 *   container's cgroup; a path of a controller with no directory in the image is refused too. A hierarchy the
 *   tasks were at the root of (an older runc leaves a controller it does not know there; so does a task moved
 *   out) is recorded with the root ("") as its top-level directory: its path "/" is accepted, since CRIU rewrites
 *   it to the new root itself, and nothing below it (CRIU would join the new root and the rest without a "/");
 * - a set's cgns_prefix is inside one of the path's components (CRIU then joins the root and the rest of the
 *   path without a separator: a sibling of the container's cgroup) or past the end of its top-level directory
 *   (CRIU then reads past the directory's name).
 * - a hierarchy or a set names a controller that is not one of this host's hierarchies (CRIU builds the cgroup
 *   file system's mount options and its directory in the yard from the names: "memory,release_agent=..." or
 *   "../.." would reach the host), a controller appears in two hierarchies, or a hierarchy has more than one
 *   top-level directory or one no set's path is below (CRIU then uses it from the hierarchy's root, and rewrites
 *   by string prefix, so two directories could rewrite a path twice).
 * A missing cgroup.img is nothing to check (CRIU then leaves every task in the cgroups it joined).
 * Not compared: the directories' recorded owner and mode (CRIU applies them to the container's own
 * directories), and properties, which CRIU writes only in the `full` and `strict` modes an operator chooses
 * (docs/checkpoint-restore.md).
 */
import { existsSync, readFileSync } from "node:fs";
import { readRegularFile } from "../sys/regular-file.ts";
import { join } from "node:path";
import { isFieldSet } from "@bufbuild/protobuf";
import { CgMemberEntrySchema, CgroupEntrySchema, type CgroupDirEntry, type CgroupEntry } from "../gen/criu/cgroup_pb.ts";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { invalidArgument } from "../errors.ts";
import { cleanAbsolute, cleanRelative } from "./image-paths.ts";


/** The hierarchies of this host as /proc/self/cgroup names them: each controller ("name=systemd" for a named one, "" for cgroup v2). */
export function hostCgroupNames(text = readFileSync("/proc/self/cgroup", "utf8")): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /^\d+:([^:]*):/.exec(line);
    if (m) for (const n of m[1]!.split(",")) names.add(n);
  }
  return names;
}

/** Checks cgroup.img's entries (see the module comment) against this host's hierarchies; INVALID_ARGUMENT naming the entry. */
export function checkCgroupEntries(entries: readonly CgroupEntry[], where: string, hostNames: ReadonlySet<string>): void {
  const refuse = (detail: string) => invalidArgument(where, { detail: `cgroup.img: ${detail}` });
  const known = (name: string, what: string) => {
    if (!hostNames.has(name)) throw refuse(`${what} names controller ${JSON.stringify(name)}, which is not a hierarchy of this host (${[...hostNames].map((n) => JSON.stringify(n)).join(", ")})`);
  };
  // The top-level directory of each controller ("" is cgroup v2): one per hierarchy, as the container's cgroup.
  const heads = new Map<string, string>();
  const checkDirs = (dirs: readonly CgroupDirEntry[], under: string | undefined) => {
    for (const d of dirs) {
      // A top-level directory may be the hierarchy's root (""): the tasks were at its root (see the module comment).
      const path = under ? `${under}/${d.dirName}` : d.dirName;
      if (!(under === undefined && d.dirName === "") && !cleanRelative(d.dirName)) throw refuse(`directory ${JSON.stringify(path)} has an empty, "." or ".." component`);
      checkDirs(d.children, path);
    }
  };
  for (const e of entries) {
    for (const c of e.controllers) {
      checkDirs(c.dirs, undefined);
      const what = `hierarchy ${JSON.stringify(c.cnames.join(","))}`;
      if (c.cnames.length === 0) throw refuse(`a hierarchy names no controller`);
      if (c.dirs.length > 1) throw refuse(`${what} has ${c.dirs.length} top-level directories (${c.dirs.map((d) => JSON.stringify(d.dirName)).join(", ")}); a container's tasks are below one, its cgroup`);
      for (const name of c.cnames) {
        known(name, what);
        if (heads.has(name)) throw refuse(`controller ${JSON.stringify(name)} appears in two hierarchies`);
        if (c.dirs[0]) heads.set(name, c.dirs[0].dirName);
      }
    }
  }
  // CRIU rewrites a top-level directory below the new root only when some set's path starts with it; any other it
  // makes, chowns and chmods as named, from the hierarchy's root.
  const covered = new Set<string>();
  for (const e of entries) {
    for (const set of e.sets) {
      for (const m of set.ctls) {
        const what = `set ${set.id}'s ${m.name === "" ? "cgroup v2" : m.name} path ${JSON.stringify(m.path)}`;
        for (const n of m.name.split(",")) known(n, `set ${set.id}`);
        const own = m.name.split(",").flatMap((n) => (heads.has(n) ? [heads.get(n)!] : []));
        // "/" only where the hierarchy's top-level directory is its root: CRIU rewrites it to the new root itself.
        // Below such a root it would join the new root and the rest of the path without a separator.
        if (m.path === "/" ? !own.includes("") : !cleanAbsolute(m.path)) throw refuse(`${what} is not an absolute path without empty, "." or ".." components`);
        const head = own.find((h) => m.path === `/${h}` || (h !== "" && m.path.startsWith(`/${h}/`)));
        if (head === undefined) {
          const expected = own.map((h) => (h === "" ? `"/" itself (the image records the hierarchy from its root)` : `below ${JSON.stringify(`/${h}`)}, the container's cgroup`));
          throw refuse(`${what} is not ${own.length > 0 ? expected.join(" or ") : "below a directory of its controller (the image has none)"}`);
        }
        if (isFieldSet(m, CgMemberEntrySchema.field.cgnsPrefix) && m.cgnsPrefix !== 0) {
          // CRIU joins the new root and the path past the prefix, and reads the directory's name past prefix - 1.
          const p = m.cgnsPrefix;
          if (p > head.length + 1 || (p < m.path.length && m.path[p] !== "/")) throw refuse(`${what} has a cgroup namespace prefix of ${p}, which does not end at one of the components of ${JSON.stringify(`/${head}`)}`);
        }
        for (const n of m.name.split(",")) covered.add(n);
      }
    }
  }
  for (const [name, head] of heads) {
    if (!covered.has(name)) throw refuse(`directory ${JSON.stringify(head)} of controller ${JSON.stringify(name)} is in no set (CRIU would use it from the hierarchy's root)`);
  }
}

/** Reads and checks imagesDir's cgroup.img (nothing to check when there is none). */
export function checkCgroupImage(imagesDir: string, where: string): void {
  const name = "cgroup.img";
  if (!existsSync(join(imagesDir, name))) return;
  checkCgroupEntries(decodeImage(CgroupEntrySchema, new Uint8Array(readRegularFile(join(imagesDir, name))), name, ImageMagic.cgroup), where, hostCgroupNames());
}
