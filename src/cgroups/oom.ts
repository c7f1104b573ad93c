/**
 * OOM watching without blocking the event loop.
 *
 * v1: an eventfd (EFD_NONBLOCK) is registered for memory.oom_control through cgroup.event_control;
 * Bun reads the nonblocking eventfd through `Bun.file(fd).stream()`, which waits in Bun's epoll loop
 * (no thread parked in read(), no timer). Each wake-up drains the counter; the kernel also signals the
 * eventfd when the cgroup is removed, which is told apart by memory.oom_control having disappeared.
 *
 * v2: memory.events is watched with inotify (fs.watch: the kernel signals a modification whenever a
 * counter changes), plus a slow poll as a safety net; a rise of `oom_kill` is an OOM.
 */
import { closeSync, existsSync, openSync, readFileSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { CryoError, failedPrecondition } from "../errors.ts";
import { readOptional } from "./cgroupfs.ts";
import { close as closeFd, createEventFd, drainEventFd } from "../sys/index.ts";
import type { OomWatchOptions } from "./manager.ts";
import { parseFlatKeyed } from "./parse.ts";

/** Reads oom_kill from memory.oom_control (v1) or memory.events (v2) text; undefined if absent. */
export function oomKillCount(text: string): bigint | undefined {
  return parseFlatKeyed(text).get("oom_kill");
}

/**
 * Watches a v1 memory cgroup directory for OOM events. Setup is a few synchronous syscalls on
 * cgroupfs (microseconds); waiting is asynchronous. FAILED_PRECONDITION when the cgroup has no
 * memory.oom_control.
 */
export function watchOomV1(memoryDir: string, onOom: (count?: bigint) => void, opts: OomWatchOptions = {}): Disposable {
  const control = join(memoryDir, "memory.oom_control");
  if (!existsSync(control)) throw failedPrecondition(`cgroup ${memoryDir}`, { detail: "no memory.oom_control to watch" });
  const efd = createEventFd();
  let ofd: number;
  try {
    ofd = openSync(control, "r");
    writeFileSync(join(memoryDir, "cgroup.event_control"), `${efd} ${ofd}`);
  } catch (err) {
    closeFd(efd);
    throw failedPrecondition(`cgroup ${memoryDir}`, { cause: err, detail: `registering OOM eventfd: ${(err as Error).message}` });
  }
  let last = 0n;
  try {
    last = oomKillCount(readFileSync(control, "utf8")) ?? 0n;
  } catch {
    /* counted from 0 */
  }
  // The kills (counted since the watch began) its reports stand for. Every wake-up is an OOM of its own, one more than
  // the reports before it stood for, and a counted one stands for all up to its count: the kernel notifies before it
  // kills, so a wake-up whose count is that of kills reported already is the next kill, not yet counted (taking it for
  // one reported made the watch's end report a kill again: three /tasks/oom for two kills, two runs of five).
  const base = last;
  let reported = 0n;
  const report = (n?: bigint) => {
    reported = n !== undefined && n - base > reported + 1n ? n - base : reported + 1n;
    onOom(n);
  };
  let stopped = false;
  const reader = Bun.file(efd).stream().getReader();
  const stop = () => {
    if (stopped) return;
    stopped = true;
    reader.cancel().catch(() => {});
    closeFd(efd);
    try {
      closeSync(ofd);
    } catch {
      /* already closed */
    }
  };
  const fail = (err: unknown) => {
    if (stopped) return;
    stop();
    opts.onError?.(CryoError.from(err).wrap(`oom watch ${memoryDir}`));
  };
  const loop = async () => {
    for (;;) {
      const { done } = await reader.read();
      if (stopped) return;
      if (done) return fail(new Error("eventfd stream ended"));
      // The stream has consumed the counter; drain anything that arrived since (never blocks).
      drainEventFd(efd);
      const text = await readOptional(control);
      if (stopped) return;
      if (text === undefined) {
        // The cgroup was removed: the kernel signals registered eventfds on removal.
        stop();
        return;
      }
      // The notification can arrive before the kill is counted: pass the counter only when it rose.
      const n = oomKillCount(text);
      if (n !== undefined && n > last) {
        last = n;
        report(n);
      } else {
        report(undefined);
      }
    }
  };
  loop().catch(fail);
  // The watch's end (the init exited): an OOM kill counted before it whose wake-up the loop has not handled yet (the
  // exit can reach the daemon first, under load) is reported now, not dropped (a helper session: 3 of 12 lost).
  const dispose = () => {
    if (!stopped) finalCheck(control, base, reported, onOom);
    stop();
  };
  return { [Symbol.dispose]: dispose };
}

/**
 * Reports, once, kills counted in file's oom_kill since base beyond the OOMs reported already (read synchronously:
 * a cgroupfs read takes microseconds). A wake-up reported before its kill was counted is not reported again.
 */
function finalCheck(file: string, base: bigint, reported: bigint, onOom: (count?: bigint) => void): void {
  let n: bigint | undefined;
  try {
    n = oomKillCount(readFileSync(file, "utf8"));
  } catch {
    return; // the cgroup is gone
  }
  if (n !== undefined && n - base > reported) onOom(n);
}

/** Watches a v2 cgroup's memory.events for a rising oom_kill counter (inotify, plus a poll every pollMs). */
export function watchOomV2(dir: string, onOom: (count?: bigint) => void, opts: OomWatchOptions = {}): Disposable {
  const events = join(dir, "memory.events");
  let last: bigint;
  try {
    last = oomKillCount(readFileSync(events, "utf8")) ?? 0n;
  } catch (err) {
    throw failedPrecondition(`cgroup ${dir}`, { cause: err, detail: "no memory.events to watch (memory controller not enabled?)" });
  }
  const base = last;
  let reported = 0n;
  let stopped = false;
  let checking = false;
  let again = false;
  let watcher: FSWatcher | undefined;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    watcher?.close();
    clearInterval(timer);
  };
  const check = async (): Promise<void> => {
    if (stopped) return;
    if (checking) {
      again = true;
      return;
    }
    checking = true;
    try {
      do {
        again = false;
        const text = await readOptional(events);
        if (stopped) return;
        if (text === undefined) return stop();
        const n = oomKillCount(text) ?? 0n;
        if (n > last) {
          last = n;
          reported = n - base;
          onOom(n);
        }
      } while (again && !stopped);
    } catch (err) {
      stop();
      opts.onError?.(CryoError.from(err).wrap(`oom watch ${dir}`));
    } finally {
      checking = false;
    }
  };
  try {
    watcher = watch(events, () => void check());
    watcher.on("error", () => {
      /* the poll below still runs */
    });
  } catch {
    watcher = undefined;
  }
  const timer = setInterval(() => void check(), opts.pollMs ?? 1000);
  timer.unref();
  const dispose = () => {
    if (!stopped) finalCheck(events, base, reported, onOom);
    stop();
  };
  return { [Symbol.dispose]: dispose };
}
