/**
 * What the checkpoint's tasks may be restored with, beside their credentials (creds-check.ts): their resource
 * limits and OOM score adjustment, held to what a new container of the same spec would get on this host.
 *
 * CRIU restores each task's rlimits (core-<pid>.img, task_core.rlimits) with setrlimit and its oom_score_adj
 * through /proc, as root. Raising a hard limit or lowering oom_score_adj below where it started takes
 * CAP_SYS_RESOURCE, which a container's tasks lack unless the spec grants it; so a crafted checkpoint could
 * give a restored task RLIMIT_RTPRIO 99 (real-time scheduling that starves the host's other tasks), an
 * unlimited RLIMIT_MEMLOCK or RLIMIT_NPROC, or oom_score_adj -1000 (the OOM killer then takes other processes
 * instead). runc's restore does not look. The bounds are
 * - a hard limit no higher than the spec's `process.rlimits` entry for that resource, or, where the spec sets
 *   none, this shim's own hard limit, which runc's init inherits;
 * - an oom_score_adj no lower than the spec's `process.oomScoreAdj`, or, where the spec sets none, this shim's
 *   own (CRIU leaves a recorded 0 alone: the task then keeps the one it inherits, this shim's).
 * An honest checkpoint exceeds them too: Kubernetes gives a Burstable pod a higher oomScoreAdj on a node with
 * less memory, and nodes differ in the limits containerd's shims inherit. So a task beyond them is not refused
 * but brought within them (enforceTaskLimits), as a new container would start: the restore turns on CRIU's
 * post-restore notification, at which every task is restored but none has run again, and lowers each
 * process's hard (and soft) limits and raises its score there.
 * Nothing is bounded when the spec grants CAP_SYS_RESOURCE: such a task may raise both itself. Zombies are
 * skipped, and so are threads: limits and the OOM score are the process's, in its main thread's core image.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { capabilityNumber, grantedCapabilities } from "../criu/capabilities.ts";
import { Code, CryoError } from "../errors.ts";
import { processLimit, setProcessLimit, type ResourceLimit } from "../sys/index.ts";
import type { ThreadCore } from "./creds-check.ts";

/** The resources by number, as setrlimit(2) and CRIU's images index them. */
export const RLIMITS = ["CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME"] as const;
/** RLIM_INFINITY, as CRIU stores it and as a uint64. */
export const RLIM_INFINITY = 2n ** 64n - 1n;
const TASK_DEAD = 2;

/** What a new container gets where its spec says nothing: runc's init inherits the shim's. */
export interface InheritedLimits {
  /** The hard limit of each resource, by number. */
  hard: bigint[];
  oomScoreAdj: number;
}

/** The spec fields the check reads (OCI runtime spec). */
export interface LimitsSpec {
  process?: { rlimits?: unknown; oomScoreAdj?: unknown; capabilities?: Partial<Record<string, unknown>> };
}

/** This process's hard limits (/proc/self/limits: one line per resource, in resource order) and oom_score_adj. */
export function ownLimits(): InheritedLimits {
  const lines = readFileSync("/proc/self/limits", "utf8").split("\n").slice(1, 1 + RLIMITS.length);
  const hard = lines.map((line) => {
    // "Max open files            20000                20000                files"
    const m = /^Max [a-z ]+?\s{2,}(\S+)\s+(\S+)/.exec(line);
    return !m || m[2] === "unlimited" ? RLIM_INFINITY : BigInt(m[2]!);
  });
  return { hard, oomScoreAdj: Number(readFileSync("/proc/self/oom_score_adj", "utf8").trim()) };
}

/** A limit as a JSON number gives it: at or past 2^63 (where doubles lose the units) is infinity. */
function specLimit(v: unknown): bigint | undefined {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) return undefined;
  return v >= 2 ** 63 ? RLIM_INFINITY : BigInt(Math.trunc(v));
}

const show = (v: bigint) => (v === RLIM_INFINITY ? "unlimited" : String(v));

/** The bounds some task of a checkpoint exceeds: only those are enforced after CRIU restored the tree. */
export interface TaskLimitsBounds {
  /** By resource number: the highest hard limit a process may keep. */
  hard: Map<number, bigint>;
  /** The lowest oom_score_adj a process may keep. */
  minOomScoreAdj?: number;
  /** What exceeds them, one line per task and bound, for the log. */
  findings: string[];
}

/**
 * The bounds (see the module comment) that some task of the checkpoint exceeds as its images record it;
 * undefined when none does, or when the spec grants CAP_SYS_RESOURCE.
 */
