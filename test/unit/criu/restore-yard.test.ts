import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeRestoreYard, restoreYardOf, yardInUse } from "../../../src/criu/restore-yard.ts";

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A directory named as CRIU's mkdtemp names a yard, in the real /tmp (the only place CRIU puts one). */
function yardDir(): string {
  const dir = mkdtempSync("/tmp/.criu.mntns.");
  made.push(dir);
  return dir;
}

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), "cryo-yard-test-"));
  made.push(dir);
  return dir;
}

/** A fake /proc with one process of the given comm whose mountinfo is given. */
function fakeProc(comm: string, mountinfo: string): string {
  const proc = scratch();
  mkdirSync(join(proc, "4242"));
  writeFileSync(join(proc, "4242", "comm"), `${comm}\n`);
  writeFileSync(join(proc, "4242", "mountinfo"), mountinfo);
  mkdirSync(join(proc, "self"));
  return proc;
}

const LOG = [
  "(00.000112) Version: 4.2 (gitid 0)",
  "(00.005087) mnt: \t\tWill mount 58 @ /tmp/.criu.mntns.TAtLl6/mnt-0000000058 /sys/firmware",
  "(00.005090) mnt: \t\tWill mount 59 @ /tmp/.criu.mntns.TAtLl6/mnt-0000000059 /proc",
].join("\n");

test("the yard's name is read from the restore log; a log without one names none", () => {
  expect(restoreYardOf(LOG)).toBe("/tmp/.criu.mntns.TAtLl6");
  expect(restoreYardOf("(00.000112) Version: 4.2\n(00.0002) Error (criu/cr-restore.c:1): nothing\n")).toBeUndefined();
  // Not a yard: a longer suffix, or a path that only begins like one.
  expect(restoreYardOf("mounted /tmp/.criu.mntns.TAtLl6x9/a")).toBeUndefined();
  expect(restoreYardOf("at /tmp/.criu.mntns.AbC123")).toBe("/tmp/.criu.mntns.AbC123");
});

test("a yard no CRIU holds is removed; one a live criu has mounted, one not empty, or a log that names none is kept", () => {
  const work = scratch();
  const logPath = join(work, "restore.log");
  const yard = yardDir();
  writeFileSync(logPath, LOG.replaceAll("/tmp/.criu.mntns.TAtLl6", yard));
  // A live criu with a mount at the yard: its restore still runs there.
  const busy = fakeProc("criu", `58 30 0:52 / ${yard} rw,relatime - tmpfs none rw\n`);
  expect(yardInUse(yard, busy)).toBe(true);
  expect(removeRestoreYard(logPath, busy)).toBeUndefined();
  expect(existsSync(yard)).toBe(true);
  // Another process with that mount is not a CRIU; a criu without it holds another yard.
  expect(yardInUse(yard, fakeProc("sleep", `58 30 0:52 / ${yard} rw - tmpfs none rw\n`))).toBe(false);
  const other = fakeProc("criu", `58 30 0:52 / ${yard}x rw - tmpfs none rw\n`);
  expect(yardInUse(yard, other)).toBe(false);
  // Not empty: not a killed restore's leftover as CRIU leaves it.
  writeFileSync(join(yard, "file"), "");
  expect(removeRestoreYard(logPath, other)).toBeUndefined();
  expect(existsSync(yard)).toBe(true);
  rmSync(join(yard, "file"));
  expect(removeRestoreYard(logPath, other)).toBe(yard);
  expect(existsSync(yard)).toBe(false);
  // Already gone (CRIU removed it), no log, a log naming none: nothing to do.
  expect(removeRestoreYard(logPath, other)).toBeUndefined();
  expect(removeRestoreYard(join(work, "missing.log"), other)).toBeUndefined();
  writeFileSync(logPath, "(00.000112) Version: 4.2\n");
  expect(removeRestoreYard(logPath, other)).toBeUndefined();
});
