// Benchmark (not a test): what admission plugins add to `ctr run` through the cryo shim.
//   node_modules/.bin/bun bench/plugins-create.ts        (root; needs build/bin from `npm run build`)
// Times `ctr run --rm IMAGE ID true` against a private containerd without a config, with one plugin
// (deny-privileged) and with three (deny-privileged, registry-allowlist, set-env). Each run starts a
// new shim, so the plugin runner process starts and loads the plugins each time: this is the cost per
// container create. Refuses to report when the shim does not run admission (a --privileged run must be denied).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, startPrivateContainerd, testImage, uniqueId } from "../test/harness/index.ts";

const root = join(import.meta.dir, "..");
if (Bun.spawnSync(["bash", join(root, "plugins/build.sh")], { stdout: "ignore", stderr: "inherit" }).exitCode !== 0) throw new Error("plugins/build.sh failed");
const runs = Number(process.argv[2] ?? 6);
const dir = mkdtempSync(join(tmpdir(), "cryo-bench-plugins-"));
const entry = (name: string, extra = "") => `[[plugins]]\nname = "${name}"\npath = "${join(root, "build/plugins", `${name}.wasm`)}"\nhooks = ["admit"]\n${extra}\n`;
const one = join(dir, "one.toml");
const three = join(dir, "three.toml");
writeFileSync(one, entry("deny-privileged"));
writeFileSync(three, entry("deny-privileged") + entry("registry-allowlist", 'config = { registries = "docker.io", allow_unknown = "true" }') + entry("set-env"));

const ns = uniqueId("benchplugins");
const pc = await startPrivateContainerd({ namespace: ns });
try {
  await ensureTestImage(pc);
  const run = (config: string | null, extra: string[] = []) =>
    pc.ctr(["run", "--rm", "--runtime", "io.containerd.cryo.v2", ...(config ? ["--runtime-config-path", config] : []), ...extra, testImage, uniqueId("b"), "true"], { timeoutMs: 60_000 });
  const check = await run(one, ["--privileged"]);
  if (check.exitCode === 0 || !check.stderr.includes("denied by plugin deny-privileged")) {
    console.error("the shim does not run admission plugins (a --privileged run was not denied); nothing to measure");
    process.exitCode = 1;
  } else {
    for (const [label, config] of [["no config", null], ["1 plugin", one], ["3 plugins", three]] as const) {
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        const r = await run(config);
        if (r.exitCode !== 0) throw new Error(r.stderr);
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      console.log(`${label.padEnd(10)} ctr run --rm true: median ${times[Math.floor(runs / 2)]!.toFixed(0)} ms (min ${times[0]!.toFixed(0)}, max ${times[runs - 1]!.toFixed(0)}, ${runs} runs)`);
    }
  }
} finally {
  await pc.stop();
  rmSync(dir, { recursive: true, force: true });
}
