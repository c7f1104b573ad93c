// A failed restore's cleanup of the cgroups it made (restore-container.ts discardRestoreCgroups, emptyCreatedCgroups):
// it kills its own processes there and removes the directories, and spares another restore's. Root only (cgroupfs).
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { discardRestoreCgroups, emptyCreatedCgroups, inFlight } from "../../src/shim/restore-cgroups.ts";
import { readProcStat } from "../../src/sys/proc.ts";
import { removeCgroupDirs } from "../harness/index.ts";

setDefaultTimeout(60_000);
const name = `cryo-restore-cg-${process.pid}`;
const controllers = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"].filter((d) => existsSync(d));
const cleanup: string[] = [];
const children: { pid: number; kill(signal?: number): void }[] = [];

afterAll(async () => {
  for (const c of children) c.kill(9);
  await removeCgroupDirs(cleanup);
});

test("discardRestoreCgroups removes cgroups whose processes it killed: one reaped under its check is not taken for another container's", async () => {
  // A child of this process (as the restore's CRIU helper is the daemon's) sits in each cgroup; discardRestoreCgroups
  // kills it and removes the directories. Before, a process listed in cgroup.procs and reaped before its parents were
  // read looked like one outside the daemon's tree, and the directory was kept as another restore's (a fresh-clone CI
  // run: a failed restore left its cgroup; here 28 of 40 rounds before the fix).
  expect(controllers.length).toBeGreaterThan(0);
  const own = controllers.map((d) => `${d}/${name}-discard`);
  cleanup.push(...own);
  for (let round = 0; round < 20; round++) {
    for (const d of own) mkdirSync(d);
    const child = Bun.spawn(["sleep", "100"]);
    children.push(child);
    for (const d of own) writeFileSync(`${d}/cgroup.procs`, String(child.pid));
    await discardRestoreCgroups({ created: [...own], dirs: [...own], joinDirs: [...own], before: [], ready: Promise.resolve() }, () => {});
    expect(await child.exited).not.toBe(0);
    for (const d of own) expect(existsSync(d)).toBe(false);
  }
});

test("a failed restore's cleanup spares the tree of another restore in flight: it waits until that one's runc state names it", async () => {
  // Two restores of one checkpoint in one daemon share the cgroups containerd gives both. The good one's CRIU has let
  // its tree go (the tree is the daemon's, under no CRIU helper) and its state.json is not written yet when the failed
  // one's cleanup looks: before, the good tree was killed as the failed restore's own.
  const dirs = controllers.map((d) => `${d}/${name}-twin`);
  cleanup.push(...dirs);
  for (const d of dirs) mkdirSync(d);
  const runcRoot = mkdtempSync(join(tmpdir(), "cryo-restore-cg-"));
  try {
    const tree = Bun.spawn(["sleep", "100"]);
    children.push(tree);
    for (const d of dirs) writeFileSync(`${d}/cgroup.procs`, String(tree.pid));
    const landed = inFlight();
    const cleaning = emptyCreatedCgroups(dirs, dirs, [], process.pid, { runcRoot, id: "failed" });
    await Bun.sleep(300); // the good restore's way from CRIU's answer to its state.json, drawn out
    expect(readProcStat(tree.pid)?.state).not.toBe("Z");
    mkdirSync(join(runcRoot, "good"));
    writeFileSync(join(runcRoot, "good", "state.json"), JSON.stringify({ init_process_pid: tree.pid, init_process_start: Number(readProcStat(tree.pid)!.startTime) }));
    landed();
    await cleaning;
    await Bun.sleep(100);
    expect(readProcStat(tree.pid)?.state).not.toBe("Z");
    expect(tree.exitCode).toBeNull();
    tree.kill(9);
    await tree.exited;
  } finally {
    rmSync(runcRoot, { recursive: true, force: true });
  }
});
