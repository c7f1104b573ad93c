/** Facts about processes read from /proc. */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** The fields of /proc/<pid>/stat that cryo uses. */
export interface ProcStat {
  pid: number;
  /** The command name (comm), without parentheses. */
  comm: string;
  /** One-letter state: R, S, D, Z (zombie), T, t, X (dead), I, ... */
  state: string;
  ppid: number;
  /** Start time in clock ticks since boot (field 22), as runc records in init_process_start. */
  startTime: bigint;
}

/** /proc/<pid>/stat split: comm, and the fields after it (rest[0] is field 3, field N is rest[N - 3]); undefined when gone. */
function statFields(pid: number): { comm: string; rest: string[] } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: it ends at the last ')'.
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  return { comm: text.slice(open + 1, close), rest: text.slice(close + 2).trim().split(" ") };
}

/** Reads /proc/<pid>/stat; returns undefined when the process does not exist. */
export function readProcStat(pid: number): ProcStat | undefined {
  const f = statFields(pid);
  if (f === undefined) return undefined;
  const [state, ppid] = f.rest;
  const start = f.rest[19];
  if (state === undefined || ppid === undefined || start === undefined) return undefined;
  return { pid, comm: f.comm, state, ppid: Number(ppid), startTime: BigInt(start) };
}

/**
 * Whether pid descends from ancestor (its parent, its parent's parent, ...), by the parent links in /proc now; false
 * for a process that is gone. A process whose parent died was handed to the nearest child subreaper (or init) and
 * descends from it from then on.
 */
export function descendsFrom(pid: number, ancestor: number): boolean {
  let p = pid;
  // A chain deeper than this is not a process tree this machine makes; the walk ends at pid 1 (or 0) anyway.
  for (let depth = 0; depth < 256 && p > 1; depth++) {
    const stat = readProcStat(p);
    if (stat === undefined) return false;
    if (stat.ppid === ancestor) return true;
    p = stat.ppid;
  }
  return false;
}

/**
 * Whether a process between pid (included) and its ancestor `stop` (excluded) is one whose command line `isWork`
 * picks; false when the chain breaks (a process gone) before `stop`.
 */
export function underProcess(pid: number, stop: number, isWork: (cmdline: string[]) => boolean): boolean {
  let p = pid;
  for (let depth = 0; depth < 256 && p > 1 && p !== stop; depth++) {
    let cmdline: string[];
    try {
      cmdline = readFileSync(`/proc/${p}/cmdline`, "latin1").split("\0");
    } catch {
      return false;
    }
    if (isWork(cmdline)) return true;
    const stat = readProcStat(p);
    if (stat === undefined) return false;
    p = stat.ppid;
  }
  return false;
}

/**
 * How a zombie ended, from its /proc/<pid>/stat exit_code (field 52, the wait status): "killed by signal N" or
 * "exit status N"; undefined when the process is not a zombie (or gone).
 */
export function zombieEnd(pid: number): string | undefined {
  const rest = statFields(pid)?.rest;
  if (rest?.[0] !== "Z") return undefined;
  const status = Number(rest[49]);
  if (!Number.isInteger(status)) return "ended";
  return (status & 0x7f) !== 0 ? `killed by signal ${status & 0x7f}` : `exit status ${(status >> 8) & 0xff}`;
}

/** PF_EXITING in /proc/<pid>/stat's flags (field 9): the process has started to exit. */
const PF_EXITING = 0x4;

/** Whether the process has started to exit (PF_EXITING in its flags); undefined when it is gone. */
export function isExiting(pid: number): boolean | undefined {
  const rest = statFields(pid)?.rest;
  return rest === undefined ? undefined : (Number(rest[6]) & PF_EXITING) !== 0;
}

/**
 * How a process that has ended or is ending ended: zombieEnd's answer for a zombie, and the same for one still in
 * exit() (PF_EXITING: killed, but not yet a zombie, e.g. a pid namespace's init waiting there for its namespace's
 * tasks to go); undefined for a live or vanished process.
 */
export function processEnd(pid: number): string | undefined {
  const rest = statFields(pid)?.rest;
  if (rest === undefined) return undefined;
  if (rest[0] !== "Z" && rest[0] !== "X" && (Number(rest[6]) & PF_EXITING) === 0) return undefined;
  const status = Number(rest[49]);
  if (!Number.isInteger(status)) return "ended";
  return (status & 0x7f) !== 0 ? `killed by signal ${status & 0x7f}` : `exit status ${(status >> 8) & 0xff}`;
}

