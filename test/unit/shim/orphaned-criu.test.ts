// A restore its shim did not finish: the bundle's marker, and finding CRIU's processes by what they hold open.
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEAD_RESTORE_CGROUP_WAIT_MS,
  isRestoring,
  markRestoring,
  pidNamespacesOf,
  pidsOutside,
  processesHoldingFilesBelow,
  readRestoreRecord,
  recordDumpDir,
  forgetDumpDir,
  removeAbandonedDumpDir,
  recordRestoreCgroups,
  recordRestoreCgroupsPath,
  restoreCgroupsPathOf,
  restoreWorkDir,
  retryBusyCgroups,
  stopInterruptedRestore,
  unmarkRestoring,
  waitGone,
} from "../../../src/shim/orphaned-criu.ts";

const base = mkdtempSync(join(tmpdir(), "cryo-interrupted-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

test("the marker is set while a bundle is restored into, and gone after", () => {
  const bundle = join(base, "bundle");
  mkdirSync(bundle);
  expect(isRestoring(bundle)).toBe(false);
  markRestoring(bundle);
  expect(isRestoring(bundle)).toBe(true);
  unmarkRestoring(bundle);
  unmarkRestoring(bundle); // twice is fine
  expect(isRestoring(bundle)).toBe(false);
  expect(restoreWorkDir(bundle)).toBe(join(bundle, "criu-restore-work"));
});

test("processesHoldingFilesBelow: the pids with a descriptor on a file below the directory, and no other", () => {
  const proc = join(base, "proc");
  const work = "/b/criu-restore-work";
  const fd = (pid: string, n: string, target: string) => {
    mkdirSync(join(proc, pid, "fd"), { recursive: true });
    symlinkSync(target, join(proc, pid, "fd", n));
  };
  fd("123", "3", `${work}/restore.log`);
  fd("123", "4", `${work}/restore.log`);
  fd("124", "1", "/dev/null");
  fd("125", "7", `${work}-other/restore.log`); // a sibling directory with the same prefix
  fd("126", "9", work); // the directory itself, not a file below it
  mkdirSync(join(proc, "127")); // no fd directory (a kernel thread, or gone)
  mkdirSync(join(proc, "self"));
  expect(processesHoldingFilesBelow(work, proc)).toEqual([123]);
});

test("waitGone returns once the processes are dead, a zombie nobody reaps counting as dead; and at its deadline otherwise", async () => {
  // sh forks a short sleep, then execs a long one: the short one ends as a zombie its parent never reaps.
  const parent = Bun.spawn(["sh", "-c", "sleep 0.05 & exec sleep 30"], { stdout: "ignore" });
  try {
    await Bun.sleep(200);
    const children = readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, "utf8").trim().split(/\s+/).filter((p) => p !== "").map(Number);
    expect(children.length).toBe(1);
    const zombie = children[0]!;
    expect(readFileSync(`/proc/${zombie}/stat`, "utf8")).toMatch(/\) Z /);
    let t = performance.now();
    await waitGone([zombie], 5000);
    expect(performance.now() - t).toBeLessThan(1000);
    // A live process: waitGone gives up at its deadline.
    t = performance.now();
    await waitGone([parent.pid], 300);
    expect(performance.now() - t).toBeGreaterThanOrEqual(290);
  } finally {
    parent.kill("SIGKILL");
    await parent.exited;
  }
});

