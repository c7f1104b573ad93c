import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "../..");
let built: string | undefined;

/** Builds the example and test plugins (plugins/build.sh; skips what is up to date) once per process; returns build/plugins. */
export function buildPlugins(): string {
  if (built === undefined) {
    const r = Bun.spawnSync(["bash", join(root, "plugins/build.sh")], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`plugins/build.sh failed: ${r.stderr.toString()}`);
    built = join(root, "build/plugins");
  }
  return built;
}