/** A field of /proc/<pid>/status ("NSpid", "TracerPid", ...), or undefined when the process is gone or has none. */
function statusField(pid: number, name: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return undefined;
  }
  return new RegExp(`^${name}:\\s*(.*)$`, "m").exec(text)?.[1]?.trim();
}

/** The pid of a process in its innermost pid namespace (the last NSpid of /proc/<pid>/status), or undefined when gone. */
export function innermostPid(pid: number): number | undefined {
  const last = statusField(pid, "NSpid")?.split(/\s+/).at(-1);
  return last === undefined || last === "" ? undefined : Number(last);
}

/** A process's command name (/proc/<pid>/comm), or undefined when it is gone. */
export function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "latin1").trim();
  } catch {
    return undefined;
  }
}

/** The pid of the process that ptraces this one (0: none), or undefined when gone. */
export function tracerPidOf(pid: number): number | undefined {
  const t = statusField(pid, "TracerPid");
  return t === undefined ? undefined : Number(t);
}

/** The kernel function the process sleeps in (/proc/<pid>/wchan: "futex_do_wait", "do_wait", ...), or undefined when running or gone. */
export function wchanOf(pid: number): string | undefined {
  try {
    const w = readFileSync(`/proc/${pid}/wchan`, "latin1").trim();
    return w === "" || w === "0" ? undefined : w;
  } catch {
    return undefined;
  }
}

/**
 * pid's open descriptors and what each names (readlink of <proc>/<pid>/fd/N); none for a process gone (or a kernel
 * thread), and a descriptor closed meanwhile is left out. proc: /proc, or a tree shaped like it (tests).
 */
export function fdTargets(pid: number, proc = "/proc"): { fd: number; target: string }[] {
  let fds: string[];
  try {
    fds = readdirSync(`${proc}/${pid}/fd`);
  } catch {
    return [];
  }
  const out: { fd: number; target: string }[] = [];
  for (const fd of fds) {
    try {
      out.push({ fd: Number(fd), target: readlinkSync(`${proc}/${pid}/fd/${fd}`) });
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** True when the pid names a process that exists and is neither a zombie nor dead. */
export function isAlive(pid: number): boolean {
  const st = readProcStat(pid);
  return st !== undefined && st.state !== "Z" && st.state !== "X";
}

/** The pids of this process's children (all threads' /proc/self/task/<tid>/children). */
export function listChildren(): number[] {
  return childrenOf(process.pid);
}

/** The pids this process holds pidfds for (Bun keeps one per Bun.spawn child until it has reaped it). */
export function pidfdTargets(): Set<number> {
  const out = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync("/proc/self/fd");
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (!target.includes("pidfd")) continue; // "anon_inode:[pidfd]"
      const info = readFileSync(`/proc/self/fdinfo/${fd}`, "latin1");
      const m = /^Pid:\s*(-?\d+)/m.exec(info);
      if (m?.[1] !== undefined) out.add(Number(m[1]));
    } catch {
      // fd closed meanwhile
    }
  }
  return out;
}

/** The children of pid (every thread's /proc/<pid>/task/<tid>/children); none when it is gone. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      for (const p of readFileSync(`/proc/${pid}/task/${tid}/children`, "latin1").split(" ")) if (p.trim() !== "") out.push(Number(p));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** pid and every descendant of it (children, theirs, ...), pid first. */
export function processTree(pid: number): number[] {
  const seen = new Set<number>([pid]);
  const queue = [pid];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    for (const c of childrenOf(p)) {
      if (!seen.has(c)) {
        seen.add(c);
        queue.push(c);
      }
    }
  }
  return [...seen];
}

/**
 * Kills pid and all its descendants with SIGKILL. Each is first stopped (SIGSTOP) until a walk of the tree
 * finds nothing new, so none can fork a process the kill misses; killing the root first would instead hand
 * its children to a subreaper, out of the tree. Processes already gone are skipped.
 */
export function killTree(pid: number): void {
  const stopped = new Set<number>();
  for (let round = 0; round < 100; round++) {
    const fresh = processTree(pid).filter((p) => !stopped.has(p));
    if (fresh.length === 0) break;
    for (const p of fresh) {
      stopped.add(p);
      try {
        process.kill(p, "SIGSTOP");
      } catch {
        // ESRCH: already gone
      }
    }
  }
  for (const p of stopped) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // ESRCH: already gone
    }
  }
}
