import { readRegularFile } from "../sys/regular-file.ts";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";

/** The bytes of image name in imagesDir; a missing one is INVALID_ARGUMENT (not a whole CRIU dump). */
export function readCheckpointImage(imagesDir: string, name: string): Uint8Array {
  try {
    return new Uint8Array(readRegularFile(join(imagesDir, name)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw invalidArgument(`checkpoint ${imagesDir}`, { detail: `it has no ${name}: not a whole CRIU dump` });
    throw err;
  }
}

/**
 * Path shapes the restore's image checks accept. CRIU joins image paths to its own with plain string work and
 * takes `..` for a name, so a path in an image must not climb; the kernel never names a file or a mount with an
 * empty, `.` or `..` component, so a real image always passes.
 */

/** One or more components, none of them empty, `.` or `..`. */
export function cleanRelative(p: string): boolean {
  return p.split("/").every((c) => c !== "" && c !== "." && c !== "..");
}

/** `/`, or an absolute path whose components are clean (cleanRelative). */
export function cleanAbsolute(p: string): boolean {
  return p === "/" || (p.startsWith("/") && cleanRelative(p.slice(1)));
}
