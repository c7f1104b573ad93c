import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stoppedTasks } from "../../../src/shim/checkpoint-dump.ts";

const dir = mkdtempSync(join(tmpdir(), "cryo-stopped-"));
const procs: Bun.Subprocess[] = [];
afterAll(() => {
  for (const p of procs) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

test("stoppedTasks: the tasks of the cgroup's list that a stop signal stopped; running, sleeping and gone ones are not", async () => {
  const running = Bun.spawn(["sleep", "100"]);
  const stopped = Bun.spawn(["sleep", "100"]);
  procs.push(running, stopped);
  process.kill(stopped.pid, "SIGSTOP");
  const stateOf = (pid: number) => {
    const stat = require("node:fs").readFileSync(`/proc/${pid}/stat`, "utf8") as string;
    return stat[stat.lastIndexOf(")") + 2];
  };
  for (let i = 0; i < 100 && stateOf(stopped.pid) !== "T"; i++) await Bun.sleep(10);
  // A cgroup v1 freezer directory lists every thread in "tasks"; a v2 one in "cgroup.threads".
  writeFileSync(join(dir, "tasks"), `${running.pid}\n${stopped.pid}\n999999999\n`);
  expect(stoppedTasks({ freezer: dir })).toEqual([stopped.pid]);
  expect(stoppedTasks({ memory: dir })).toEqual([]);
  expect(stoppedTasks({ freezer: join(dir, "missing") })).toEqual([]);
  rmSync(join(dir, "tasks"));
  writeFileSync(join(dir, "cgroup.threads"), `${stopped.pid}\n`);
  expect(stoppedTasks({ "": dir })).toEqual([stopped.pid]);
});
