/** dump-abort.ts: reading CRIU's run id and lock tables, and the daemon-safe file reads. */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { copyRegularFile, criuRunId, criuTables, isRunTable, lastLogLine, lockedConnections, regularFileText, undoKilledDump } from "../../../src/shim/dump-abort.ts";

test("the run id is the last one CRIU logged (criu swrk logs its own start's, then the request's)", () => {
  const log = [
    "(00.000000) CRIU run id = bfc5d392-bbf4-44fe-a0cb-e33743e31572",
    "(00.000000) CRIU run id = c706f4c1-2eb2-4836-944a-a6e7ea4c6e2c",
    "(00.000200) Version: 4.2.1 (gitid 0)",
  ].join("\n");
  expect(criuRunId(log)).toBe("c706f4c1-2eb2-4836-944a-a6e7ea4c6e2c");
  expect(criuRunId("(00.000200) Version: 4.2.1 (gitid 0)\n")).toBeUndefined();
});

test("CRIU's lock tables: only inet CRIU-* from nft's listing; a run's table is its id cut as CRIU cuts it", () => {
  const listing = "table inet filter\ntable inet CRIU-c706f4c1-2eb2-4836-944a\ntable ip CRIU-x\ntable inet CRIU-0123\n";
  expect(criuTables(listing)).toEqual(["CRIU-c706f4c1-2eb2-4836-944a", "CRIU-0123"]);
  const id = "c706f4c1-2eb2-4836-944a-a6e7ea4c6e2c";
  expect(isRunTable("CRIU-c706f4c1-2eb2-4836-944a", id)).toBe(true);
  expect(isRunTable(`CRIU-${id}`, id)).toBe(true);
  expect(isRunTable("CRIU-c706f4c1-2eb2-4836-944b", id)).toBe(false);
  // Too short to be told apart from another run's.
  expect(isRunTable("CRIU-c706", id)).toBe(false);
});

test("the last line of CRIU's own is the one named, not the parasite's that follow it", () => {
  const log = "(00.107845) Wait for ack 70 on daemon socket\n(00.108314) sid=1 pgid=1 pid=1\npie: 1: Trimmed message received (12/0)\npie: 1: 1: new_sp=0x7f ip 0x460a61\n";
  expect(lastLogLine(log)).toBe("(00.108314) sid=1 pgid=1 pid=1");
  expect(lastLogLine("")).toBe("");
  expect(lastLogLine(`(00.1) ${"x".repeat(400)}`).length).toBe(301);
});

test("a FIFO where the log should be is neither read nor copied (a synchronous read would block the daemon)", () => {
  const dir = mkdtempSync("/tmp/cryo-dump-abort-");
  try {
    expect(Bun.spawnSync(["mkfifo", join(dir, "fifo")]).exitCode).toBe(0);
    expect(regularFileText(join(dir, "fifo"))).toBe("");
    expect(copyRegularFile(join(dir, "fifo"), join(dir, "copy"))).toBe(false);
    expect(regularFileText(join(dir, "missing"))).toBe("");
    writeFileSync(join(dir, "log"), "(00.1) hello\n");
    expect(copyRegularFile(join(dir, "log"), join(dir, "copy"))).toBe(true);
    expect(regularFileText(join(dir, "copy"))).toBe("(00.1) hello\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("undo: the freezer goes back to its state before the call (thawed, or frozen for a paused container), whatever the lock", async () => {
  const set: boolean[] = [];
  const r = await undoKilledDump({ netns: undefined, logFile: "/nonexistent", networkLock: "skip", freezer: { paused: false, set: async (f) => void set.push(f) } });
  expect(r).toEqual({ done: ["cgroup thawed"], failed: [] });
  const p = await undoKilledDump({ netns: undefined, logFile: "/nonexistent", networkLock: "skip", freezer: { paused: true, set: async (f) => void set.push(f) } });
  expect(p).toEqual({ done: ["cgroup frozen again (the container was paused before)"], failed: [] });
  expect(set).toEqual([false, true]);
  const f = await undoKilledDump({ netns: undefined, logFile: "/nonexistent", networkLock: "skip", freezer: { paused: false, set: async () => { throw new Error("EBUSY"); } } });
  expect(f).toEqual({ done: [], failed: ["thaw: EBUSY"] });
  expect(await undoKilledDump({ netns: undefined, logFile: "/nonexistent", networkLock: "skip", freezer: undefined })).toEqual({ done: [], failed: [] });
});

test("the connections CRIU locked with iptables, from its log (one line per rule; v4 and v6)", () => {
  const log = [
    "(00.050000) \tRunning iptables [iptables -w -t filter -I INPUT --protocol tcp ...]",
    "(00.051000) Locked 127.0.0.1:7000 - 127.0.0.1:45100 connection",
    "(00.052000) Locked 127.0.0.1:45100 - 127.0.0.1:7000 connection",
    "(00.053000) Locked ::1:8080 - ::1:50000 connection",
    "(00.054000) Unlocked 10.0.0.1:1 - 10.0.0.2:2 connection",
  ].join("\n");
  expect(lockedConnections(log)).toEqual([
    { src: "127.0.0.1", sport: 7000, dst: "127.0.0.1", dport: 45100 },
    { src: "127.0.0.1", sport: 45100, dst: "127.0.0.1", dport: 7000 },
    { src: "::1", sport: 8080, dst: "::1", dport: 50000 },
  ]);
  expect(lockedConnections("")).toEqual([]);
});
