import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { otherBundleOf } from "../../../src/shim/cleanup.ts";

const dir = mkdtempSync("/tmp/cryo-other-bundle-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function state(root: string, id: string, labels: string[]): void {
  mkdirSync(join(root, id), { recursive: true });
  writeFileSync(
    join(root, id, "state.json"),
    JSON.stringify({ id, init_process_pid: 1, init_process_start: 0, created: "2026-12-03T00:00:00Z", config: { rootfs: "/x", labels } }),
  );
}

test("the delete action leaves runc state of another bundle alone: another containerd's container of the same namespace and id", () => {
  const root = join(dir, "runc");
  const ours = join(dir, "a", "bundle");
  const theirs = join(dir, "b", "bundle");
  mkdirSync(ours, { recursive: true });
  mkdirSync(theirs, { recursive: true });
  state(root, "twin", [`bundle=${theirs}`, "x=y"]);
  expect(otherBundleOf(root, "twin", ours)).toBe(theirs);
  // Its own state, also named through a symbolic link (the delete runs in the bundle: its resolved path).
  state(root, "own", [`bundle=${ours}`]);
  expect(otherBundleOf(root, "own", ours)).toBeUndefined();
  symlinkSync(join(dir, "a"), join(dir, "a-link"));
  state(root, "linked", [`bundle=${join(dir, "a-link", "bundle")}`]);
  expect(otherBundleOf(root, "linked", ours)).toBeUndefined();
  // A state whose bundle is gone (stale), names none, or cannot be read: the delete may clear it, as before.
  state(root, "stale", [`bundle=${join(dir, "gone")}`]);
  expect(otherBundleOf(root, "stale", ours)).toBeUndefined();
  state(root, "unlabelled", []);
  expect(otherBundleOf(root, "unlabelled", ours)).toBeUndefined();
  mkdirSync(join(root, "broken"));
  writeFileSync(join(root, "broken", "state.json"), "{");
  expect(otherBundleOf(root, "broken", ours)).toBeUndefined();
});
