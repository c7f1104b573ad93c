/**
 * A task's execution domain (personality(2)) across a checkpoint. personality(2) acts only on the calling thread, so
 * nothing outside the task can set it: only CRIU's restorer, which runs in the task, can. Upstream CRIU 4.2 records it
 * in the core image (reading /proc/PID/personality, hex, with atoi: 00040000 becomes 40000) and never sets it again.
 * cryo's build (scripts/criu/0011-dump-and-restore-the-personality.patch, src/criu/binary.ts criuRestoresPersonality)
 * records each thread's (thread core field persona) and has each restored thread set its own. Measured: a process at
 * ADDR_NO_RANDOMIZE reads 0 after an upstream CRIU's restore and 0x40000 after cryo's
 * (test/integration/checkpoint-kstate.test.ts).
 *
 * Where the CRIU at hand does not carry it, what the loss does depends on the bits, so the dump
 * (src/shim/checkpoint-dump.ts) and the restore (src/shim/restore-container.ts) sort them:
 * - those the kernel consults while the task runs change what it sees or gets: the execution domain itself
 *   (PER_LINUX32's `uname -m` reads i686, then x86_64), UNAME26 (the release `uname -r` reports), READ_IMPLIES_EXEC
 *   (readable mappings made executable), ADDR_LIMIT_32BIT and ADDR_LIMIT_3GB (where mmap places mappings),
 *   STICKY_TIMEOUTS (select leaving its timeout unchanged). A checkpoint that would lose one fails with
 *   FAILED_PRECONDITION before CRIU runs (the container runs on), and so does a restore of one it recorded;
 * - the rest are read only at execve (ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT) or by no code path of
 *   this kernel's (SHORT_INODE, WHOLE_SECONDS, FDPIC_FUNCPTRS): the running program keeps its layout, and only what it
 *   executes after the restore starts without them. Such a checkpoint or restore goes on, with a warning in the log.
 */
import { readdirSync, readFileSync } from "node:fs";

/** personality(2)'s flags by name (include/uapi/linux/personality.h). */
export const PERSONALITY_FLAGS = {
  UNAME26: 0x0020000,
  ADDR_NO_RANDOMIZE: 0x0040000,
  FDPIC_FUNCPTRS: 0x0080000,
  MMAP_PAGE_ZERO: 0x0100000,
  ADDR_COMPAT_LAYOUT: 0x0200000,
  READ_IMPLIES_EXEC: 0x0400000,
  ADDR_LIMIT_32BIT: 0x0800000,
  SHORT_INODE: 0x1000000,
  WHOLE_SECONDS: 0x2000000,
  STICKY_TIMEOUTS: 0x4000000,
  ADDR_LIMIT_3GB: 0x8000000,
} as const;

/** The flags the kernel consults while a task runs: losing one changes what the restored task sees. */
const WHILE_RUNNING = PERSONALITY_FLAGS.UNAME26 | PERSONALITY_FLAGS.READ_IMPLIES_EXEC | PERSONALITY_FLAGS.ADDR_LIMIT_32BIT | PERSONALITY_FLAGS.STICKY_TIMEOUTS | PERSONALITY_FLAGS.ADDR_LIMIT_3GB;
/** The execution domain (the low byte): PER_LINUX is 0. */
const PER_MASK = 0xff;
const DOMAINS: Record<number, string> = { 0x08: "PER_LINUX32" };

/** What a restore would lose of one personality value: the parts that change the running task, and the rest. */
export interface PersonalityLoss {
  /** Names of the execution domain and flags the running task depends on (empty: none). */
  whileRunning: string[];
  /** Names of the flags that act only at execve, or nowhere here. */
  atExec: string[];
}

/** Sorts a personality value (PersonalityLoss); 0 (PER_LINUX, no flags) loses nothing. */
export function personalityLoss(value: number): PersonalityLoss {
  const whileRunning: string[] = [];
  const atExec: string[] = [];
  const domain = value & PER_MASK;
  if (domain !== 0) whileRunning.push(DOMAINS[domain] ?? `execution domain 0x${domain.toString(16)}`);
  let known = PER_MASK;
  for (const [name, bit] of Object.entries(PERSONALITY_FLAGS)) {
    known |= bit;
    if ((value & bit) === 0) continue;
    ((bit & WHILE_RUNNING) !== 0 ? whileRunning : atExec).push(name);
  }
  const unknown = value & ~known;
  if (unknown !== 0) whileRunning.push(`unknown flags 0x${(unknown >>> 0).toString(16)}`);
  return { whileRunning, atExec };
}

/** One thread whose personality a restore loses, with what it loses. */
export interface ThreadPersonality extends PersonalityLoss {
  pid: number;
  tid: number;
  value: number;
}

/** How personalities are read (/proc by default; tests pass their own). */
export interface PersonalityAccess {
  tids(pid: number): number[];
  /** /proc/TID/personality, parsed (the kernel prints it as %08x). */
  personality(tid: number): number;
}

const procAccess: PersonalityAccess = {
  tids: (pid) => readdirSync(`/proc/${pid}/task`).map(Number),
  personality: (tid) => Number.parseInt(readFileSync(`/proc/${tid}/personality`, "latin1").trim(), 16),
};

/** The threads of pids (host ids) whose personality is not 0, which a CRIU that does not carry it loses. Threads gone meanwhile are skipped. */
export function threadPersonalities(pids: readonly number[], access: PersonalityAccess = procAccess): ThreadPersonality[] {
  const out: ThreadPersonality[] = [];
  for (const pid of pids) {
    let tids: number[];
    try {
      tids = access.tids(pid);
    } catch {
      continue; // gone
    }
    for (const tid of tids) {
      let value: number;
      try {
        value = access.personality(tid);
      } catch {
        continue; // gone
      }
      if (!Number.isInteger(value) || value === 0) continue;
      out.push({ pid, tid, value, ...personalityLoss(value) });
    }
  }
  return out;
}

/** A thread of a checkpoint whose recorded personality (thread core field persona, cryo's CRIU) is not 0. */
export interface RecordedPersonality {
  /** Its process's pid and its own id in the checkpoint (the container's PID namespace). */
  pid: number;
  tid: number;
  value: number;
}

/** What a restore by a CRIU that does not set personalities loses of the recorded ones (see personalityLoss). */
export function recordedPersonalityLoss(recorded: readonly RecordedPersonality[]): (RecordedPersonality & PersonalityLoss)[] {
  return recorded.map((r) => ({ ...r, ...personalityLoss(r.value) }));
}

/** "0x00040000", as /proc prints it. */
export function showPersonality(value: number): string {
  return `0x${(value >>> 0).toString(16).padStart(8, "0")}`;
}
