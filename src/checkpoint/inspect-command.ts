/**
 * `cryo inspect DIR`: what a checkpoint holds. DIR is a cryo checkpoint (cryo-checkpoint.json beside
 * CRIU's images) or a bare CRIU images directory.
 */
import { existsSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { fsError, notFound } from "../errors.ts";
import type { CliCommand } from "../cli/command-table.ts";
import { parseCliArgs } from "../cli/parse-args.ts";
import { checkNamedPath } from "../cli/named-path.ts";
// criu/inspect.ts, not src/criu's index: src/checkpoint's index re-exports this command, and through src/criu's
// index the shim's restore chunk would reach the CRIU client, which the shim loads lazily (checkpoint-engine.ts).
import { inspectCheckpoint, renderInspect } from "../criu/inspect.ts";
import { METADATA_FILE, readCheckpointMetadata, type CheckpointMetadata } from "./metadata.ts";
import { checkCheckpointEntries } from "./dir-check.ts";
import { recordedImagesProblems } from "./images-list.ts";

/** The machine names of `uname -m` for the architectures Bun names (the metadata records Bun's). */
const ARCH_NAMES: Record<string, string> = { x64: "x86_64", arm64: "aarch64" };

/**
 * How the page images are stored. zstd asked and no image compressed is said so: compressImages leaves an image
 * plain when a sample of it does not compress (`compressed` false), and decompressImages (a restore's) records false.
 */
function pagesCompression(m: CheckpointMetadata): string {
  if (m.compressed) return `zstd-compressed (level ${m.compressed.level})`;
  if (m.options.compression === "zstd") return "uncompressed (zstd was asked: the page images did not compress and were left plain, or were decompressed for a restore)";
  return "uncompressed";
}

/** libcriu's version number (40201) as CRIU writes it (4.2.1). */
export function criuVersionText(v: number): string {
  if (!Number.isInteger(v) || v <= 0) return String(v);
  return `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}`;
}

/** Text for the metadata part of `cryo inspect`. */
export function renderMetadata(m: CheckpointMetadata): string {
  const lines = [
    // Paused: frozen when dumped, as containerd's checkpoint flows (ctr, CRI) pause every task first.
    `Container ${m.containerId}${m.namespace ? ` (namespace ${m.namespace})` : ""}, root pid ${m.pid}${m.paused ? ", paused when dumped" : ""}`,
    `Taken ${m.startedAt} .. ${m.finishedAt} on ${m.host.hostname} (kernel ${m.host.kernel}, ${ARCH_NAMES[m.host.arch] ?? m.host.arch}, CRIU ${criuVersionText(m.host.criuVersion)}, ${m.host.cryoVersion.startsWith("cryo ") ? m.host.cryoVersion : `cryo ${m.host.cryoVersion}`})`,
    `Cgroups v${m.cgroups.version}${m.cgroups.cgroupsPath ? ` at ${m.cgroups.cgroupsPath}` : ""}; stdio ${m.stdio.terminal ? "terminal" : m.stdio.descriptors.join(", ")}`,
    `Pages ${pagesCompression(m)}${m.parent ? `; parent ${m.parent}` : ""}`,
  ];
  if (m.localPages) {
    const bytes = m.localPages.files.reduce((s, f) => s + f.bytes, 0);
    lines.push(`Page images kept on ${m.localPages.hostname} in ${m.localPages.dir}: ${m.localPages.files.length} file(s), ${bytes} bytes (not in this directory)`);
  }
  if (m.options.lazyPages && m.options.pageServer) {
    const { address, port } = m.options.pageServer;
    lines.push(`Post-copy: the memory is not in this directory; the source on ${m.host.hostname} serves it on ${address.includes(":") ? `[${address}]` : address}:${port} until a restore has fetched it all`);
  }
  if (m.emptyTmpfs?.length) {
    const what = (t: { options: string; entries?: unknown[] }) => `${t.options || "defaults"}${t.entries?.length ? `; ${t.entries.length} entries, no file data` : ""}`;
    lines.push(`Empty tmpfs mounts made anew at restore: ${m.emptyTmpfs.map((t) => `${t.mountpoint} (${what(t)})`).join(", ")}`);
  }
  if (m.threads?.length) {
    const what = (t: { tid: number; cpus?: string; timerSlackNs?: number; ioprio?: number }) =>
      [t.cpus !== undefined ? `cpus ${t.cpus}` : "", t.timerSlackNs !== undefined ? `timer slack ${t.timerSlackNs} ns` : "", t.ioprio !== undefined ? `ioprio class ${t.ioprio >> 13} level ${t.ioprio & 7}` : ""].filter((x) => x !== "").join(", ");
    lines.push(`Threads set again at restore (CRIU restores none of this): ${m.threads.map((t) => `${t.tid} (${what(t)})`).join("; ")}`);
  }
  return `${lines.join("\n")}\n`;
}

const inspectUsage = "cryo inspect [--json] DIR";

/** The `cryo inspect` command. */
export const inspectCommand: CliCommand = {
  path: ["inspect"],
  summary: "show a checkpoint's process tree, memory, open files and CRIU statistics",
  usage: `${inspectUsage}\n  DIR: a cryo checkpoint directory or a CRIU images directory`,
  async run(args, io) {
    const { values, positionals } = parseCliArgs(args, { json: { type: "boolean" } }, z.object({ json: z.boolean().optional() }), inspectUsage, { min: 1, max: 1 });
    const json = values.json === true;
    const dir = positionals[0]!;
    // Not there, a file, or closed to this user: said so (a file read "not a checkpoint", a closed directory "not found").
    checkNamedPath(`checkpoint ${dir}`, dir, "directory");
    // Not a checkpoint at all (no metadata, no CRIU process tree): said so, before walking what may be a big tree.
    if (!existsSync(join(dir, METADATA_FILE)) && !existsSync(join(dir, "pstree.img"))) {
      throw notFound(`checkpoint ${dir}`, { detail: `not a checkpoint: neither ${METADATA_FILE} (cryo's) nor pstree.img (CRIU's images) in it` });
    }
    // A file in it this user may not read is said so (readCheckpointMetadata takes any read error for "not found",
    // and node's EACCES text came through from the images).
    let meta: CheckpointMetadata | undefined;
    let inspection: Awaited<ReturnType<typeof inspectCheckpoint>>;
    try {
      // A checkpoint from elsewhere: a FIFO among its files would hang this command, a link would show another file.
      checkCheckpointEntries(realpathSync(dir));
      if (existsSync(join(dir, METADATA_FILE))) {
        checkNamedPath(`checkpoint ${dir}`, join(dir, METADATA_FILE), "file");
        meta = await readCheckpointMetadata(dir);
      }
      const pagesElsewhere = meta !== undefined && (meta.localPages !== undefined || (meta.options.lazyPages && meta.options.pageServer !== undefined));
      inspection = await inspectCheckpoint(meta ? join(dir, meta.imagesDir) : dir, { pagesElsewhere });
    } catch (err) {
      throw fsError(`checkpoint ${dir}`, err);
    }
    // The images the dump recorded, as the restore checks them.
    if (meta?.images) inspection.problems.push(...recordedImagesProblems(join(dir, meta.imagesDir), meta.images));
    if (json) io.out(JSON.stringify({ metadata: meta, ...inspection }, null, 2));
    else io.out(`${meta ? `${renderMetadata(meta)}\n` : ""}${renderInspect(inspection)}`);
    // A damaged checkpoint is shown, and said so in the exit code.
    if (inspection.problems.length > 0) {
      io.err(`cryo inspect: ${dir}: ${inspection.problems.length} problem(s): ${inspection.problems.join("; ")}`);
      return 1;
    }
    return 0;
  },
};
