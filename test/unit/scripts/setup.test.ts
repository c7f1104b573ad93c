/**
 * scripts/setup.sh's package check, against a fake dpkg-query: on a fresh machine dpkg-query exits 1 for the
 * packages it has never seen, and the check must list them (it once ended the whole setup there, silently,
 * under pipefail, so a fresh machine installed nothing and the tests could not run).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

/** This tree's patch lines as a build record lists them (name, sha256, applied). */
function ourRecordLines(): string[] {
  const dir = join(import.meta.dir, "../../../scripts/criu");
  return readdirSync(dir)
    .filter((n) => n.endsWith(".patch"))
    .sort()
    .map((n) => `${n} ${new Bun.CryptoHasher("sha256").update(readFileSync(join(dir, n))).digest("hex")} applied`);
}

const recordHasMore = (lines: string[]) => {
  const record = join(bin, "criu.build");
  writeFileSync(record, ["criu 4.2.1", ...lines].join("\n") + "\n");
  return Bun.spawnSync(["bash", setup, "--criu-record-has-more", record]).exitCode;
};

test("cryo's criu built by a newer tree (every patch of this one and more) is kept; the same, fewer or changed patches are not", () => {
  // A helper's older clone rebuilt the host's build without the main tree's newer patch, for every shim of the host.
  const ours = ourRecordLines();
  expect(ours.length).toBeGreaterThan(0);
  expect(recordHasMore([...ours, `9999-a-newer-patch.patch ${"0".repeat(64)} applied`])).toBe(0);
  expect(recordHasMore(ours)).toBe(1);
  expect(recordHasMore(ours.slice(1))).toBe(1);
  const changed = ours[0]!.replace(/ [0-9a-f]{64} /, ` ${"f".repeat(64)} `);
  expect(recordHasMore([changed, ...ours.slice(1), `9999-a-newer-patch.patch ${"0".repeat(64)} applied`])).toBe(1);
});