test("the marker records the PID namespaces that were in the cgroups before the restore; strays are the others", () => {
  const bundle = join(base, "bundle-record");
  mkdirSync(bundle);
  markRestoring(bundle);
  expect(readRestoreRecord(bundle)).toBeUndefined();
  recordRestoreCgroups(bundle, ["pid:[1]"]);
  expect(isRestoring(bundle)).toBe(true);
  expect(readRestoreRecord(bundle)).toEqual({ before: ["pid:[1]"] });
  recordRestoreCgroups(bundle, []);
  expect(readRestoreRecord(bundle)).toEqual({ before: [] });
  // Where the cgroups are: recorded before they are made, and kept with `before` (a copy's own, not its spec's).
  expect(restoreCgroupsPathOf(bundle)).toBeUndefined();
  recordRestoreCgroupsPath(bundle, "/ns/copy");
  expect([readRestoreRecord(bundle), restoreCgroupsPathOf(bundle)]).toEqual([undefined, "/ns/copy"]);
  recordRestoreCgroups(bundle, ["pid:[1]"], "/ns/copy");
  expect([readRestoreRecord(bundle), restoreCgroupsPathOf(bundle)]).toEqual([{ before: ["pid:[1]"] }, "/ns/copy"]);
  recordRestoreCgroups(bundle, []);

  // A fake /proc: 10 and 11 in the original's namespace, 20 in the restore's, 30 gone.
  const proc = join(base, "proc-ns");
  for (const [pid, ns] of [[10, "pid:[100]"], [11, "pid:[100]"], [20, "pid:[200]"]] as const) {
    mkdirSync(join(proc, String(pid), "ns"), { recursive: true });
    symlinkSync(ns, join(proc, String(pid), "ns", "pid"));
  }
  expect(pidNamespacesOf([10, 11, 30], proc)).toEqual(["pid:[100]"]);
  expect(pidsOutside([10, 11, 20, 30], ["pid:[100]"], proc)).toEqual([20]);
  expect(pidsOutside([10, 20], [], proc)).toEqual([10, 20]);
});

test("containerd's directory of a checkpoint whose shim died mid-dump is removed by delete; any other is left alone", () => {
  const bundle = join(base, "dump-bundle");
  const tmp = join(base, "ctd-tmp"); // containerd's XDG_RUNTIME_DIR
  mkdirSync(bundle);
  mkdirSync(tmp);
  const env = { XDG_RUNTIME_DIR: tmp };
  // A path containerd did not make (the task API's own): no record.
  expect(recordDumpDir(bundle, join(tmp, "mine"))).toBe(false);
  expect(removeAbandonedDumpDir(bundle, env)).toBeUndefined();
  // 1.6's name and 2.x's; an answered dump forgets it.
  for (const name of ["ctd-checkpoint123", "ctrd-checkpoint456"]) {
    const dir = join(tmp, name);
    mkdirSync(dir);
    writeFileSync(join(dir, "pstree.img"), "x"); // what the orphaned CRIU wrote after containerd's removal
    expect(recordDumpDir(bundle, dir)).toBe(true);
    expect(removeAbandonedDumpDir(bundle, env)).toBe(dir);
    expect(existsSync(dir)).toBe(false);
    expect(removeAbandonedDumpDir(bundle, env)).toBeUndefined(); // the record went with it
  }
  const answered = join(tmp, "ctd-checkpoint789");
  mkdirSync(answered);
  recordDumpDir(bundle, answered);
  forgetDumpDir(bundle);
  expect(removeAbandonedDumpDir(bundle, env)).toBeUndefined();
  expect(existsSync(answered)).toBe(true);
  // Such a name elsewhere than containerd's temp directory is not containerd's: left alone.
  const elsewhere = join(base, "ctd-checkpoint1");
  mkdirSync(elsewhere);
  recordDumpDir(bundle, elsewhere);
  expect(removeAbandonedDumpDir(bundle, env)).toBeUndefined();
  expect(existsSync(elsewhere)).toBe(true);
});

