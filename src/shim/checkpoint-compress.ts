/**
 * zstd-compressed page images (`cryo.checkpoint/compression=zstd`): after the dump, each
 * `pages-N.img` becomes `pages-N.img.zst`, so containerd copies and hashes fewer bytes into its content
 * store; before a restore they are decompressed in place, since CRIU reads plain images. Uses the
 * zstd program (multi-threaded, -T0). Only page images are compressed: the rest is small.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { unknown } from "../errors.ts";

/** What compression did. */
export interface CompressionResult {
  files: number;
  bytesIn: number;
  bytesOut: number;
}

async function zstd(args: string[]): Promise<void> {
  const p = Bun.spawn(["zstd", "-q", "-f", "-T0", ...args], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw unknown(`zstd ${args.join(" ")}`, { detail: stderr.trim() || `exit ${code}` });
}

/** The page images of an images directory (pages-N.img), or their compressed forms. */
export function pageImages(dir: string, compressed: boolean): string[] {
  const re = compressed ? /^pages-\d+\.img\.zst$/ : /^pages-\d+\.img$/;
  return readdirSync(dir).filter((n) => re.test(n));
}

/** Compresses every page image of dir (level 0: zstd's default) and removes the plain ones. */
export async function compressPages(dir: string, level: number): Promise<CompressionResult> {
  const out: CompressionResult = { files: 0, bytesIn: 0, bytesOut: 0 };
  for (const name of pageImages(dir, false)) {
    const src = join(dir, name);
    out.bytesIn += statSync(src).size;
    await zstd([...(level > 0 ? [`-${level}`] : []), ...(level > 19 ? ["--ultra"] : []), "--rm", src, "-o", `${src}.zst`]);
    out.bytesOut += statSync(`${src}.zst`).size;
    out.files++;
  }
  return out;
}

/** Decompresses every pages-N.img.zst of dir in place (removing the compressed file); returns how many. */
export async function decompressPages(dir: string): Promise<number> {
  const names = pageImages(dir, true);
  for (const name of names) {
    const src = join(dir, name);
    await zstd(["-d", "--rm", src, "-o", src.slice(0, -".zst".length)]);
  }
  return names.length;
}
