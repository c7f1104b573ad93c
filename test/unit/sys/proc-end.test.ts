import { expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fdTargets, innermostPid, processEnd, wchanOf } from "../../../src/sys/proc.ts";
import { waitFor } from "../../harness/wait-for.ts";

// What the CRIU watchdog reads of a restore's tree: how a task ended (a zombie, or one still in exit()), its pid in its
// own pid namespace, and where a process sleeps.
test("processEnd: undefined while running, the signal of a zombie killed by one, the status of one that exited", async () => {
  // The shell becomes a sleep, which reaps no child: each child stays a zombie for the test to read. The shell itself
  // may reap a child that ends before its exec (seen once in a CI run: the killed sleep was gone), so the sleep is
  // killed only after the exec, and the other child exits a second later.
  await using sh = Bun.spawn(["sh", "-c", "sleep 60 & echo $!; sh -c 'sleep 1; exit 3' & echo $!; exec sleep 60"], { stdout: "pipe" });
  const reader = sh.stdout.getReader();
  let text = "";
  while (text.split("\n").length < 3) text += new TextDecoder().decode((await reader.read()).value);
  const [sleeper, exited] = text.trim().split("\n").map(Number) as [number, number];
  await waitFor(() => readFileSync(`/proc/${sh.pid}/cmdline`, "utf8").startsWith("sleep\0") || undefined, { what: "the shell to become a sleep" });
  expect(processEnd(sleeper)).toBeUndefined();
  process.kill(sleeper, "SIGKILL");
  await waitFor(() => processEnd(sleeper), { what: "the killed sleep a zombie" });
  expect(processEnd(sleeper)).toBe("killed by signal 9");
  await waitFor(() => processEnd(exited), { what: "the exited shell a zombie" });
  expect(processEnd(exited)).toBe("exit status 3");
  sh.kill("SIGKILL");
});

test("processEnd of a pid that is gone is undefined; innermostPid is the pid itself in this namespace", () => {
  const gone = Bun.spawnSync(["true"]).pid;
  expect(processEnd(gone)).toBeUndefined();
  expect(innermostPid(gone)).toBeUndefined();
  expect(innermostPid(process.pid)).toBe(process.pid);
});

test("wchanOf names the kernel function a sleeping process waits in; undefined for a pid that is gone", async () => {
  await using sleeper = Bun.spawn(["sleep", "60"], { stdout: "ignore" });
  expect(await waitFor(() => wchanOf(sleeper.pid), { what: "sleep asleep" })).toMatch(/sleep/);
  sleeper.kill("SIGKILL");
  expect(wchanOf(Bun.spawnSync(["true"]).pid)).toBeUndefined();
});

test("fdTargets: a process's descriptors and what each names; none for a process gone", () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-fdtargets-"));
  const path = join(dir, "held");
  writeFileSync(path, "x");
  const fd = openSync(path, "r");
  try {
    expect(fdTargets(process.pid)).toContainEqual({ fd, target: path });
    const gone = Bun.spawnSync(["true"]).pid;
    expect(fdTargets(gone)).toEqual([]);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  expect(fdTargets(process.pid).some((t) => t.target === path)).toBe(false);
});
