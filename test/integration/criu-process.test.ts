// Dump and restore of real process trees through libcriu, via cryo's CRIU helper process.
// Root only: uses criu 4.2.1 (swrk) and gcc to build a static counter.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, chownSync, closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { criuStopsDumpsOnSigterm } from "../../src/criu/binary.ts";
import { join } from "node:path";
import { Code, CryoError } from "../../src/errors.ts";
import { createCriu, inspectCheckpoint, renderInspect, type NotifyEvent } from "../../src/criu/index.ts";
import { CriuStoppedError } from "../../src/criu/client.ts";
import { childrenOf, readProcStat } from "../../src/sys/index.ts";
import { inspectCommand } from "../../src/checkpoint/index.ts";
import { CRYO_CRIU_PATH, criuBinary, KDAT_CACHE_DIR } from "../../src/criu/binary.ts";
import { compileStaticC, holdCriuAt, signalPending, waitFor } from "../harness/index.ts";
import { liveTaskPids, readThreadCores } from "../../src/checkpoint/creds-check.ts";

const criu = createCriu();
let dir: string;
let counterBin: string;
const started: number[] = [];

// A counter that rewrites its value into a file every 10 ms and holds a few files open. The value is
// written at a fixed width: CRIU restores an open file only at the size it had at the dump.
const COUNTER_C = `
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
int main(int argc, char **argv) {
  long n = 0; char buf[64];
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return 1;
  for (;;) {
    int len = snprintf(buf, sizeof buf, "%08ld\\n", n++);
    pwrite(fd, buf, len, 0); ftruncate(fd, len);
    usleep(10000);
  }
}
`;

beforeAll(async () => {
  dir = mkdtempSync("/tmp/cryo-criu-proc-");
  counterBin = compileStaticC(dir, "counter", COUNTER_C);
});

