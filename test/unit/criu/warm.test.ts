// The joined helper's idle limit (src/criu/warm.ts): a warm helper told to join a restore's cgroups that no restore
// takes (its Start never came) is killed after the limit; one a restore took is the restore's and lives on. `sleep`
// with a number of its own stands in for the helper: it never reads the join line, and what is checked is who ends it.
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { prejoinCriuHelper, prewarmCriuHelper, takeJoinedCriuHelper, type HelperProcess } from "../../../src/criu/warm.ts";
import { childrenOf } from "../../../src/sys/proc.ts";

const cmd = ["sleep", `${3000 + (process.pid % 1000)}`];
const dirs = ["/sys/fs/cgroup/cpu/cryo-warm-unit-test"];
const taken: HelperProcess[] = [];

afterEach(() => {
  for (const p of taken.splice(0)) p.kill("SIGKILL");
  takeJoinedCriuHelper(cmd, dirs)?.kill("SIGKILL");
});

/** This process's children running cmd (the warm or joined stand-in). */
const standIns = () =>
  childrenOf(process.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8") === `${cmd.join("\0")}\0`;
    } catch {
      return false;
    }
  });

test("a joined helper that no restore takes is killed after its idle limit and no longer offered", async () => {
  prewarmCriuHelper(cmd, 30_000);
  // Spawned a moment ago: its command line is `sleep` once it has exec'd.
  for (let i = 0; i < 500 && standIns().length === 0; i++) await Bun.sleep(10);
  prejoinCriuHelper(cmd, dirs, 300);
  expect(standIns().length).toBe(1);
  await Bun.sleep(1000);
  expect(standIns()).toEqual([]);
  expect(takeJoinedCriuHelper(cmd, dirs)).toBeUndefined();
});

test("a joined helper a restore took before its limit is the restore's: the limit does not end it", async () => {
  prewarmCriuHelper(cmd, 30_000);
  prejoinCriuHelper(cmd, dirs, 300);
  const proc = takeJoinedCriuHelper(cmd, dirs);
  expect(proc).toBeDefined();
  taken.push(proc!);
  await Bun.sleep(1000);
  expect(proc!.exitCode).toBeNull();
  expect(proc!.signalCode).toBeNull();
});
