// The OOM watches on a fake cgroup directory: v2's memory.events, v1's memory.oom_control and an eventfd the test
// signals itself; the watch's end reports a rise not yet seen, and only that.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { watchOomV1, watchOomV2 } from "../../../src/cgroups/oom.ts";

test("v2: an oom_kill rise written just before the watch ends is reported at its end, once; no rise, no report", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-oom-v2-"));
  try {
    const events = join(dir, "memory.events");
    writeFileSync(events, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
    const counts: (bigint | undefined)[] = [];
    const watch = watchOomV2(dir, (n) => counts.push(n), { pollMs: 60_000 });
    writeFileSync(events, "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n");
    watch[Symbol.dispose](); // before inotify's wake-up is handled
    expect(counts).toEqual([2n]);
    await Bun.sleep(50);
    expect(counts).toEqual([2n]);

    // Kills the watch reported already (two counted at once: one report) are not reported again at its end.
    const seen: (bigint | undefined)[] = [];
    const w2 = watchOomV2(dir, (n) => seen.push(n), { pollMs: 10 });
    writeFileSync(events, "low 0\nhigh 0\nmax 9\noom 4\noom_kill 4\n");
    for (let i = 0; i < 100 && seen.length === 0; i++) await Bun.sleep(10);
    expect(seen).toEqual([4n]);
    w2[Symbol.dispose]();
    expect(seen).toEqual([4n]);

    const quiet: (bigint | undefined)[] = [];
    watchOomV2(dir, (n) => quiet.push(n), { pollMs: 60_000 })[Symbol.dispose]();
    expect(quiet).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("v1: a wake-up whose kill is not counted yet, then one counting only the first kill: two kills, two reports, none at the end", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-oom-v1-"));
  try {
    const control = join(dir, "memory.oom_control");
    const oomControl = (kills: number) => writeFileSync(control, `oom_kill_disable 0\nunder_oom 0\noom_kill ${kills}\n`);
    oomControl(0);
    writeFileSync(join(dir, "cgroup.event_control"), "");
    const seen: (bigint | undefined)[] = [];
    const watch = watchOomV1(dir, (n) => seen.push(n));
    // The watch registered "<eventfd> <fd of memory.oom_control>"; the kernel's notification is a write to that eventfd.
    const efd = Number(readFileSync(join(dir, "cgroup.event_control"), "utf8").split(" ")[0]);
    const wakeUp = async (reports: number) => {
      writeSync(efd, new Uint8Array(new BigUint64Array([1n]).buffer));
      for (let i = 0; i < 200 && seen.length < reports; i++) await Bun.sleep(5);
    };
    await wakeUp(1); // the first OOM, notified before its kill is counted
    expect(seen).toEqual([undefined]);
    oomControl(1);
    await wakeUp(2); // the second OOM: only the first kill is counted so far
    expect(seen).toEqual([undefined, 1n]);
    oomControl(2); // the second kill counted; its wake-up was reported already
    watch[Symbol.dispose]();
    expect(seen).toEqual([undefined, 1n]);

    // A kill counted with no wake-up handled is still reported at the end, once.
    const late: (bigint | undefined)[] = [];
    const w2 = watchOomV1(dir, (n) => late.push(n));
    oomControl(3);
    w2[Symbol.dispose]();
    expect(late).toEqual([3n]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
