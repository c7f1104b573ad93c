/**
 * Whether each live task of a checkpoint has the images CRIU writes for every live task it dumps: its memory map
 * (mm-<pid>.img), its pagemap (pagemap-<pid>.img) and its descriptor table (fdinfo-<files_id>.img, files_id from
 * ids-<pid>.img; a table shared by several tasks is one image).
 *
 * CRIU takes these images as optional at restore: without a task's fdinfo image it restores the task with no
 * descriptor at all and reports success (a helper session: a shell restored RUNNING with /proc/PID/fd empty, its
 * stdin, stdout and stderr gone); without its mm or pagemap image the restore fails with "N killed by signal 11",
 * "N exited, status=1" or a bare "Restoring FAILED.", naming no image. Each is refused before anything is made,
 * naming the task and the image. A zombie has none of them; ids-<pid>.img itself CRIU requires, naming it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { TaskKobjIdsEntrySchema } from "../gen/criu/core_pb.ts";
import { readCheckpointImage } from "./image-paths.ts";

/** Refuses (INVALID_ARGUMENT) a checkpoint in imagesDir where a task of livePids lacks its mm, pagemap or fdinfo image. */
export function checkTaskImages(imagesDir: string, livePids: readonly number[], where: string): void {
  const has = (name: string) => existsSync(join(imagesDir, name));
  for (const pid of livePids) {
    const wanted = [`mm-${pid}.img`, `pagemap-${pid}.img`];
    const idsName = `ids-${pid}.img`;
    if (has(idsName)) {
      const [ids] = decodeImage(TaskKobjIdsEntrySchema, readCheckpointImage(imagesDir, idsName), idsName, ImageMagic.ids);
      if (ids) wanted.push(`fdinfo-${ids.filesId}.img`);
    }
    const missing = wanted.filter((n) => !has(n));
    if (missing.length > 0) {
      throw invalidArgument(where, { detail: `the checkpoint has no ${missing.join(", ")} for its live task ${pid}: not a whole CRIU dump` });
    }
  }
}
