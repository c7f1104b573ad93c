/**
 * The regular files of files.img: names CRIU opens, links and creates by, as root.
 *
 * CRIU finds a regular file by its recorded name, and makes a deleted one that was still open (a ghost file,
 * with the image's contents, owner and mode, setuid and device nodes included) at `<mount's staging
 * point>/<name>.cr.<id>.ghost` in its own mount namespace, whose root is the host's. CRIU takes `..` for a
 * plain name, so a crafted name such as "/tmp/../../../../usr/local/bin/x" would make that file on the host.
 * The kernel never names a file with an empty, `.` or `..` component, so cryo refuses, before anything is
 * made, a regular file (other than an external one, which the restore gives) whose name is not `/` or an
 * absolute path without them.
 * Not checked: symbolic links on the way (a ghost file is made after following whatever the container's file
 * systems hold at its path).
 *
 * CRIU also makes every descriptor as root, before it gives the tasks their credentials. So cryo refuses a
 * descriptor that a task of the spec could not have made itself: a packet socket or a raw inet socket without
 * CAP_NET_RAW in any of the spec's capability sets (layer-2 frames and forged packets on the container's
 * network), a tun descriptor without CAP_NET_ADMIN, a fanotify group without CAP_SYS_ADMIN, a BPF map without
 * CAP_BPF or CAP_SYS_ADMIN.
 */
import { existsSync } from "node:fs";
import { readRegularFile } from "../sys/regular-file.ts";
import { join } from "node:path";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { FdTypes, FileEntrySchema, type FileEntry } from "../gen/criu/fdinfo_pb.ts";
import { capabilityNumber } from "../criu/capabilities.ts";
import { invalidArgument } from "../errors.ts";
import { cleanAbsolute } from "./image-paths.ts";

const SOCK_RAW = 3;

/** What a descriptor of f takes to make, as the capabilities any one of which would do; undefined when nothing. */
function privilegeOf(f: FileEntry): { what: string; caps: string[] } | undefined {
  switch (f.type) {
    case FdTypes.PACKETSK:
      return { what: "a packet socket", caps: ["CAP_NET_RAW"] };
    case FdTypes.INETSK:
      return f.isk?.type === SOCK_RAW ? { what: "a raw inet socket", caps: ["CAP_NET_RAW"] } : undefined;
    case FdTypes.TUNF:
      return { what: "a tun device", caps: ["CAP_NET_ADMIN"] };
    case FdTypes.FANOTIFY:
      return { what: "a fanotify group", caps: ["CAP_SYS_ADMIN"] };
    case FdTypes.BPFMAP:
      return { what: "a BPF map", caps: ["CAP_BPF", "CAP_SYS_ADMIN"] };
    default:
      return undefined;
  }
}

/** Checks files.img's entries (see the module comment) against the capabilities the spec grants. */
export function checkFileEntries(entries: readonly FileEntry[], where: string, granted: ReadonlySet<number>): void {
  for (const f of entries) {
    if (f.reg && !f.reg.ext && !cleanAbsolute(f.reg.name)) {
      throw invalidArgument(where, { detail: `files.img: regular file ${f.id} is named ${JSON.stringify(f.reg.name)}, not an absolute path without empty, "." or ".." components` });
    }
    const needs = privilegeOf(f);
    if (needs && !needs.caps.some((c) => granted.has(capabilityNumber(c)))) {
      throw invalidArgument(where, { detail: `files.img: file ${f.id} is ${needs.what}, which takes ${needs.caps.join(" or ")}, and the spec grants ${needs.caps.length > 1 ? "neither" : "it not"}` });
    }
  }
}

/** Reads and checks imagesDir's files.img (nothing to check when there is none). */
export function checkFilesImage(imagesDir: string, where: string, granted: ReadonlySet<number>): void {
  const name = "files.img";
  if (!existsSync(join(imagesDir, name))) return;
  checkFileEntries(decodeImage(FileEntrySchema, new Uint8Array(readRegularFile(join(imagesDir, name))), name, ImageMagic.files), where, granted);
}
