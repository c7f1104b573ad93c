/**
 * scripts/setup.sh's package check, against a fake dpkg-query: on a fresh machine dpkg-query exits 1 for the
 * packages it has never seen, and the check must list them (it once ended the whole setup there, silently,
 * under pipefail, so a fresh machine installed nothing and the tests could not run).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const setup = join(import.meta.dir, "../../../scripts/setup.sh");
let bin: string;

beforeAll(() => {
  bin = mkdtempSync(join(tmpdir(), "cryo-fake-dpkg-"));
  // dpkg-query -W -f=FORMAT PKG...: a line for each package dpkg knows, "no packages found" and exit 1 for any other.
  writeFileSync(
    join(bin, "dpkg-query"),
    `#!/bin/bash
shift 2
rc=0
for p in "$@"; do
  case "$p" in
    containerd) echo "containerd install ok installed" ;;
    runc) echo "runc deinstall ok config-files" ;;
    *) echo "dpkg-query: no packages found matching $p" >&2; rc=1 ;;
  esac
done
exit $rc
`,
  );
  chmodSync(join(bin, "dpkg-query"), 0o755);
});

afterAll(() => rmSync(bin, { recursive: true, force: true }));

const missing = (...packages: string[]) => {
  const r = Bun.spawnSync(["bash", setup, "--missing-packages", ...packages], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, stderr: "pipe" });
  return { code: r.exitCode, names: r.stdout.toString().split("\n").filter((l) => l !== "") };
};

test("packages dpkg has never seen are missing, and the check goes on (dpkg-query's exit 1 is no error)", () => {
  expect(missing("containerd", "runc", "criu-build-dep", "zstd")).toEqual({ code: 0, names: ["runc", "criu-build-dep", "zstd"] });
});

test("with everything installed, nothing is missing", () => {
  expect(missing("containerd")).toEqual({ code: 0, names: [] });
});
