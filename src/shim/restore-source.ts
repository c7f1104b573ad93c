/**
 * What a restore's Create reads and checks of its checkpoint before it answers (readRestoreSource), and whether the
 * checkpoint directory is containerd's own extraction (containerdExtraction). Kept apart from restore-container.ts so
 * that Create loads only this: the rest of the restore's modules (the image checks, cgroups, the CRIU plan) load after
 * Create has answered, in the daemon's idle time before Start (checkpoint-engine.ts).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { checkCheckpointEntries } from "../checkpoint/dir-check.ts";
import { METADATA_FILE, readCheckpointMetadata, type CheckpointMetadata } from "../checkpoint/metadata.ts";
import { CONTAINERD_EXTRACTION_NAME, inContainerdTemp } from "../containerd/layout.ts";
import { Code, CryoError, failedPrecondition, invalidArgument } from "../errors.ts";
import { readRegularFile } from "../sys/regular-file.ts";
import { DESCRIPTORS_FILE } from "./checkpoint-stdio.ts";

/** A checkpoint directory, read and checked at Create. */
export interface RestoreSource {
  dir: string;
  metadata: CheckpointMetadata;
  /** descriptors.json (runc's format). */
  descriptors: string[];
}

/** Reads and validates a checkpoint directory containerd extracted; FAILED_PRECONDITION when it is not a cryo checkpoint. */
export async function readRestoreSource(dir: string): Promise<RestoreSource> {
  if (!existsSync(dir)) throw failedPrecondition(`checkpoint ${dir}`, { detail: "no such directory" });
  // Before anything reads it: only regular files and directories (no link may lead a read or write elsewhere).
  checkCheckpointEntries(dir);
  let metadata: CheckpointMetadata;
  try {
    metadata = await readCheckpointMetadata(dir);
  } catch (err) {
    const e = CryoError.from(err);
    if (e.code === Code.NOT_FOUND) throw failedPrecondition(`checkpoint ${dir}`, { detail: "not taken by cryo (no cryo-checkpoint.json); runc's checkpoints lack the container state cryo needs", cause: err });
    throw e;
  }
  // Every cryo dump writes its images beside the metadata (imagesDir "."), and a restore reads them there: a checkpoint
  // that places them elsewhere is not one cryo made (`cryo inspect` reads either).
  if (metadata.imagesDir !== ".") {
    throw invalidArgument(`checkpoint ${dir}`, { detail: `its metadata places CRIU's images in ${JSON.stringify(metadata.imagesDir)}; a restore reads them beside ${METADATA_FILE} (imagesDir ".", as every cryo dump writes it)` });
  }
  let descriptors = metadata.stdio.descriptors;
  let text: string | undefined;
  try {
    text = readRegularFile(join(dir, DESCRIPTORS_FILE), `checkpoint ${dir}: ${DESCRIPTORS_FILE}`).toString("utf8");
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw CryoError.from(err); // a FIFO put there after Create: FAILED_PRECONDITION
  }
  if (text !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw invalidArgument(`checkpoint ${dir}: ${DESCRIPTORS_FILE}`, { cause: err, detail: "not JSON" });
    }
    if (Array.isArray(parsed) && parsed.every((d) => typeof d === "string")) descriptors = parsed;
    else throw invalidArgument(`checkpoint ${dir}: ${DESCRIPTORS_FILE}`, { detail: "not a JSON array of strings" });
  }
  return { dir, metadata, descriptors };
}

/**
 * Whether dir is a directory containerd extracted a checkpoint image into for a task's Create: containerd (1.6,
 * and 2.x alike) makes it with Go's os.MkdirTemp($XDG_RUNTIME_DIR, "ctrd-checkpoint") (the temp dir, $TMPDIR or
 * /tmp, where that variable is unset) and never removes it, so every restore through containerd leaves a copy of
 * the whole checkpoint there, with runc's shim too. Only such a name directly in that directory counts: a path a
 * client gave (2.x's CriuImagePath, CRI's RestoreFromPath) is left alone unless it imitates one.
 */
export function containerdExtraction(dir: string, env: Record<string, string | undefined> = process.env): boolean {
  return inContainerdTemp(dir, CONTAINERD_EXTRACTION_NAME, env);
}
