// src/gen must be exactly what `buf generate` produces from proto/ with the repo's buf.gen.yaml.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";

const root = resolve(import.meta.dir, "../../..");
const outBase = mkdtempSync(join(tmpdir(), "cryo-gen-"));

afterAll(() => rmSync(outBase, { recursive: true, force: true }));

function listFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else found.push(relative(dir, p));
    }
  };
  walk(dir);
  return found.sort();
}

test("src/gen matches a fresh buf generate of proto/", () => {
  const run = Bun.spawnSync(
    [join(root, "node_modules/.bin/buf"), "generate", "--template", "buf.gen.yaml", "-o", outBase],
    { cwd: root, stdout: "pipe", stderr: "pipe" },
  );
  expect(run.stderr.toString() + run.stdout.toString()).toBe("");
  expect(run.exitCode).toBe(0);

  const fresh = join(outBase, "src/gen");
  const committed = join(root, "src/gen");
  const freshFiles = listFiles(fresh);
  const committedFiles = listFiles(committed);
  expect(freshFiles.length).toBeGreaterThan(0);

  const differing: string[] = [];
  for (const f of new Set([...freshFiles, ...committedFiles])) {
    if (!freshFiles.includes(f)) differing.push(`${f} (not generated from proto/: remove it)`);
    else if (!committedFiles.includes(f)) differing.push(`${f} (missing from src/gen)`);
    else if (!readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f)))) differing.push(`${f} (content differs)`);
  }
  // On failure: run `node_modules/.bin/buf generate` and commit src/gen.
  expect(differing).toEqual([]);
}, 60_000);
