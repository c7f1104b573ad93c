// The v2 OOM watch on a memory.events file of a fake cgroup directory: its end reports a rise not yet seen.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { watchOomV2 } from "../../../src/cgroups/oom.ts";

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
