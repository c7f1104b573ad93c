import { expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { setThreadAffinity, setThreadIoprio, threadIoprio } from "../../../src/sys/sched.ts";
import { parseCpuList } from "../../../src/checkpoint/thread-state.ts";

// Another process's affinity, I/O priority and (through /proc) timer slack, set as the restore sets a restored thread's.
test.skipIf(process.getuid?.() !== 0)("another process's CPU affinity, I/O priority and timer slack are set from outside and read back", async () => {
  await using child = Bun.spawn(["sleep", "30"]);
  const pid = child.pid;
  const cpus = parseCpuList(readFileSync(`/proc/${pid}/status`, "latin1").match(/Cpus_allowed_list:\s*(\S+)/)![1]!);
  const last = cpus.at(-1)!;
  setThreadAffinity(pid, [last]);
  expect(readFileSync(`/proc/${pid}/status`, "latin1").match(/Cpus_allowed_list:\s*(\S+)/)![1]).toBe(String(last));
  expect(threadIoprio(pid)).toBe(0);
  setThreadIoprio(pid, (2 << 13) | 5);
  expect(threadIoprio(pid)).toBe((2 << 13) | 5);
  writeFileSync(`/proc/${pid}/timerslack_ns`, "123457");
  expect(readFileSync(`/proc/${pid}/timerslack_ns`, "latin1").trim()).toBe("123457");
  // CPUs this host does not have are cut by the kernel, silently, when one it has is left (the restore notes them)...
  setThreadAffinity(pid, [cpus[0]!, 100]);
  expect(readFileSync(`/proc/${pid}/status`, "latin1").match(/Cpus_allowed_list:\s*(\S+)/)![1]).toBe(String(cpus[0]));
  // ...and with none left: EINVAL, named.
  expect(() => setThreadAffinity(pid, [8191])).toThrow(/sched_setaffinity\(\d+, 8191\): Invalid argument/);
  child.kill();
});
