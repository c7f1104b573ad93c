/**
 * Per-thread kernel state that CRIU neither dumps nor restores, carried by cryo: CPU affinity (sched_setaffinity),
 * timer slack (PR_SET_TIMERSLACK) and I/O priority (ioprio_set). Measured on CRIU 4.2 (docs/checkpoint-restore.md,
 * "Thread state CRIU does not restore"): a restored thread has the affinity, timer slack and I/O priority of the CRIU
 * process that forked it, whatever it had at the dump; its nice and scheduler policy come back (CRIU's thread core).
 *
 * Who calls what, in which order:
 * - the dump (src/shim/checkpoint-dump.ts), with the tree frozen before CRIU runs, reads each thread of the tree
 *   (readThreadStates) and records in the metadata's `threads` only what differs from what a thread has by default
 *   (dumpBaseline: the container's cpuset, this shim's timer slack, no I/O priority), keyed by the thread's id in the
 *   container's PID namespace: CRIU restores every thread with that id there;
 * - the restore (src/shim/restore-container.ts), when the metadata lists any, waits for CRIU's post-restore
 *   notification (every task restored, none run again), finds the restored threads by that id (restoredThreads),
 *   works out what to set (planThreadStates) and sets it from outside (applyThreadStates), before CRIU resumes the tree.
 * CPUs the recorded affinity names that the container may not use here (another host, a narrower cpuset, CPUs
 * offline) are left out by the kernel, and said in the log; an affinity left with none keeps the thread where it is,
 * said too. The restore does not fail for either: a thread bound elsewhere still runs correctly. A real-time I/O class is set only where the spec
 * grants CAP_SYS_NICE or CAP_SYS_ADMIN, which the thread would need to set it itself (a crafted checkpoint cannot give
 * one through the restore, which sets it as root).
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { z } from "zod";
import { invalidArgument } from "../errors.ts";
import { setThreadAffinity, setThreadIoprio, threadIoprio } from "../sys/index.ts";

/** The most CPUs a recorded affinity may name (CPU numbers below it). */
export const CPU_MAX = 8192;
/** The most threads the metadata may list. */
export const THREAD_STATES_MAX = 65536;
/** The kernel's highest pid (PID_MAX_LIMIT on 64-bit). */
const PID_MAX = 4_194_304;
/** The I/O priority classes (ioprio >> 13). */
const IOPRIO_CLASS_RT = 1;
const IOPRIO_CLASS_IDLE = 3;
const EINVAL = 22;

