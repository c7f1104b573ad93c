import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createReaper, decodeWaitStatus, isChildSubreaper, wallClock, type Exit, type Reaper, type WallTime } from "../../../src/sys/index.ts";
import { Code, CryoError } from "../../../src/errors.ts";

let reaper: Reaper | undefined;
const started: number[] = [];
afterEach(() => {
  reaper?.[Symbol.dispose]();
  reaper = undefined;
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** Runs `sh -c script` where script backgrounds a grandchild and prints its pid; returns that pid once sh has exited. */
async function doubleFork(inner: string): Promise<number> {
  // The grandchild gets its own stdout so that reading sh's stdout ends when sh exits.
  const sh = Bun.spawn(["sh", "-c", `${inner} >/dev/null 2>&1 & echo $!`], { stdout: "pipe" });
  const pid = Number((await new Response(sh.stdout).text()).trim());
  expect(await sh.exited).toBe(0);
  started.push(pid);
  return pid;
}

test("decodes wait statuses like containerd reports them", () => {
  expect(decodeWaitStatus(7 << 8)).toEqual({ status: 7, exitCode: 7, coreDumped: false });
  expect(decodeWaitStatus(0)).toEqual({ status: 0, exitCode: 0, coreDumped: false });
  expect(decodeWaitStatus(9)).toEqual({ status: 137, signal: 9, coreDumped: false });
  expect(decodeWaitStatus(15)).toEqual({ status: 143, signal: 15, coreDumped: false });
  expect(decodeWaitStatus(6 | 0x80)).toEqual({ status: 134, signal: 6, coreDumped: true });
});

test("makes this process a child subreaper", () => {
  reaper = createReaper();
  expect(isChildSubreaper()).toBe(true);
});

test("only one reaper at a time", () => {
  reaper = createReaper();
  expect(() => createReaper()).toThrow(CryoError);
});

test("reaps a grandchild reparented to us, with its exit code", async () => {
  reaper = createReaper();
  const before = wallClock();
  const pid = await doubleFork("(sleep 0.2; exit 5)");
  const exit = await reaper.watch(pid);
  const after = wallClock();
  expect(exit.pid).toBe(pid);
  expect(exit.status).toBe(5);
  expect(exit.exitCode).toBe(5);
  // collected after the 0.2 s the child lived, and before the watch returned
  const ns = (t: WallTime) => t.seconds * 1_000_000_000n + BigInt(t.nanos);
  expect(ns(exit.exitedAt) - ns(before)).toBeGreaterThanOrEqual(200_000_000n);
  expect(ns(exit.exitedAt)).toBeLessThanOrEqual(ns(after));
});

test("a grandchild killed by SIGKILL reports 137", async () => {
  reaper = createReaper();
  const pid = await doubleFork("sleep 100");
  const exit = reaper.watch(pid);
  process.kill(pid, "SIGKILL");
  expect((await exit).status).toBe(137);
  expect((await exit).signal).toBe(9);
});

test("an exit collected before anyone watched is kept and delivered once", async () => {
  reaper = createReaper();
  const seen: Exit[] = [];
  reaper.onExit((e) => seen.push(e));
  // It outlives sh (so sh cannot reap it) and exits without anyone watching it.
  const pid = await doubleFork("sh -c 'sleep 0.05; exit 9'");
  const deadline = Date.now() + 10_000;
  while (!seen.some((e) => e.pid === pid)) {
    // No manual reap() and no pending watch (so no backstop timer): SIGCHLD alone must collect it.
    if (Date.now() > deadline) throw new Error(`no exit collected for ${pid}`);
    await Bun.sleep(5);
  }
  const exit = await reaper.watch(pid);
  expect(exit.status).toBe(9);
  // Delivered once: the pid is no longer ours, so a second watch is refused.
  const again = await reaper.watch(pid).catch((e: unknown) => e);
  expect(again).toBeInstanceOf(CryoError);
  expect((again as CryoError).code).toBe(Code.FAILED_PRECONDITION);
});

// A failed CRIU restore leaves exits of processes CRIU forked that nobody watches; the kernel then gives their pids
// to new processes. A shim daemon that kept such an exit ended a later container's init with it at once: its Start
// failed with "cannot start a stopped container" (a helper session, 3 of 600 `ctr run --rm` after 60 failed restores).
test.skipIf(process.getuid?.() !== 0)("a kept exit is not handed to a later process with the same pid", async () => {
  reaper = createReaper();
  const r = reaper;
  const seen: Exit[] = [];
  r.onExit((e) => seen.push(e));
  /** Ends a grandchild that has not been reaped yet (so its pid is still its own) and reaps it. */
  const end = async (pid: number) => {
    process.kill(pid, "SIGKILL");
    await r.watch(pid);
    started.splice(started.indexOf(pid), 1); // reaped: its pid may be another process's from now on
  };
  // The same pid for a new grandchild: ns_last_pid names the pid before the kernel's next one (sh takes pid - 1,
  // the grandchild pid). Other processes of the host (and this one's threads) may take them first: then that
  // grandchild is ended and it is tried again, with a new kept exit now and then.
  let pid = 0;
  let again = -1;
  for (let i = 0; i < 20 && again !== pid; i++) {
    pid = await doubleFork("sh -c 'sleep 0.05; exit 9'");
    const deadline = Date.now() + 10_000;
    while (!seen.some((e) => e.pid === pid)) {
      if (Date.now() > deadline) throw new Error(`no exit collected for ${pid}`);
      await Bun.sleep(5);
    }
    started.splice(started.indexOf(pid), 1);
    for (let j = 0; j < 10 && again !== pid; j++) {
      if (again > 0) await end(again);
      writeFileSync("/proc/sys/kernel/ns_last_pid", String(pid - 2));
      again = await doubleFork("sleep 100");
    }
  }
  expect(pid).toBeGreaterThan(0);
  expect(again).toBe(pid);
  const exit = r.watch(pid);
  process.kill(pid, "SIGKILL");
  expect((await exit).status).toBe(137);
  started.splice(started.indexOf(pid), 1);
});

test("Bun.spawn'd processes keep their exit codes while the reaper runs", async () => {
  reaper = createReaper();
  const grand = await doubleFork("(sleep 0.3; exit 3)");
  const grandExit = reaper.watch(grand);
  const codes = [0, 1, 2, 42, 99, 128, 255, 17];
  const procs = codes.map((c) => Bun.spawn(["sh", "-c", `sleep 0.0${c % 10}; exit ${c}`]));
  // Force scans while Bun's children are exiting: none of their statuses may be stolen.
  const scanning = setInterval(() => reaper?.reap(), 1);
  try {
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual(codes);
    const killed = Bun.spawn(["sleep", "100"]);
    killed.kill("SIGKILL");
    expect(await killed.exited).toBe(137);
    expect(killed.signalCode).toBe("SIGKILL");
  } finally {
    clearInterval(scanning);
  }
  expect((await grandExit).status).toBe(3);
});

test("watch refuses a pid spawned by Bun and a pid that is not our child", async () => {
  reaper = createReaper();
  const p = Bun.spawn(["sleep", "5"]);
  started.push(p.pid);
  const own = await reaper.watch(p.pid).catch((e: unknown) => e);
  expect((own as CryoError).code).toBe(Code.INVALID_ARGUMENT);
  const notChild = await reaper.watch(1).catch((e: unknown) => e);
  expect((notChild as CryoError).code).toBe(Code.FAILED_PRECONDITION);
  p.kill("SIGKILL");
  expect(await p.exited).toBe(137);
});

test("dispose rejects pending watches", async () => {
  reaper = createReaper();
  const pid = await doubleFork("sleep 100");
  const w = reaper.watch(pid);
  reaper[Symbol.dispose]();
  reaper = undefined;
  const err = await w.catch((e: unknown) => e);
  expect((err as CryoError).code).toBe(Code.FAILED_PRECONDITION);
  process.kill(pid, "SIGKILL");
  // Leave no zombie behind: reap it with a fresh reaper.
  reaper = createReaper();
  expect((await reaper.watch(pid)).status).toBe(137);
});

test("a burst of exits is one scan per turn of the event loop, not one per SIGCHLD", async () => {
  // Zombies the reaper leaves alone (skip) stand for Bun.spawn children Bun has not reaped yet: every scan reads each
  // of them again. Before, 1000 concurrent `runc ps` (Pids calls) made a scan per SIGCHLD, each over all of them and
  // every fd: the daemon answered none of the 1000 in 60 s, and grew to 1.6 GiB.
  let hold = true;
  let looked = 0;
  const N = 300;
  reaper = createReaper({
    skip: () => {
      looked++;
      return hold;
    },
  });
  // N orphans (each subshell exits once its sleep is started: the sleep is reparented to this subreaper), their pids
  // written down. They end only when killed below: however slowly a loaded machine starts them, they all die at once.
  const dir = mkdtempSync(join(tmpdir(), "cryo-reaper-burst-"));
  try {
    const pidsFile = join(dir, "pids");
    const sh = Bun.spawn(["sh", "-c", `for i in $(seq ${N}); do (sleep 600 >/dev/null 2>&1 & echo $! >> '${pidsFile}'); done`]);
    expect(await sh.exited).toBe(0);
    const pids = readFileSync(pidsFile, "utf8").trim().split("\n").map(Number);
    expect(pids.length).toBe(N);
    // The event loop busy while they die, as the daemon's is under such a burst: the signals queue up meanwhile.
    for (const pid of pids) process.kill(pid, "SIGKILL");
    Bun.sleepSync(1200);
    await Bun.sleep(300);
    // Each orphan was seen by a few scans at most (before: about N * N / 2 looks, one scan per signal).
    expect(looked).toBeGreaterThanOrEqual(N);
    expect(looked).toBeLessThan(20 * N);
  } finally {
    hold = false;
    reaper.reap();
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
