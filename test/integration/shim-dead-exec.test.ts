/**
 * A per-namespace shim daemon SIGKILLed under containers with exec'd processes, in a process tree whose child subreaper
 * does not reap (this test process, as a chaos driver was): the exec'd processes (children of the daemon, outside the
 * containers' PID namespaces) go to that subreaper, and their zombies keep each container's killed init waiting in
 * zap_pid_ns_processes, out of its cgroups but not gone. `runc delete --force` waits 10 s for such an init and gives
 * up, and containerd kills the `delete` action after 5 s: the containers' (empty) cgroups in every hierarchy and their
 * runc state were left for good (a chaos run saw 4 containers' cgroups left). `delete` now removes them itself
 * (src/shim/stuck-init.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { parseRuncState } from "../../src/runtime/state-file.ts";
import { createReaper, readProcStat, setChildSubreaper } from "../../src/sys/index.ts";
import { ensureTestImage, PrivateContainerd, shimDaemonPids, startPrivateContainerd, taskStatus, testImage, uniqueId, waitFor } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let ns: string;

beforeAll(async () => {
  // Before containerd starts: its shims' daemons (double-forked) and what they leave are handed to this process.
  setChildSubreaper(true);
  ns = uniqueId("deadexec");
  pc = await startPrivateContainerd({ namespace: ns, env: { CRYO_SHIM_GROUPING: "per-namespace" } });
  await ensureTestImage(pc);
});

afterAll(async () => {
  await pc?.stop();
  setChildSubreaper(false);
});

const procsOf = (dir: string): string[] => {
  try {
    return readFileSync(`${dir}/cgroup.procs`, "utf8").split("\n").filter((l) => l !== "");
  } catch {
    return [];
  }
};

test("per-namespace daemon SIGKILLed under containers with exec'd processes, their heir not reaping: containerd's cleanup leaves no cgroup or runc state", async () => {
  const ids = [0, 1, 2, 3].map((i) => uniqueId(`x${i}`));
  for (const id of ids) await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "1000"]);
  const execs = ids.map((id) => pc.ctr(["task", "exec", "--exec-id", "sleeper", id, "sleep", "1000"]));
  const states = ids.map((id) => parseRuncState(readFileSync(`/run/containerd/runc/${ns}/${id}/state.json`, "utf8")));
  const dirs = states.map((s) => [...new Set(Object.values(s.cgroup_paths))]);
  expect(dirs.every((d) => d.length > 1)).toBe(true);
  for (const [i, s] of states.entries()) await waitFor(() => procsOf(s.cgroup_paths.pids!).length >= 2 || undefined, { what: `exec running in ${ids[i]}` });
  // One of them paused (frozen): its init is killed through the freezer too.
  await pc.ctrOk(["task", "pause", ids[3]!]);
  const daemons = shimDaemonPids(pc.address);
  expect(daemons.length).toBe(1);
  process.kill(daemons[0]!, "SIGKILL");
  await Promise.all(execs);
  for (const [i, id] of ids.entries()) {
    await waitFor(() => dirs[i]!.every((d) => !existsSync(d)) || undefined, { timeoutMs: 20_000, what: `cgroups of ${id} removed` });
    await waitFor(() => !existsSync(`/run/containerd/runc/${ns}/${id}`) || undefined, { timeoutMs: 20_000, what: `runc state of ${id} removed` });
    expect(await taskStatus(pc, id)).not.toBe("RUNNING");
  }
  expect(readFileSync(pc.layout.log, "utf8")).toMatch(/its init \d+ was killed and waits for processes exec'd into the container to be reaped/);
  // The zombies are ours: reaped, and each container's init is gone with them.
  const reaper = createReaper({ subreaper: false });
  try {
    reaper.reap();
    for (const s of states) {
      await waitFor(() => {
        reaper.reap();
        const st = readProcStat(s.init_process_pid);
        return st === undefined || st.startTime !== BigInt(s.init_process_start) || undefined;
      }, { timeoutMs: 10_000, what: `init ${s.init_process_pid} gone` });
    }
  } finally {
    reaper[Symbol.dispose]();
  }
  for (const id of ids) {
    await pc.ctr(["task", "rm", "-f", id]);
    await pc.ctrOk(["containers", "rm", id]);
  }
}, 120_000);
