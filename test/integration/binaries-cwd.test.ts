// The compiled binaries take nothing from the directory they run in. Bun's standalone executables load
// `.env` and `bunfig.toml` from their working directory unless built with
// --no-compile-autoload-dotenv/--no-compile-autoload-bunfig: a `bunfig.toml` preload there ran its code
// inside `cryo` (root, the operator's current directory) and inside the shim binary, and a `.env` changed
// cryo's settings (CRYO_CONTAINERD_DIR below), both seen with the build before those flags.
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultBinDir } from "../../src/containerd/index.ts";

const dir = mkdtempSync(join(tmpdir(), "cryo-bin-cwd-"));
const marker = join(dir, "preloaded");
const dotenvDir = join(dir, "from-dotenv");
writeFileSync(join(dir, ".env"), `CRYO_CONTAINERD_DIR=${dotenvDir}\n`);
writeFileSync(join(dir, "bunfig.toml"), `preload = ["./preload.ts"]\n`);
writeFileSync(join(dir, "preload.ts"), `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "x"); console.log("PRELOADED");\n`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const binDir = defaultBinDir();
if (!binDir) throw new Error("no build/bin: run npm run build");

async function runIn(argv: string[]) {
  const proc = Bun.spawn(argv, { cwd: dir, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return stdout + stderr;
}

test("cryo ignores .env and bunfig.toml in its working directory", async () => {
  const out = await runIn([join(binDir, "cryo"), "containerd", "status"]);
  expect(out).not.toContain("PRELOADED");
  expect(out).not.toContain(dotenvDir);
  expect(out).toContain("/run/cryo/containerd");
  expect(existsSync(marker)).toBe(false);
});

test("the shim binary ignores .env and bunfig.toml in its working directory", async () => {
  const out = await runIn([join(binDir, "containerd-shim-cryo-v2"), "-v"]);
  expect(out).toContain("cryo");
  expect(out).not.toContain("PRELOADED");
  expect(existsSync(marker)).toBe(false);
});

// The binaries carry the git revision they were built from (scripts/build.ts): two builds of one version can be told
// apart (a helper session could not: both said "cryo 0.1.0").
test("the binaries name the git revision they were built from", async () => {
  const rev = /^([0-9a-f]{12})(-dirty)?$/;
  const shim = await runIn([join(binDir, "containerd-shim-cryo-v2"), "-v"]);
  const shimRev = /Revision: (\S+)/.exec(shim)?.[1] ?? shim;
  expect(shimRev).toMatch(rev);
  const cli = await runIn([join(binDir, "cryo"), "version"]);
  expect(cli).toContain(`revision ${shimRev},`);
  // setup.sh rebuilds only when a source is newer than the binaries: a build from an older commit with the same
  // sources can carry that commit. The revision must at least be one of this repository's.
  expect(Bun.spawnSync(["git", "cat-file", "-e", `${shimRev.replace(/-dirty$/, "")}^{commit}`], { cwd: join(import.meta.dir, "../..") }).exitCode).toBe(0);
});