test.skipIf(process.getuid?.() !== 0)(
  "stopInterruptedRestore waits at most DEAD_RESTORE_CGROUP_WAIT_MS for each cgroup that stays busy, so that the rest of delete runs within containerd's 5 s; retryBusyCgroups removes it once free, until its deadline",
  async () => {
    // A process of the restored tree that does not die at once: killed while its own freezer cgroup (not the
    // container's, which the cleanup thaws) is frozen, it stays in the container's memory cgroup until thawed.
    // A helper session saw the same with CRIU held in gdb: delete waited 5 s per hierarchy and containerd killed it
    // before the unmounts and removals after that step.
    const tag = `cryo-unit-interrupted-${process.pid}`;
    const memory = `/sys/fs/cgroup/memory/${tag}/c`;
    const holdFreezer = `/sys/fs/cgroup/freezer/${tag}-hold`;
    const bundle = join(base, "bundle-busy");
    mkdirSync(bundle);
    writeFileSync(join(bundle, "config.json"), JSON.stringify({ linux: { cgroupsPath: `/${tag}/c` } }));
    markRestoring(bundle);
    recordRestoreCgroups(bundle, []);
    mkdirSync(memory, { recursive: true });
    mkdirSync(holdFreezer, { recursive: true });
    const sleeper = Bun.spawn(["sleep", "1000"]);
    const warnings: string[] = [];
    const log = { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {} } as never;
    try {
      writeFileSync(join(memory, "cgroup.procs"), String(sleeper.pid));
      writeFileSync(join(holdFreezer, "cgroup.procs"), String(sleeper.pid));
      writeFileSync(join(holdFreezer, "freezer.state"), "FROZEN");
      const busy = await stopInterruptedRestore(bundle, join(base, "state-busy"), log);
      // Before: "still busy after 5000 ms", in each hierarchy in turn.
      expect(warnings.find((w) => w.includes(memory))).toContain(`still busy after ${DEAD_RESTORE_CGROUP_WAIT_MS} ms`);
      expect(existsSync(memory)).toBe(true);
      expect(isRestoring(bundle)).toBe(false);
      // Tried again at the end of delete, within its time: still frozen, it is left at the deadline, and said so.
      expect(busy).toEqual([{ cgroupsPath: `/${tag}/c`, version: 1 }]);
      let t = performance.now();
      await retryBusyCgroups(busy, t + 300, log);
      expect(performance.now() - t).toBeLessThan(300 + 1000);
      expect(existsSync(memory)).toBe(true);
      expect(warnings.at(-1)).toStartWith(`the cgroup /${tag}/c (v1) of a restore its shim did not finish: still busy, left: `);
      // Killed (it is in the memory cgroup only, where the cleanup's kill does not look) and thawed 300 ms into the
      // retry: it goes, and every v1 directory with it (before: left for good, since containerd runs delete once after a
      // dead shim and the v1 removal stopped at the first busy controller).
      sleeper.kill("SIGKILL");
      setTimeout(() => writeFileSync(join(holdFreezer, "freezer.state"), "THAWED"), 300);
      t = performance.now();
      await retryBusyCgroups(busy, t + 3000, log);
      expect(warnings.at(-1)).toBe(`the cgroup /${tag}/c (v1) of a restore its shim did not finish: removed on a second try`);
      for (const ctl of readdirSync("/sys/fs/cgroup").filter((c) => c !== "unified")) expect(existsSync(`/sys/fs/cgroup/${ctl}/${tag}/c`)).toBe(false);
    } finally {
      writeFileSync(join(holdFreezer, "freezer.state"), "THAWED");
      sleeper.kill("SIGKILL");
      await sleeper.exited;
      for (const d of [memory, `/sys/fs/cgroup/memory/${tag}`, holdFreezer]) {
        for (let i = 0; i < 100 && existsSync(d); i++) {
          try {
            rmdirSync(d);
          } catch {
            await Bun.sleep(20);
          }
        }
      }
      // The cleanup made the container's cgroup in the other hierarchies too (openCgroup on this hybrid host): removed.
      for (const ctl of readdirSync("/sys/fs/cgroup")) {
        for (const d of [`/sys/fs/cgroup/${ctl}/${tag}/c`, `/sys/fs/cgroup/${ctl}/${tag}`]) if (existsSync(d)) rmdirSync(d);
      }
    }
  },
  30_000,
);
