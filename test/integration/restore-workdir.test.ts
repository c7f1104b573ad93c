/**
 * The restore's work directory is removed without walking into what is still mounted in it: a killed CRIU
 * (a cancelled restore) leaves its cgroup yard there, the host's cgroup hierarchies mounted. Here a tmpfs
 * stands for the yard and a bind mount of a directory of ours for a host hierarchy: after the removal both
 * are detached, the work directory is gone, and the bound directory's file is still there.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { removeWorkDir } from "../../src/shim/restore-container.ts";
import { MS_BIND, mount } from "../../src/sys/mount.ts";
import { mountsUnder } from "../harness/index.ts";

const tmp = mkdtempSync("/tmp/cryo-workdir-");

afterAll(async () => {
  const { unmountUnder } = await import("../../src/containerd/cleanup.ts");
  await unmountUnder(tmp);
  rmSync(tmp, { recursive: true, force: true });
});

test.skipIf(process.getuid?.() !== 0)("a work directory with mounts left in it is detached, then removed; what the mounts showed is untouched", () => {
  const host = join(tmp, "host");
  mkdirSync(host);
  writeFileSync(join(host, "keep"), "x");
  const work = join(tmp, "criu-restore-work");
  const yard = join(work, ".criu.cgyard.test");
  mkdirSync(yard, { recursive: true });
  writeFileSync(join(work, "restore.log"), "log");
  mount("none", yard, "tmpfs", 0, "size=1m");
  mkdirSync(join(yard, "memory"));
  mount(host, join(yard, "memory"), null, MS_BIND);
  expect(mountsUnder(work)).toEqual([join(yard, "memory"), yard]);
  removeWorkDir(work);
  expect(mountsUnder(work)).toEqual([]);
  expect(existsSync(work)).toBe(false);
  expect(existsSync(join(host, "keep"))).toBe(true);
});