/** "0-3,8,10-11" (the kernel's cpu list, as /proc's Cpus_allowed_list) -> [0,1,2,3,8,10,11]; INVALID_ARGUMENT when malformed. */
export function parseCpuList(text: string): number[] {
  const out = new Set<number>();
  const s = text.trim();
  if (s === "") return [];
  for (const part of s.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw invalidArgument("cpu list", { detail: `${JSON.stringify(text)}: ${JSON.stringify(part)} is no CPU or range` });
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi >= CPU_MAX) throw invalidArgument("cpu list", { detail: `${JSON.stringify(text)}: ${part} is no range of CPUs below ${CPU_MAX}` });
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

/** [0,1,2,3,8,10,11] -> "0-3,8,10-11". */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

const cpuListSchema = z
  .string()
  .max(65536)
  .refine((s) => {
    try {
      return parseCpuList(s).length > 0;
    } catch {
      return false;
    }
  }, `a cpu list ("0-3,8") of CPUs below ${CPU_MAX}, not empty`);

/** One thread's state that differs from a thread's default at the dump; a field is absent where it did not differ. */
export const threadStateSchema = z.object({
  /** The thread's id in the container's PID namespace (the innermost of /proc's NSpid), which CRIU restores it with. */
  tid: z.number().int().positive().max(PID_MAX),
  /** Its CPU affinity, as a cpu list. */
  cpus: cpuListSchema.optional(),
  /** Its timer slack in nanoseconds (/proc/TID/timerslack_ns). */
  timerSlackNs: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  /** Its I/O priority: class << 13 | level, class 1 (real time) to 3 (idle), level 0-7. */
  ioprio: z
    .number()
    .int()
    .refine((v) => v >> 13 >= IOPRIO_CLASS_RT && v >> 13 <= IOPRIO_CLASS_IDLE && (v & 0x1fff) <= 7, "class 1-3 << 13 | level 0-7")
    .optional(),
});

/** The metadata's `threads`: at most one entry per thread id. */
export const threadStatesSchema = z
  .array(threadStateSchema)
  .max(THREAD_STATES_MAX)
  .refine((list) => new Set(list.map((t) => t.tid)).size === list.length, "each thread id once");

/** One thread's recorded state (threadStateSchema). */
export type ThreadState = z.infer<typeof threadStateSchema>;

/** What a thread has when nothing changed it: a dump records only what differs. */
export interface ThreadBaseline {
  /** The CPUs the container's tasks may use (its cpuset). */
  cpus: string;
  /** The timer slack a container's thread inherits (this shim's: runc's init inherits it, and so do CRIU's tasks). */
  timerSlackNs: number;
}

/** How this module reads and changes threads (/proc and src/sys by default; tests pass their own). */
export interface ThreadAccess {
  /** The thread ids of process pid (/proc/PID/task). */
  tids(pid: number): number[];
  /** /proc/TID/status of a thread. */
  status(tid: number): string;
  timerSlackNs(tid: number): number;
  ioprio(tid: number): number;
  setCpus(tid: number, cpus: readonly number[]): void;
  setTimerSlackNs(tid: number, ns: number): void;
  setIoprio(tid: number, ioprio: number): void;
}

/** /proc and src/sys. */
export const procThreadAccess: ThreadAccess = {
  tids: (pid) => readdirSync(`/proc/${pid}/task`).map(Number),
  status: (tid) => readFileSync(`/proc/${tid}/status`, "latin1"),
  timerSlackNs: (tid) => Number(readFileSync(`/proc/${tid}/timerslack_ns`, "latin1").trim()),
  ioprio: threadIoprio,
  setCpus: setThreadAffinity,
  // Writing another thread's timer slack takes CAP_SYS_NICE (root has it).
  setTimerSlackNs: (tid, ns) => writeFileSync(`/proc/${tid}/timerslack_ns`, String(ns)),
  setIoprio: setThreadIoprio,
};

/** A field of /proc/TID/status ("Cpus_allowed_list", "NSpid"), or undefined. */
export function statusField(status: string, name: string): string | undefined {
  const line = status.split("\n").find((l) => l.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

/** The thread's id in the innermost PID namespace it is in (the last of NSpid). */
export function innermostTid(status: string): number | undefined {
  const last = statusField(status, "NSpid")?.split(/\s+/).at(-1);
  const n = Number(last);
  return last === undefined || last === "" || !Number.isInteger(n) || n <= 0 ? undefined : n;
}

/** A thread gone meanwhile (its /proc entry, or the syscall's target, no longer there). */
function gone(err: unknown): boolean {
  const e = err as { code?: string; errno?: number };
  return e?.code === "ENOENT" || e?.code === "ESRCH" || e?.errno === 3;
}

/** The baseline of a dump (ThreadBaseline): the cpuset's CPUs (cpusetCpus, else the host's online ones) and this process's timer slack. */
export function dumpBaseline(cpusetCpus: string | undefined): ThreadBaseline {
  const cpus = cpusetCpus !== undefined && cpusetCpus.trim() !== "" ? cpusetCpus : readFileSync("/sys/devices/system/cpu/online", "latin1");
  return { cpus: formatCpuList(parseCpuList(cpus)), timerSlackNs: Number(readFileSync("/proc/self/timerslack_ns", "latin1").trim()) };
}

/**
 * Every thread of the processes pids whose affinity, timer slack or I/O priority differs from the baseline, with what
 * differs. Threads and processes gone meanwhile are skipped; a thread whose timer slack does not fit a JS number (set
 * near 2^64) keeps it out.
 */
export function readThreadStates(pids: readonly number[], baseline: ThreadBaseline, access: ThreadAccess = procThreadAccess): ThreadState[] {
  const out: ThreadState[] = [];
  eachThread(pids, access, (hostTid, status, nsTid) => {
    const state: ThreadState = { tid: nsTid };
    const allowed = statusField(status, "Cpus_allowed_list");
    if (allowed !== undefined) {
      const cpus = formatCpuList(parseCpuList(allowed));
      if (cpus !== baseline.cpus) state.cpus = cpus;
    }
    const slack = access.timerSlackNs(hostTid);
    if (Number.isSafeInteger(slack) && slack > 0 && slack !== baseline.timerSlackNs) state.timerSlackNs = slack;
    const ioprio = access.ioprio(hostTid);
    if (ioprio >> 13 !== 0) state.ioprio = ioprio;
    if (Object.keys(state).length > 1) out.push(state);
  });
  return out;
}

/**
 * Calls fn for every thread of the processes pids with its host id, its /proc status and its id in the innermost PID
 * namespace (threads without one are skipped); a process or thread gone meanwhile is skipped, any other error thrown.
 */
function eachThread(pids: readonly number[], access: ThreadAccess, fn: (hostTid: number, status: string, nsTid: number) => void): void {
  for (const pid of pids) {
    let tids: number[];
    try {
      tids = access.tids(pid);
    } catch (err) {
      if (gone(err)) continue;
      throw err;
    }
    for (const hostTid of tids) {
      try {
        const status = access.status(hostTid);
        const nsTid = innermostTid(status);
        if (nsTid !== undefined) fn(hostTid, status, nsTid);
      } catch (err) {
        if (gone(err)) continue;
        throw err;
      }
    }
  }
}

/** A restored thread as found after CRIU's restore, before it runs. */
export interface RestoredThread {
  /** Its id on this host (this process's PID namespace). */
  hostTid: number;
  /** Its id in the container's PID namespace: the recorded one. */
  tid: number;
  /** Its CPU affinity now (cpu list). */
  cpus: string;
  timerSlackNs: number;
  ioprio: number;
}

/** The threads of the processes pids (a restored tree's host pids), each read once. Threads gone meanwhile are skipped. */
export function restoredThreads(pids: readonly number[], access: ThreadAccess = procThreadAccess): RestoredThread[] {
  const out: RestoredThread[] = [];
  eachThread(pids, access, (hostTid, status, tid) => {
    out.push({ hostTid, tid, cpus: statusField(status, "Cpus_allowed_list") ?? "", timerSlackNs: access.timerSlackNs(hostTid), ioprio: access.ioprio(hostTid) });
  });
  return out;
}

/** What to set on one restored thread (a field absent: left as it is). */
export interface ThreadStateChange {
  hostTid: number;
  tid: number;
  cpus?: number[];
  /** The thread's affinity before (a cpu list), with cpus: what it keeps when none of them may be used here. */
  cpusBefore?: string;
  timerSlackNs?: number;
  ioprio?: number;
}

/** Options of planThreadStates. */
export interface ThreadPlanOptions {
  /** The spec grants CAP_SYS_NICE or CAP_SYS_ADMIN: a real-time I/O class may be set. */
  realtimeIo: boolean;
}

/**
 * What to set on the restored threads for the recorded states, matched by the thread id in the container's PID
 * namespace, and notes for the log on what will not be set: a real-time I/O class without the capability for it, a
 * recorded thread the restored tree does not have. Only what differs from the thread's state now is set. An affinity
 * is set as recorded: the kernel keeps only the CPUs the container's cpuset has online (applyThreadStates says which).
 */
export function planThreadStates(recorded: readonly ThreadState[], restored: readonly RestoredThread[], options: ThreadPlanOptions): { changes: ThreadStateChange[]; notes: string[] } {
  const byTid = new Map(restored.map((t) => [t.tid, t]));
  const changes: ThreadStateChange[] = [];
  const notes: string[] = [];
  for (const r of recorded) {
    const now = byTid.get(r.tid);
    if (!now) {
      notes.push(`thread ${r.tid}: recorded at the dump, not in the restored tree`);
      continue;
    }
    const change: ThreadStateChange = { hostTid: now.hostTid, tid: r.tid };
    if (r.cpus !== undefined) {
      const want = parseCpuList(r.cpus);
      if (formatCpuList(want) !== formatCpuList(parseCpuList(now.cpus))) {
        change.cpus = want;
        change.cpusBefore = now.cpus;
      }
    }
    if (r.timerSlackNs !== undefined && r.timerSlackNs !== now.timerSlackNs) change.timerSlackNs = r.timerSlackNs;
    if (r.ioprio !== undefined && r.ioprio !== now.ioprio) {
      if (r.ioprio >> 13 === IOPRIO_CLASS_RT && !options.realtimeIo) notes.push(`thread ${r.tid}: its real-time I/O priority (level ${r.ioprio & 7}) needs CAP_SYS_NICE or CAP_SYS_ADMIN, which the spec does not grant: left at ${now.ioprio}`);
      else change.ioprio = r.ioprio;
    }
    if (change.cpus !== undefined || change.timerSlackNs !== undefined || change.ioprio !== undefined) changes.push(change);
  }
  return { changes, notes };
}

/**
 * Sets each change on its thread (affinity, timer slack, I/O priority). The kernel binds a thread to the CPUs of its
 * affinity that its cpuset has online, and refuses one with none (EINVAL): the first is read back and noted where it
 * is narrower than recorded, the second leaves the thread where it was, noted too. Returns what was set, one line
 * per thread, those notes, and what failed otherwise (a thread gone meanwhile is skipped). Nothing throws: a thread
 * left with its restored state still runs correctly, and the caller logs the notes and failures.
 */
export function applyThreadStates(changes: readonly ThreadStateChange[], access: ThreadAccess = procThreadAccess): { changed: string[]; notes: string[]; failed: string[] } {
  const changed: string[] = [];
  const notes: string[] = [];
  const failed: string[] = [];
  for (const c of changes) {
    const done: string[] = [];
    const attempt = (what: string, set: () => void) => {
      try {
        set();
        done.push(what);
      } catch (err) {
        if (gone(err)) return;
        if (what.startsWith("cpus ") && (err as { errno?: number }).errno === EINVAL) {
          notes.push(`thread ${c.tid}: none of its CPUs ${what.slice(5)} may be used here (the container's cpuset, online): left on ${c.cpusBefore ?? "its CPUs"}`);
          return;
        }
        failed.push(`thread ${c.tid} (host ${c.hostTid}): ${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    if (c.cpus !== undefined) {
      const want = formatCpuList(c.cpus);
      attempt(`cpus ${want}`, () => {
        access.setCpus(c.hostTid, c.cpus!);
        const got = statusField(access.status(c.hostTid), "Cpus_allowed_list");
        if (got !== undefined && formatCpuList(parseCpuList(got)) !== want) {
          const kept = new Set(parseCpuList(got));
          notes.push(`thread ${c.tid}: CPUs ${formatCpuList(c.cpus!.filter((n) => !kept.has(n)))} of its affinity ${want} may not be used here (the container's cpuset, online): bound to ${formatCpuList([...kept])}`);
        }
      });
    }
    if (c.timerSlackNs !== undefined) attempt(`timer slack ${c.timerSlackNs} ns`, () => access.setTimerSlackNs(c.hostTid, c.timerSlackNs!));
    if (c.ioprio !== undefined) attempt(`ioprio class ${c.ioprio >> 13} level ${c.ioprio & 7}`, () => access.setIoprio(c.hostTid, c.ioprio!));
    if (done.length > 0) changed.push(`thread ${c.tid} (host ${c.hostTid}): ${done.join(", ")}`);
  }
  return { changed, notes, failed };
}