afterAll(async () => {
  for (const pid of started) killAndWait(pid);
  rmSync(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

function killAndWait(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function count(file: string): number | undefined {
  try {
    const text = readFileSync(file, "utf8").trim();
    return text === "" ? undefined : Number(text);
  } catch {
    return undefined;
  }
}

/**
 * Starts the counter and waits until it has counted to 5. By default it leads its own session (setsid).
 * With session=false it is the child of a shell that leads a new session, so it is a member, not the
 * leader, of a session whose leader is in our pid namespace. (Sharing the test runner's own session
 * is not the same on every machine: under CI the runner's session id can be 0, its leader outside the
 * pid namespace, and CRIU then reports that instead.)
 */
async function startCounter(name: string, session = true) {
  const out = join(dir, `${name}.count`);
  const pidFile = join(dir, `${name}.pid`);
  const cmd = session
    ? ["setsid", counterBin, out]
    : ["setsid", "sh", "-c", '"$0" "$1" & echo $! > "$2"; wait', counterBin, out, pidFile];
  const proc = Bun.spawn(cmd, { stdio: ["ignore", "ignore", "ignore"] });
  started.push(proc.pid);
  await waitFor(() => (count(out) ?? 0) >= 5, { what: "counter to start", timeoutMs: 10_000, intervalMs: 5 });
  // The shell writes the pid file after forking the counter, which can already be counting by then.
  const pid = session ? proc.pid : await waitFor(() => Number(readFileSync(pidFile, "utf8").trim()) || undefined, { what: "counter's pid file", timeoutMs: 10_000, intervalMs: 5 });
  if (!session) started.push(pid);
  return { proc, pid, out };
}

function imagesDir(name: string): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  return d;
}

setDefaultTimeout(60_000);

describe("criu helper on a plain process", () => {
  test("version, check and feature check go through libcriu", async () => {
    expect(await criu.version()).toBe(40201);
    await criu.check();
    const f = await criu.features();
    expect(f.lazyPages).toBe(true);
    // This kernel has no soft-dirty tracking (criu check --feature mem_dirty_track says OFF).
    expect(f.memTrack).toBe(false);
  });

  test("dump kills the counter, restore continues it from the dumped value, stats decode", async () => {
    const c = await startCounter("plain");
    const images = imagesDir("plain-img");
    const events: NotifyEvent[] = [];
    const dump = await criu.dump({ imagesDir: images, pid: c.pid }, { onNotify: (e) => void events.push(e) });
    await c.proc.exited; // CRIU killed it after the dump
    expect(alive(c.pid)).toBe(false);
    const atDump = count(c.out)!;
    expect(events.map((e) => e.action)).toEqual(expect.arrayContaining(["pre-dump", "post-dump"]));
    expect(dump.stats.dump!.pagesWritten).toBeGreaterThan(0);
    expect(dump.stats.dump!.pagesScanned).toBeGreaterThanOrEqual(dump.stats.dump!.pagesWritten);
    expect(dump.stats.dump!.freezingTimeUs).toBeGreaterThan(0);
    expect(dump.stats.dump!.frozenTimeUs).toBeGreaterThan(0);
    expect(dump.stats.dump!.memdumpTimeUs).toBeGreaterThan(0);

    const restored = await criu.restore({ imagesDir: images });
    started.push(restored.pid);
    expect(restored.pid).toBe(c.pid); // CRIU restores the same pid
    expect(restored.events.map((e) => e.action)).toEqual(expect.arrayContaining(["pre-restore", "post-restore", "post-resume"]));
    expect(restored.events.find((e) => e.action === "post-restore")?.pid).toBe(c.pid);
    expect(restored.stats.restore!.restoreTimeUs).toBeGreaterThan(0);
    expect(restored.stats.restore!.pagesRestored).toBe(dump.stats.dump!.pagesWritten);
    const after = await waitFor(() => {
      const n = count(c.out);
      return n !== undefined && n > atDump + 3 ? n : undefined;
    }, { what: "restored counter to advance", timeoutMs: 10_000, intervalMs: 5 });
    expect(after).toBeGreaterThan(atDump);

    const inspected = await inspectCheckpoint(images);
    expect(inspected.processes).toHaveLength(1);
    expect(inspected.processes[0]!.pid).toBe(c.pid);
    expect(inspected.processes[0]!.comm).toBe("counter");
    expect(inspected.memory.pages).toBe(dump.stats.dump!.pagesWritten);
    expect(inspected.files.some((f) => f.path?.endsWith("plain.count"))).toBe(true);
    // A process in the host's namespaces: the restore makes none.
    expect(inspected.namespaces).toEqual({ made: [] });
    // Its credentials as the image holds them: those the restored counter runs with (root's, here).
    const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${restored.pid}/status`, "utf8"))![1]}`);
    const effective = [...capEff.toString(2)].filter((b) => b === "1").length;
    expect(inspected.processes[0]!.creds).toMatchObject({ uid: 0, gid: 0, noNewPrivs: false, seccomp: "disabled" });
    expect(inspected.processes[0]!.creds!.effective).toHaveLength(effective);
    const text = renderInspect(inspected);
    expect(text).toContain(`${c.pid} uid 0 gid 0; effective CAP_CHOWN,CAP_DAC_OVERRIDE,`);
    expect(text).toContain("counter");
    expect(text).toContain("plain.count");
    expect(text).toContain("Namespaces the restore makes: none (the restoring CRIU's)");
    let printed = "";
    expect(await inspectCommand.run([images], { out: (t) => void (printed += t), err: () => {} })).toBe(0);
    expect(printed).toContain(`${c.pid} counter`);
    expect(printed).toContain(`written ${dump.stats.dump!.pagesWritten}`);
    expect(inspected.problems).toEqual([]);
    // A damaged copy (a process's core image gone, the page images cut short) is shown, with its problems and exit 1.
    const damaged = imagesDir("damaged-img");
    cpSync(images, damaged, { recursive: true });
    rmSync(join(damaged, `core-${c.pid}.img`));
    const pagesFile = readdirSync(damaged).find((n) => /^pages-\d+\.img$/.test(n))!;
    truncateSync(join(damaged, pagesFile), 4096);
    let errors = "";
    expect(await inspectCommand.run([damaged], { out: () => {}, err: (t) => void (errors += t) })).toBe(1);
    expect(errors).toContain(`core-${c.pid}.img is missing`);
    expect(errors).toContain(`pages-*.img hold 4096 bytes, the pagemaps ${inspected.memory.pages} pages`);
    killAndWait(restored.pid);
    await waitFor(() => !alive(restored.pid), { what: "restored counter to die", timeoutMs: 10_000, intervalMs: 5 });
  });

  test("leave-running keeps the counter going; a restore afterwards starts from the dumped value", async () => {
    const c = await startCounter("leave");
    await waitFor(() => (count(c.out) ?? 0) >= 10, { what: "counter to reach 10", timeoutMs: 10_000, intervalMs: 5 });
    const images = imagesDir("leave-img");
    let atDump = -1;
    // Read the value while CRIU holds the tree frozen (post-dump), i.e. the value in the images.
    await criu.dump(
      { imagesDir: images, pid: c.pid, leaveRunning: true },
      { waitFor: ["post-dump"], onNotify: (e) => void (e.action === "post-dump" && (atDump = count(c.out)!)) },
    );
    expect(atDump).toBeGreaterThanOrEqual(10);
    const later = await waitFor(() => (count(c.out)! > atDump + 200 ? count(c.out) : undefined), { what: "counter to go on after the dump", timeoutMs: 10_000, intervalMs: 5 });
    expect(alive(c.pid)).toBe(true);
    c.proc.kill("SIGKILL");
    await c.proc.exited;
    // The restored counter writes values counted on from the dump, below what the original reached: watched from
    // before the restore, since it passes `later` about 2 s after CRIU resumes it, which may be before restore() returns.
    const resumedSeen = waitFor(() => {
      const n = count(c.out);
      return n !== undefined && n < later ? n : undefined;
    }, { what: "restored counter to write", timeoutMs: 30_000, intervalMs: 5 });
    resumedSeen.catch(() => {}); // awaited below; a failed restore throws first
    const restored = await criu.restore({ imagesDir: images });
    started.push(restored.pid);
    const resumed = await resumedSeen;
    expect(resumed).toBeGreaterThanOrEqual(atDump);
    killAndWait(restored.pid);
    await waitFor(() => !alive(restored.pid), { what: "restored counter to die", timeoutMs: 10_000, intervalMs: 5 });
  });

  test("a separate work dir: stats come from it, and copyLogsTo brings the log and stats into the images dir", async () => {
    const c = await startCounter("workdir");
    const plain = imagesDir("workdir-plain-img");
    const first = await criu.dump({ imagesDir: plain, workDir: join(dir, "workdir-plain-work"), pid: c.pid, leaveRunning: true });
    expect(first.stats.dump?.pagesWritten ?? 0).toBeGreaterThan(0);
    expect(existsSync(join(plain, "stats-dump"))).toBe(false); // CRIU writes it into its work dir
    const images = imagesDir("workdir-img");
    const work = join(dir, "workdir-work");
    const dumped = await criu.dump({ imagesDir: images, workDir: work, pid: c.pid, leaveRunning: true }, { copyLogsTo: images });
    expect(dumped.stats.dump?.pagesWritten ?? 0).toBeGreaterThan(0);
    expect(dumped.logFile).toBe(join(work, "dump.log"));
    expect(existsSync(join(work, "stats-dump"))).toBe(true);
    expect(readFileSync(join(images, "dump.log"), "utf8")).toContain("Dumping finished successfully");
    expect(readFileSync(join(images, "stats-dump")).equals(readFileSync(join(work, "stats-dump")))).toBe(true);
    c.proc.kill("SIGKILL");
    await c.proc.exited;
  });

  test("cryo's criu keeps the kernel facts in its own cache directory, which it takes back from anyone else", async () => {
    // The setup installs cryo's criu build (RUNDIR=/dev/shm/cryo-criu); the client picks it for every call.
    expect(criuBinary()).toBe(CRYO_CRIU_PATH);
    // Someone else's directory with a forged cache: not trusted, replaced before CRIU runs.
    rmSync(KDAT_CACHE_DIR, { recursive: true, force: true });
    mkdirSync(KDAT_CACHE_DIR, { mode: 0o777 });
    chmodSync(KDAT_CACHE_DIR, 0o777);
    chownSync(KDAT_CACHE_DIR, 65534, 65534);
    writeFileSync(join(KDAT_CACHE_DIR, "criu.kdat"), "forged");
    const c = await startCounter("kdat");
    const first = await criu.dump({ imagesDir: imagesDir("kdat-1"), pid: c.pid, leaveRunning: true });
    const st = statSync(KDAT_CACHE_DIR);
    expect([st.uid, st.mode & 0o777]).toEqual([0, 0o700]);
    // The first call worked the facts out and saved them; the next one loads them.
    expect(readFileSync(first.logFile!, "utf8")).not.toContain("Loaded kdat cache");
    expect(statSync(join(KDAT_CACHE_DIR, "criu.kdat")).size).toBeGreaterThan(100);
    const second = await criu.dump({ imagesDir: imagesDir("kdat-2"), pid: c.pid, leaveRunning: true });
    expect(readFileSync(second.logFile!, "utf8")).toContain(`Loaded kdat cache from ${KDAT_CACHE_DIR}/criu.kdat`);
    c.proc.kill("SIGKILL");
    await c.proc.exited;
  });

  test("a process that is not its session's leader needs shell-job; the error carries CRIU's log line", async () => {
    const c = await startCounter("shell", false);
    const stat = readFileSync(`/proc/${c.pid}/stat`, "utf8");
    const sid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]); // field 6: session id
    expect(sid).toBe(c.proc.pid);
    const images = imagesDir("shell-img");
    const err = await criu.dump({ imagesDir: images, pid: c.pid, leaveRunning: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).message).toContain("is not a session leader");
    expect((err as CryoError).message).toContain("dump.log");
    await criu.dump({ imagesDir: images, pid: c.pid, leaveRunning: true, shellJob: true });
    expect(alive(c.pid)).toBe(true);
    expect(existsSync(join(images, "pstree.img"))).toBe(true);
    process.kill(c.pid, "SIGKILL");
    await c.proc.exited;
  });

  test("a task of the tree killed while CRIU waits for the tree to end a stage: the restore fails naming it, instead of waiting for ever, and leaves no task", async () => {
    const c = await startCounter("treekill", false); // a shell, its session's leader, and its child the counter
    const images = imagesDir("treekill-img");
    await criu.dump({ imagesDir: images, pid: c.proc.pid });
    await c.proc.exited;
    // The counter's pid must be free again for the restore (its zombie reaped by whoever inherited it).
    await waitFor(() => !existsSync(`/proc/${c.pid}`), { what: "the dumped counter to be reaped", timeoutMs: 10_000, intervalMs: 5 });
    // CRIU runs this script at post-restore, from itself: every task restored, its own SIGCHLD action back and every
    // signal blocked, none run again. The counter killed there is a zombie of the blocked shell, whose death CRIU
    // never learns of: it waits for the counter to end the next stage (seen: for ever, before the watchdog's tree look).
    const script = join(dir, "kill-child.sh");
    writeFileSync(script, '#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] || exit 0\nkill -9 $(cat /proc/$CRTOOLS_INIT_PID/task/*/children)\n');
    chmodSync(script, 0o755);
    const conf = join(dir, "kill-child.conf");
    writeFileSync(conf, `action-script ${script}\n`);
    const liveTasks = liveTaskPids(readThreadCores(images));
    expect(liveTasks.sort((a, b) => a - b)).toEqual([c.proc.pid, c.pid].sort((a, b) => a - b));
    // Without the tree look the call would never end: the signal then fails it CANCELLED, not UNAVAILABLE.
    const err = await criu.restore({ imagesDir: images, configFile: conf }, { liveTasks, notify: false, signal: AbortSignal.timeout(30_000) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.UNAVAILABLE);
    expect((err as CryoError).message).toContain(`task ${c.pid} (pid ${c.pid}) of the tree being restored killed by signal 9 before CRIU answered`);
    // The tree went with CRIU and the helper.
    await waitFor(() => !alive(c.proc.pid) && !alive(c.pid), { what: "the restored tree to be gone", timeoutMs: 10_000, intervalMs: 5 });
  });

  test("a missing pid is NOT_FOUND, a missing images dir is NOT_FOUND", async () => {
    const gone = Bun.spawn(["true"]);
    await gone.exited;
    const err = await criu.dump({ imagesDir: imagesDir("gone-img"), pid: gone.pid }).catch((e: unknown) => e);
    expect((err as CryoError).code).toBe(Code.NOT_FOUND);
    expect((err as CryoError).message).toContain("Dumping FAILED");
    const err2 = await criu.dump({ imagesDir: join(dir, "no-such-dir"), pid: process.pid }).catch((e: unknown) => e);
    expect((err2 as CryoError).code).toBe(Code.NOT_FOUND);
  });

  test("a caller refusing a waited-for notify aborts the dump and the process keeps running", async () => {
    const c = await startCounter("refuse");
    const images = imagesDir("refuse-img");
    const err = await criu
      .dump(
        { imagesDir: images, pid: c.pid },
        {
          waitFor: ["pre-dump"],
          onNotify: (e) => {
            if (e.action === "pre-dump") throw new CryoError(Code.FAILED_PRECONDITION, "hook: failed precondition");
          },
        },
      )
      .catch((e: unknown) => e);
    expect((err as CryoError).code).toBe(Code.FAILED_PRECONDITION);
    expect((err as CryoError).message).toContain("refused at pre-dump");
    const n = count(c.out)!;
    await waitFor(() => count(c.out)! > n + 3, { what: "counter to go on", timeoutMs: 10_000, intervalMs: 5 });
    expect(alive(c.pid)).toBe(true);
    c.proc.kill("SIGKILL");
    await c.proc.exited;
  });

  test("a waited-for notify holds CRIU until the caller answers (post-dump with leave-running)", async () => {
    const c = await startCounter("hold");
    const images = imagesDir("hold-img");
    let frozenSeen = false;
    await criu.dump(
      { imagesDir: images, pid: c.pid, leaveRunning: true },
      {
        waitFor: ["post-dump"],
        onNotify: async (e) => {
          if (e.action !== "post-dump") return;
          // While CRIU waits for us the tree is still frozen: the counter does not move.
          const a = count(c.out);
          await Bun.sleep(100);
          frozenSeen = count(c.out) === a;
        },
      },
    );
    expect(frozenSeen).toBe(true);
    const n = count(c.out)!;
    await waitFor(() => count(c.out)! > n + 3, { what: "counter to go on after the dump", timeoutMs: 10_000, intervalMs: 5 });
    c.proc.kill("SIGKILL");
    await c.proc.exited;
  });

  test("an abort while CRIU waits on a notify kills the helper and criu; the process keeps running", async () => {
    const c = await startCounter("abort");
    const ac = new AbortController();
    let helperPid = 0;
    const err = await criu
      .dump(
        { imagesDir: imagesDir("abort-img"), pid: c.pid, leaveRunning: true },
        {
          signal: ac.signal,
          waitFor: ["pre-dump"],
          onNotify: (e) => {
            helperPid = e.helperPid;
            ac.abort(); // the caller gives up while CRIU is blocked in the callback
            return new Promise(() => {}); // never answers
          },
        },
      )
      .catch((e: unknown) => e);
    expect((err as CryoError).code).toBe(Code.CANCELLED);
    await waitFor(() => !alive(helperPid), { what: "helper to be gone", timeoutMs: 10_000, intervalMs: 5 });
    const n = count(c.out)!;
    await waitFor(() => count(c.out)! > n + 3, { what: "counter to go on", timeoutMs: 10_000, intervalMs: 5 });
    c.proc.kill("SIGKILL");
    await c.proc.exited;
  });

  test("lazy pages: restore returns with pages served by the lazy-pages daemon, then the counter goes on", async () => {
    const c = await startCounter("lazy");
    const images = imagesDir("lazy-img");
    await criu.dump({ imagesDir: images, pid: c.pid });
    await c.proc.exited;
    const atDump = count(c.out)!;
    await using daemon = await criu.lazyPages({ imagesDir: images });
    const restored = await criu.restore({ imagesDir: images, lazyPages: true });
    started.push(restored.pid);
    expect(readFileSync(join(images, "cryo-restore.conf"), "utf8")).toContain("lazy-pages");
    expect(readFileSync(join(images, "restore.log"), "utf8")).toContain("lazy");
    await waitFor(() => (count(c.out) ?? 0) > atDump + 3, { what: "restored counter to advance", timeoutMs: 10_000, intervalMs: 5 });
    expect(await daemon.exited).toBe(0); // the daemon exits once every page is back
    expect(readFileSync(daemon.logFile, "utf8")).toMatch(/UFFD|uffd/);
    killAndWait(restored.pid);
    await waitFor(() => !alive(restored.pid), { what: "restored counter to die", timeoutMs: 10_000, intervalMs: 5 });
  });

  /**
   * CRIU's service runs a pre-dump in a child of its own (cr-service.c's pre_dump_using_req) and waits for it: only that
   * child takes SIGTERM as a request to stop (patch 0007), the service dies of it. gdb holds the pre-dump's CRIU inside
   * compel's infection of the counter (parasite_trap: the task stopped after a syscall CRIU injected, CRIU's registers
   * in it) while the call is aborted. The abort asked the service to stop before: the service died, and its child, the
   * pre-dump, was killed by the client's watchdog where it stood; the counter died of SIGTRAP once let go.
   */
  test("an aborted pre-dump asks the CRIU doing the pre-dump to stop, not CRIU's service: the task held in compel's infection runs on", async () => {
    // cryo's CRIU (scripts/setup.sh builds it with patch 0007) is the one the client asks to stop.
    expect(criuStopsDumpsOnSigterm(criuBinary())).toBe(true);
    const c = await startCounter("pre-abort");
    const images = imagesDir("pre-abort-img");
    // CRIU's log is a FIFO: the pre-dump's CRIU waits in its open, before it touches the counter, for gdb to attach.
    const logPath = join(images, "pre-dump.log");
    expect(Bun.spawnSync(["mkfifo", logPath]).exitCode).toBe(0);
    const ac = new AbortController();
    const call = criu.preDump({ imagesDir: images, pid: c.pid }, { signal: ac.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const procs: Bun.Subprocess[] = [];
    try {
      const isCriu = (pid: number) => readProcStat(pid)?.comm === "criu";
      const worker = await waitFor(
        () =>
          readdirSync("/proc")
            .filter((d) => /^\d+$/.test(d))
            .map(Number)
            .find((pid) => {
              try {
                // In this pre-dump's images directory, its work directory (CRIU moves there before it opens its log): a
                // neighbour's CRIU hung in the open of its own log (checkpoint-cancel's, in a run beside this one) is not it.
                return (
                  isCriu(pid) &&
                  readFileSync(`/proc/${pid}/wchan`, "utf8") === "wait_for_partner" &&
                  readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("swrk") &&
                  readlinkSync(`/proc/${pid}/cwd`) === images
                );
              } catch {
                return false;
              }
            }),
        { what: "the pre-dump's CRIU in the open of its log", timeoutMs: 10_000 },
      );
      const service = readProcStat(worker)?.ppid;
      expect(service !== undefined && isCriu(service) && childrenOf(service).includes(worker)).toBe(true);
      const held = await holdCriuAt(worker, logPath, join(dir, "pre-abort.log.txt"), "parasite_trap", procs);
      ac.abort(new Error("test abort"));
      // The pre-dump's CRIU has the stop request pending (gdb holds it); the service lives on, waiting for it.
      await waitFor(() => signalPending(worker, 15) || !alive(worker), { what: "SIGTERM to the pre-dump's CRIU", timeoutMs: 5000 });
      expect(signalPending(worker, 15)).toBe(true);
      expect(alive(service!)).toBe(true);
      held.release();
      const err = await call;
      expect(err).toBeInstanceOf(CriuStoppedError);
      // The counter runs on: CRIU finished the syscall it had injected before it went.
      const now = count(c.out) ?? 0;
      await waitFor(() => (count(c.out) ?? 0) > now + 5, { what: "the counter to count on", timeoutMs: 10_000 });
      expect(alive(c.pid)).toBe(true);
    } finally {
      for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
      ac.abort();
      await call;
      c.proc.kill("SIGKILL");
      await c.proc.exited;
    }
  });

  test("an abort that comes after CRIU has ended but before its helper answered: the answer is waited for, not lost with a killed helper", async () => {
    // A counter that does not lead its session, dumped without shell-job: CRIU fails after it has seized it.
    const c = await startCounter("late-abort", false);
    const images = imagesDir("late-abort-img");
    // CRIU's log is a FIFO, drained while CRIU writes it. Once CRIU has ended, the helper reads the log for the errors of
    // its answer and waits in the open of the FIFO: it is held between CRIU's end and its answer, the window of a few
    // milliseconds where an abort found no CRIU, killed the helper and lost the answer.
    const logPath = join(images, "dump.log");
    expect(Bun.spawnSync(["mkfifo", logPath]).exitCode).toBe(0);
    const drain = Bun.spawn(["sh", "-c", `exec cat ${logPath} > ${join(dir, "late-abort.txt")}`]);
    const ac = new AbortController();
    const call = criu.dump({ imagesDir: images, pid: c.pid, leaveRunning: true }, { signal: ac.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    try {
      await drain.exited; // CRIU has closed its log: it has ended
      expect(readFileSync(join(dir, "late-abort.txt"), "utf8")).toContain("Dumping FAILED");
      const helper = await waitFor(
        () =>
          childrenOf(process.pid).find((pid) => {
            try {
              return readFileSync(`/proc/${pid}/wchan`, "utf8") === "wait_for_partner";
            } catch {
              return false;
            }
          }),
        { what: "the helper in the open of CRIU's log", timeoutMs: 10_000 },
      );
      ac.abort(new Error("test abort"));
      await Bun.sleep(50);
      expect(alive(helper)).toBe(true); // not killed: its answer is waited for
      // The helper's read goes on: a writer opens the FIFO and closes it.
      closeSync(openSync(logPath, "w"));
      // CRIU's own end of the call (the answer), not a helper killed mid-way (a plain CANCELLED).
      expect(await call).toBeInstanceOf(CriuStoppedError);
      expect(alive(c.pid)).toBe(true);
    } finally {
      if (drain.exitCode === null) drain.kill("SIGKILL");
      ac.abort();
      await call;
      killAndWait(c.pid);
      c.proc.kill("SIGKILL");
      await c.proc.exited;
    }
  });

  test("pre-dump reaches CRIU, which refuses it without soft-dirty tracking on this kernel", async () => {
    const c = await startCounter("pre");
    const err = await criu.preDump({ imagesDir: imagesDir("pre-img"), pid: c.pid }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CryoError);
    expect(readFileSync(join(dir, "pre-img", "pre-dump.log"), "utf8")).toContain("pre-dump");
    const err2 = await criu
      .dump({ imagesDir: imagesDir("incr-img"), pid: c.pid, parentImages: "../pre-img", trackMem: true, leaveRunning: true })
      .catch((e: unknown) => e);
    expect((err2 as CryoError).message).toContain("Tracking memory is not available");
    expect(alive(c.pid)).toBe(true);
    c.proc.kill("SIGKILL");
    await c.proc.exited;
  });
});

