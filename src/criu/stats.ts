/**
 * CRIU's dump and restore statistics (stats-dump, stats-restore in the images directory), as plain objects.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { isFieldSet } from "@bufbuild/protobuf";
import { DumpStatsEntrySchema, RestoreStatsEntrySchema, StatsEntrySchema } from "../gen/criu/stats_pb.ts";
import { ImageMagic, IMG_SERVICE_MAGIC, decodeImage } from "./image-file.ts";

/** Dump statistics; times in microseconds, counts in pages. */
export interface DumpStats {
  freezingTimeUs: number;
  frozenTimeUs: number;
  memdumpTimeUs: number;
  memwriteTimeUs: number;
  pagesScanned: number;
  pagesSkippedParent: number;
  pagesWritten: number;
  pagesLazy: number;
  irmapResolveUs?: number;
  pagePipes?: number;
  pagePipeBufs?: number;
  shpagesScanned?: number;
  shpagesSkippedParent?: number;
  shpagesWritten?: number;
}

/** Restore statistics; times in microseconds, counts in pages. */
export interface RestoreStats {
  pagesCompared: number;
  pagesSkippedCow: number;
  forkingTimeUs: number;
  restoreTimeUs: number;
  pagesRestored?: number;
}

/** Both kinds, as far as present. */
export interface CriuStats {
  dump?: DumpStats;
  restore?: RestoreStats;
}


/** Decodes the bytes of a stats-dump or stats-restore image. */
export function decodeStats(bytes: Uint8Array, name = "stats"): CriuStats {
  const [entry] = decodeImage(StatsEntrySchema, bytes, name, ImageMagic.stats, IMG_SERVICE_MAGIC);
  const out: CriuStats = {};
  const d = entry?.dump;
  if (d) {
    out.dump = stripUndefined({
      freezingTimeUs: d.freezingTime,
      frozenTimeUs: d.frozenTime,
      memdumpTimeUs: d.memdumpTime,
      memwriteTimeUs: d.memwriteTime,
      pagesScanned: Number(d.pagesScanned),
      pagesSkippedParent: Number(d.pagesSkippedParent),
      pagesWritten: Number(d.pagesWritten),
      pagesLazy: Number(d.pagesLazy),
      irmapResolveUs: isFieldSet(d, DumpStatsEntrySchema.field.irmapResolve) ? d.irmapResolve : undefined,
      pagePipes: isFieldSet(d, DumpStatsEntrySchema.field.pagePipes) ? Number(d.pagePipes) : undefined,
      pagePipeBufs: isFieldSet(d, DumpStatsEntrySchema.field.pagePipeBufs) ? Number(d.pagePipeBufs) : undefined,
      shpagesScanned: isFieldSet(d, DumpStatsEntrySchema.field.shpagesScanned) ? Number(d.shpagesScanned) : undefined,
      shpagesSkippedParent: isFieldSet(d, DumpStatsEntrySchema.field.shpagesSkippedParent) ? Number(d.shpagesSkippedParent) : undefined,
      shpagesWritten: isFieldSet(d, DumpStatsEntrySchema.field.shpagesWritten) ? Number(d.shpagesWritten) : undefined,
    });
  }
  const r = entry?.restore;
  if (r) {
    out.restore = stripUndefined({
      pagesCompared: Number(r.pagesCompared),
      pagesSkippedCow: Number(r.pagesSkippedCow),
      forkingTimeUs: r.forkingTime,
      restoreTimeUs: r.restoreTime,
      pagesRestored: isFieldSet(r, RestoreStatsEntrySchema.field.pagesRestored) ? Number(r.pagesRestored) : undefined,
    });
  }
  return out;
}

/** Reads stats-dump and/or stats-restore from dir (either may be missing). */
export async function readStats(dir: string): Promise<CriuStats> {
  const out: CriuStats = {};
  for (const kind of ["dump", "restore"] as const) {
    const path = join(dir, `stats-${kind}`);
    if (!existsSync(path)) continue;
    const decoded = decodeStats(new Uint8Array(await readFile(path)), path);
    if (decoded[kind]) Object.assign(out, { [kind]: decoded[kind] });
  }
  return out;
}

function stripUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
