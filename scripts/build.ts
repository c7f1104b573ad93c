/**
 * Builds cryo's two binaries (`npm run build`): build/bin/containerd-shim-cryo-v2 and build/bin/cryo, each one file
 * compiled by `bun build --compile`. The git revision of the tree is compiled in (CRYO_REVISION, see
 * src/shim/version.ts): `cryo version`, the shim's `-v` and containerd's RuntimeInfo show it, and checkpoints record it,
 * so that two builds of one version can be told apart. "-dirty" marks a tree with uncommitted changes to tracked files;
 * "unknown" a build outside git.
 */
import { join } from "node:path";

const repo = join(import.meta.dir, "..");

function revision(): string {
  const head = Bun.spawnSync(["git", "-C", repo, "rev-parse", "--short=12", "HEAD"], { stderr: "ignore" });
  if (head.exitCode !== 0) return "unknown";
  const status = Bun.spawnSync(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"], { stderr: "ignore" });
  const dirty = status.exitCode === 0 && status.stdout.toString().trim() !== "";
  return `${head.stdout.toString().trim()}${dirty ? "-dirty" : ""}`;
}

const rev = revision();
const common = ["build", "--compile", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--minify", "--bytecode", "--format=esm", "--splitting", "--define", `CRYO_REVISION=${JSON.stringify(rev)}`];
for (const [entry, out] of [
  ["src/shim/main.ts", "build/bin/containerd-shim-cryo-v2"],
  ["src/cli/main.ts", "build/bin/cryo"],
] as const) {
  const r = Bun.spawnSync([process.execPath, ...common, entry, "--outfile", out], { cwd: repo, stdio: ["ignore", "inherit", "inherit"] });
  if (r.exitCode !== 0) {
    console.error(`build: ${entry} failed (exit ${r.exitCode})`);
    process.exit(1);
  }
}
