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
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { FileEntrySchema, type FileEntry } from "../gen/criu/fdinfo_pb.ts";
import { invalidArgument } from "../errors.ts";
import { cleanAbsolute } from "./image-paths.ts";

/** Checks the regular files of files.img's entries (see the module comment). */
export function checkFileEntries(entries: readonly FileEntry[], where: string): void {
  for (const f of entries) {
    if (!f.reg || f.reg.ext) continue;
    if (!cleanAbsolute(f.reg.name)) throw invalidArgument(where, { detail: `files.img: regular file ${f.id} is named ${JSON.stringify(f.reg.name)}, not an absolute path without empty, "." or ".." components` });
  }
}

/** Reads and checks imagesDir's files.img (nothing to check when there is none). */
export function checkFilesImage(imagesDir: string, where: string): void {
  const name = "files.img";
  if (!existsSync(join(imagesDir, name))) return;
  checkFileEntries(decodeImage(FileEntrySchema, new Uint8Array(readFileSync(join(imagesDir, name))), name, ImageMagic.files), where);
}