export function taskLimitsBounds(threads: readonly ThreadCore[], spec: LimitsSpec, inherited: InheritedLimits): TaskLimitsBounds | undefined {
  if (grantedCapabilities(spec.process?.capabilities).has(capabilityNumber("CAP_SYS_RESOURCE"))) return undefined;
  const fromSpec = new Map<number, bigint>();
  const rlimits = spec.process?.rlimits;
  if (Array.isArray(rlimits)) {
    for (const r of rlimits as { type?: unknown; hard?: unknown }[]) {
      const i = typeof r?.type === "string" ? RLIMITS.indexOf(r.type.replace(/^RLIMIT_/, "") as (typeof RLIMITS)[number]) : -1;
      const hard = specLimit(r?.hard);
      if (i >= 0 && hard !== undefined) fromSpec.set(i, hard);
    }
  }
  const specAdj = typeof spec.process?.oomScoreAdj === "number" ? spec.process.oomScoreAdj : undefined;
  const minAdj = specAdj ?? inherited.oomScoreAdj;
  const bounds: TaskLimitsBounds = { hard: new Map(), findings: [] };
  for (const t of threads) {
    const tc = t.core?.tc;
    if (t.tid !== t.pid || !tc || tc.taskState === TASK_DEAD) continue;
    (tc.rlimits?.rlimits ?? []).forEach((r, i) => {
      if (i >= RLIMITS.length) return; // setrlimit refuses it: CRIU restores nothing there
      const allowed = fromSpec.get(i) ?? inherited.hard[i] ?? RLIM_INFINITY;
      if (r.max > allowed) {
        bounds.hard.set(i, allowed);
        const source = fromSpec.has(i) ? "the spec's process.rlimits" : "this shim's own, which a new container inherits where the spec's process.rlimits does not set it";
        bounds.findings.push(`task ${t.pid}: its RLIMIT_${RLIMITS[i]} hard limit is ${show(r.max)}, above the ${show(allowed)} a new container gets (${source})`);
      }
    });
    // CRIU leaves a recorded 0 alone: the task then keeps the one it inherits, this shim's.
    const adj = tc.oomScoreAdj ?? 0;
    const restored = adj !== 0 ? adj : inherited.oomScoreAdj;
    if (restored < minAdj) {
      bounds.minOomScoreAdj = minAdj;
      const source = specAdj !== undefined ? "the spec's process.oomScoreAdj" : "this shim's own, which a new container inherits where the spec sets no process.oomScoreAdj";
      bounds.findings.push(`task ${t.pid}: its oom_score_adj is ${adj}${adj === 0 ? ` (CRIU leaves it at this shim's ${inherited.oomScoreAdj})` : ""}, below the ${minAdj} a new container gets (${source})`);
    }
  }
  return bounds.findings.length > 0 ? bounds : undefined;
}

/** How enforceTaskLimits reads and changes a process (src/sys and /proc by default; tests pass their own). */
export interface LimitsAccess {
  limit(pid: number, resource: number): ResourceLimit;
  setLimit(pid: number, resource: number, limit: ResourceLimit): void;
  oomScoreAdj(pid: number): number;
  setOomScoreAdj(pid: number, value: number): void;
}

const procAccess: LimitsAccess = {
  limit: processLimit,
  setLimit: setProcessLimit,
  oomScoreAdj: (pid) => Number(readFileSync(`/proc/${pid}/oom_score_adj`, "utf8").trim()),
  setOomScoreAdj: (pid, value) => writeFileSync(`/proc/${pid}/oom_score_adj`, String(value)),
};

/**
 * Brings every process of pids within bounds: a hard limit above its bound is lowered to it (the soft limit
 * with it where it was higher), an oom_score_adj below the lowest is raised to it. Returns what it changed,
 * one line per process and resource. A process gone meanwhile (a zombie reaped) is skipped; any other failure
 * throws, which makes the caller abort the restore.
 */
export function enforceTaskLimits(pids: readonly number[], bounds: TaskLimitsBounds, access: LimitsAccess = procAccess): string[] {
  const changed: string[] = [];
  for (const pid of pids) {
    try {
      for (const [resource, hard] of bounds.hard) {
        const now = access.limit(pid, resource);
        if (now.hard <= hard) continue;
        const next = { soft: now.soft < hard ? now.soft : hard, hard };
        access.setLimit(pid, resource, next);
        changed.push(`pid ${pid}: RLIMIT_${RLIMITS[resource]} ${show(now.soft)}:${show(now.hard)} -> ${show(next.soft)}:${show(next.hard)}`);
      }
      if (bounds.minOomScoreAdj !== undefined) {
        const adj = access.oomScoreAdj(pid);
        if (adj < bounds.minOomScoreAdj) {
          access.setOomScoreAdj(pid, bounds.minOomScoreAdj);
          changed.push(`pid ${pid}: oom_score_adj ${adj} -> ${bounds.minOomScoreAdj}`);
        }
      }
    } catch (err) {
      const e = CryoError.from(err);
      if (e.code === Code.NOT_FOUND || /ENOENT|ESRCH/.test(String((err as NodeJS.ErrnoException).code))) continue;
      throw e.wrap(`hold pid ${pid} to the spec's resource limits and OOM score`);
    }
  }
  return changed;
}
