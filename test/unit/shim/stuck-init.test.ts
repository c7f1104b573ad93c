import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseRuncState } from "../../../src/runtime/index.ts";
import { readProcStat } from "../../../src/sys/index.ts";
import { initFate, killInit, ownPidNamespace, recordedCgroupDirs } from "../../../src/shim/stuck-init.ts";

// runc 1.1.5's state.json of a created container (test/unit/runtime).
const fixture = readFileSync(join(import.meta.dir, "../runtime/state-fixture.json"), "utf8");

test("the cgroup directories a runc state records: every hierarchy's, each once, the unified one too", () => {
  const s = parseRuncState(fixture);
  const dirs = recordedCgroupDirs(s);
  expect(dirs).toContain("/sys/fs/cgroup/freezer/cryo-fixture");
  expect(dirs).toContain("/sys/fs/cgroup/unified/cryo-fixture");
  expect(new Set(dirs).size).toBe(dirs.length);
  expect(dirs.length).toBe(new Set(Object.values(s.cgroup_paths)).size);
  // A relative or empty path is nothing to remove.
  expect(recordedCgroupDirs({ ...s, cgroup_paths: { pids: "", memory: "rel/x" } })).toEqual([]);
});

test("a PID namespace of its own: NEWPID without a path (one joined is not)", () => {
  const s = parseRuncState(fixture);
  expect(ownPidNamespace(s)).toBe(true);
  const joined = { ...s, config: { ...s.config, namespaces: s.config.namespaces.map((n) => (n.type === "NEWPID" ? { ...n, path: "/proc/1/ns/pid" } : n)) } };
  expect(ownPidNamespace(joined)).toBe(false);
  const none = { ...s, config: { ...s.config, namespaces: s.config.namespaces.filter((n) => n.type !== "NEWPID") } };
  expect(ownPidNamespace(none)).toBe(false);
});

test("init's fate: running (not exiting), gone when its start time is another process's (pid reuse); killInit leaves a gone init alone", async () => {
  const s = parseRuncState(fixture);
  const me = readProcStat(process.pid)!;
  const mine = { ...s, init_process_pid: process.pid, init_process_start: Number(me.startTime), cgroup_paths: {} };
  expect(initFate(mine)).toBe("running");
  const reused = { ...mine, init_process_start: Number(me.startTime) + 1 };
  expect(initFate(reused)).toBe("gone");
  expect(await killInit(reused)).toBe("gone");
  expect(initFate({ ...mine, init_process_pid: 0x3fffffff })).toBe("gone");
});
