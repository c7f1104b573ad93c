import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { unavailable } from "../../src/errors.ts";

/** Writes source to <dir>/<name>.c, compiles it with `gcc -static -O2` to <dir>/<name> and returns that path. */
export function compileStaticC(dir: string, name: string, source: string): string {
  const src = join(dir, `${name}.c`);
  const bin = join(dir, name);
  writeFileSync(src, source);
  const cc = Bun.spawnSync(["gcc", "-static", "-O2", "-o", bin, src]);
  if (cc.exitCode !== 0) throw unavailable(`compile ${name}.c`, { detail: `gcc: ${cc.stderr.toString()}` });
  return bin;
}
