// The CRIU helper of a compiled binary: src/criu runs `/proc/self/exe __criu`, the very binary the caller
// runs, so helpers still start (and speak the caller's protocol) after the binary's file was replaced or
// removed (a rebuild or an upgrade while shims run). With process.execPath this failed: posix_spawn
// '.../containerd-shim-cryo-v2 (deleted)': ENOENT, seen in a checkpoint while build/bin was rebuilt.
// Root only: libcriu's version call runs `criu swrk`.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCriu } from "../../src/criu/index.ts";
import { helperCommand, prewarmCriuHelper } from "../../src/criu/warm.ts";
import { compileStaticC, killPids, waitFor } from "../harness/index.ts";

setDefaultTimeout(120_000);
const dir = mkdtempSync(join(tmpdir(), "cryo-criu-helper-bin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a compiled binary whose file was removed still starts its CRIU helpers; naming the file instead fails", async () => {
  const src = join(import.meta.dir, "../../src/criu");
  // The same entry shape as src/shim/main.ts: `__criu` runs the helper, anything else the caller.
  writeFileSync(
    join(dir, "probe.ts"),
    `import { unlinkSync } from "node:fs";
if (process.argv[1] === "__criu" || process.argv[2] === "__criu") process.exit((await import(${JSON.stringify(join(src, "helper.ts"))})).runCriuHelper());
const { createCriu } = await import(${JSON.stringify(join(src, "client.ts"))});
const { helperCommand } = await import(${JSON.stringify(join(src, "warm.ts"))});
unlinkSync(process.execPath);
try {
  const version = await createCriu().version();
  const features = await createCriu().features();
  console.log(JSON.stringify({ argv: helperCommand(), version, features }));
} catch (err) {
  console.log(JSON.stringify({ argv: helperCommand(), error: String(err) }));
}
process.exit(0);
`,
  );
  const bin = join(dir, "probe");
  const runProbe = (env: Record<string, string> = {}) => {
    const build = Bun.spawnSync([process.execPath, "build", "--compile", "--minify", "--bytecode", "--format=esm", "--splitting", join(dir, "probe.ts"), "--outfile", bin], { cwd: dir });
    expect(build.stderr.toString()).not.toContain("error");
    expect(build.exitCode).toBe(0);
    const run = Bun.spawnSync([bin], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
    expect(existsSync(bin)).toBe(false);
    return JSON.parse(run.stdout.toString().trim()) as { argv: string[]; version?: number; features?: { lazyPages: boolean }; error?: string };
  };

  const out = runProbe();
  expect(out.argv).toEqual(["/proc/self/exe", "__criu"]);
  expect(out.error).toBeUndefined();
  expect(out.version).toBeGreaterThanOrEqual(40000); // CRIU 4.x as libcriu's number (40201 here)
  expect(out.features?.lazyPages).toBe(true);

  // What src/criu did before: the binary's path (here through the override), gone by then.
  const named = runProbe({ CRYO_CRIU_HELPER: `${bin} __criu` });
  expect(named.argv).toEqual([bin, "__criu"]);
  expect(named.error).toContain("ENOENT");
});

test("a helper started with prewarmCriuHelper (before any client exists) serves a warm client's dump; a plain client starts its own", async () => {
  const counter = compileStaticC(
    dir,
    "counter",
    `#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
int main(int argc, char **argv) {
  long n = 0; char buf[64];
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  for (;;) { int len = snprintf(buf, sizeof buf, "%ld\\n", n++); pwrite(fd, buf, len, 0); ftruncate(fd, len); usleep(10000); }
}`,
  );
  const pids: number[] = [];
  try {
    const dumpOne = async (name: string, warm: boolean) => {
      const out = join(dir, `${name}.count`);
      const p = Bun.spawn(["setsid", counter, out], { stdio: ["ignore", "ignore", "ignore"] });
      pids.push(p.pid);
      await waitFor(() => existsSync(out) && Number(readFileSync(out, "utf8")) > 3, { what: `${name} counting` });
      const images = join(dir, name);
      mkdirSync(images);
      const criu = createCriu({ warm });
      const r = await criu.dump({ imagesDir: images, pid: p.pid, leaveRunning: true, logLevel: 2 }, { notify: false });
      expect(existsSync(join(images, "pstree.img"))).toBe(true);
      return r;
    };
    prewarmCriuHelper(helperCommand());
    await Bun.sleep(100);
    expect((await dumpOne("warm", true)).warm).toBe(true);
    prewarmCriuHelper(helperCommand()); // waits again; a plain client does not take it
    expect((await dumpOne("plain", false)).warm).toBe(false);
  } finally {
    killPids(pids);
  }
});
