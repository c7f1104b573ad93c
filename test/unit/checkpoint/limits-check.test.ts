import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import type { ThreadCore } from "../../../src/checkpoint/creds-check.ts";
import { enforceTaskLimits, ownLimits, RLIM_INFINITY, RLIMITS, taskLimitsBounds, type InheritedLimits, type LimitsAccess, type LimitsSpec } from "../../../src/checkpoint/limits-check.ts";
import { CryoError } from "../../../src/errors.ts";
import type { ResourceLimit } from "../../../src/sys/index.ts";
import { CoreEntrySchema } from "../../../src/gen/criu/core_pb.ts";

const NOFILE = RLIMITS.indexOf("NOFILE");
const RTPRIO = RLIMITS.indexOf("RTPRIO");
// This host's defaults as a shim here sees them: NOFILE 20000, RTPRIO 0, the rest unlimited.
const inherited: InheritedLimits = { hard: RLIMITS.map((r) => (r === "NOFILE" ? 20000n : r === "RTPRIO" || r === "NICE" ? 0n : RLIM_INFINITY)), oomScoreAdj: 1 };
// ctr's default spec: RLIMIT_NOFILE 1024/1024.
const ctrSpec: LimitsSpec = { process: { rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }] } };

/** A task whose core image records these hard limits (by resource; the rest as inherited, NOFILE as the spec's) and oom_score_adj. */
function task(pid: number, hard: Partial<Record<number, bigint>> = {}, oomScoreAdj?: number, extra: { tid?: number; dead?: boolean } = {}): ThreadCore {
  const rlimits = RLIMITS.map((_, i) => {
    const max = hard[i] ?? (i === NOFILE ? 1024n : inherited.hard[i]!);
    return { cur: max === RLIM_INFINITY ? max : max / 2n, max };
  });
  const core = create(CoreEntrySchema, { mtype: 1, tc: { taskState: extra.dead ? 2 : 1, comm: "sh", rlimits: { rlimits }, ...(oomScoreAdj !== undefined ? { oomScoreAdj } : {}) } });
  return { pid, tid: extra.tid ?? pid, core };
}

/** What of the checkpoint exceeds the bounds ("accepted": nothing; then nothing is enforced after the restore). */
const refused = (threads: ThreadCore[], spec: LimitsSpec = ctrSpec) => taskLimitsBounds(threads, spec, inherited)?.findings.join("; ") ?? "accepted";

test("what a new container would get is accepted: the spec's limits, the shim's for the rest, lower ones, OOM scores at or above", () => {
  expect(refused([task(1, {}, 1), task(2, { [NOFILE]: 512n, [RLIMITS.indexOf("NPROC")]: 100n }, 500)])).toBe("accepted");
  // 0 is left alone by CRIU: the task keeps the one it inherits, this shim's (1 here).
  expect(refused([task(1, {}, 0)])).toBe("accepted");
  expect(refused([task(1, {}, 0)], { process: { ...ctrSpec.process, oomScoreAdj: 900 } })).toContain("task 1: its oom_score_adj is 0 (CRIU leaves it at this shim's 1), below the 900 a new container gets (the spec's process.oomScoreAdj)");
  // A spec that sets a resource wins over the shim's, upwards too (runc's init sets it as root).
  expect(refused([task(1, { [RTPRIO]: 10n })], { process: { rlimits: [{ type: "RLIMIT_RTPRIO", hard: 10, soft: 0 }, { type: "RLIMIT_NOFILE", hard: 1024 }] } })).toBe("accepted");
  // Infinity in the spec, as a double past 2^63.
  expect(refused([task(1, { [RLIMITS.indexOf("MEMLOCK")]: RLIM_INFINITY })], { process: { rlimits: [{ type: "RLIMIT_MEMLOCK", hard: 18446744073709551615, soft: 0 }, { type: "RLIMIT_NOFILE", hard: 1024 }] } })).toBe("accepted");
});

test("a hard limit above the spec's or the shim's, an OOM score below: found, naming the task, the resource and where the bound comes from", () => {
  expect(refused([task(1), task(7, { [NOFILE]: 4096n })])).toBe(
    "task 7: its RLIMIT_NOFILE hard limit is 4096, above the 1024 a new container gets (the spec's process.rlimits)",
  );
  expect(refused([task(1, { [RTPRIO]: 99n })])).toBe(
    "task 1: its RLIMIT_RTPRIO hard limit is 99, above the 0 a new container gets (this shim's own, which a new container inherits where the spec's process.rlimits does not set it)",
  );
  expect(refused([task(1, { [NOFILE]: RLIM_INFINITY })])).toContain("its RLIMIT_NOFILE hard limit is unlimited, above the 1024");
  // Without the spec's entry, NOFILE is bounded by the shim's 20000.
  expect(refused([task(1, { [NOFILE]: 20000n })], {})).toBe("accepted");
  expect(refused([task(1, { [NOFILE]: 20001n })], {})).toContain("its RLIMIT_NOFILE hard limit is 20001, above the 20000 a new container gets (this shim's own");
  expect(refused([task(1, {}, -1000)])).toBe(
    "task 1: its oom_score_adj is -1000, below the 1 a new container gets (this shim's own, which a new container inherits where the spec sets no process.oomScoreAdj)",
  );
  expect(refused([task(1, {}, 100)], { process: { ...ctrSpec.process, oomScoreAdj: 500 } })).toContain("task 1: its oom_score_adj is 100, below the 500 a new container gets (the spec's process.oomScoreAdj)");
});

test("a spec granting CAP_SYS_RESOURCE compares nothing; zombies, threads and entries past the known resources are skipped", () => {
  const bad = task(1, { [RTPRIO]: 99n }, -1000);
  expect(refused([bad], { process: { ...ctrSpec.process, capabilities: { permitted: ["CAP_SYS_RESOURCE"] } } })).toBe("accepted");
  expect(refused([task(1), task(9, { [RTPRIO]: 99n }, -1000, { dead: true })])).toBe("accepted");
  expect(refused([task(1), task(1, { [RTPRIO]: 99n }, -1000, { tid: 2 })])).toBe("accepted");
  const more = task(1);
  more.core!.tc!.rlimits!.rlimits.push({ $typeName: "criu.RlimitEntry", cur: 0n, max: RLIM_INFINITY });
  expect(refused([more])).toBe("accepted");
});

test("ownLimits reads this process's hard limits and OOM score as the kernel reports them", () => {
  const own = ownLimits();
  expect(own.hard.length).toBe(RLIMITS.length);
  const text = readFileSync("/proc/self/limits", "utf8");
  const files = /Max open files\s+\S+\s+(\S+)/.exec(text)![1]!;
  expect(own.hard[NOFILE]).toBe(files === "unlimited" ? RLIM_INFINITY : BigInt(files));
  const cpu = /Max cpu time\s+\S+\s+(\S+)/.exec(text)![1]!;
  expect(own.hard[0]).toBe(cpu === "unlimited" ? RLIM_INFINITY : BigInt(cpu));
  expect(own.oomScoreAdj).toBe(Number(readFileSync("/proc/self/oom_score_adj", "utf8")));
});

test("the bounds name only what some task exceeds: the hard limits by resource, the lowest OOM score", () => {
  const b = taskLimitsBounds([task(1, { [NOFILE]: 4096n }, 1), task(2, { [RTPRIO]: 99n }, -1000), task(3)], { process: { ...ctrSpec.process, oomScoreAdj: 500 } }, inherited);
  expect(b?.hard).toEqual(new Map([[NOFILE, 1024n], [RTPRIO, 0n]]));
  expect(b?.minOomScoreAdj).toBe(500);
  expect(b?.findings.length).toBe(5); // task 1: NOFILE and its score 1; task 2: RTPRIO and -1000; task 3: its score 1
  expect(taskLimitsBounds([task(1, {}, 1)], ctrSpec, inherited)).toBeUndefined();
  expect(taskLimitsBounds([task(1, { [NOFILE]: 4096n }, 1)], ctrSpec, inherited)?.minOomScoreAdj).toBeUndefined();
});

/** Processes as a fake /proc: limits by pid and resource, scores by pid; what was set is recorded. */
function fakeProcs(limits: Record<number, Record<number, ResourceLimit>>, scores: Record<number, number>) {
  const log: string[] = [];
  const gone = (pid: number) => {
    if (!(pid in scores)) throw Object.assign(new Error(`/proc/${pid}/oom_score_adj: ENOENT`), { code: "ENOENT" });
  };
  const access: LimitsAccess = {
    limit: (pid, r) => {
      gone(pid);
      return limits[pid]?.[r] ?? { soft: RLIM_INFINITY, hard: RLIM_INFINITY };
    },
    setLimit: (pid, r, l) => {
      (limits[pid] ??= {})[r] = l;
      log.push(`${pid} ${RLIMITS[r]} ${l.soft}:${l.hard}`);
    },
    oomScoreAdj: (pid) => {
      gone(pid);
      return scores[pid]!;
    },
    setOomScoreAdj: (pid, v) => {
      scores[pid] = v;
      log.push(`${pid} adj ${v}`);
    },
  };
  return { access, log, limits, scores };
}

test("enforcing lowers hard limits above their bound (soft with them), raises low scores, leaves the rest and skips processes gone", () => {
  const bounds = { hard: new Map([[NOFILE, 1024n], [RTPRIO, 0n]]), minOomScoreAdj: 500, findings: ["x"] };
  const p = fakeProcs(
    {
      10: { [NOFILE]: { soft: 2048n, hard: 4096n }, [RTPRIO]: { soft: 99n, hard: 99n } },
      11: { [NOFILE]: { soft: 100n, hard: 2000n }, [RTPRIO]: { soft: 0n, hard: 0n } },
      12: { [NOFILE]: { soft: 512n, hard: 512n }, [RTPRIO]: { soft: 0n, hard: 0n } },
    },
    { 10: -1000, 11: 500, 12: 900 },
  );
  const changed = enforceTaskLimits([10, 11, 12, 13], bounds, p.access);
  expect(p.log).toEqual(["10 NOFILE 1024:1024", "10 RTPRIO 0:0", "10 adj 500", "11 NOFILE 100:1024"]);
  expect(changed).toEqual(["pid 10: RLIMIT_NOFILE 2048:4096 -> 1024:1024", "pid 10: RLIMIT_RTPRIO 99:99 -> 0:0", "pid 10: oom_score_adj -1000 -> 500", "pid 11: RLIMIT_NOFILE 100:2000 -> 100:1024"]);
  // Within bounds now: a second pass changes nothing.
  expect(enforceTaskLimits([10, 11, 12], bounds, p.access)).toEqual([]);
});

test("a failure to enforce (other than a process gone) throws, naming the process", () => {
  const p = fakeProcs({ 10: { [NOFILE]: { soft: 2048n, hard: 4096n } } }, { 10: 0 });
  p.access.setLimit = () => {
    throw new CryoError(7, "prlimit(10, 7, 1024:1024): Operation not permitted (errno 1)");
  };
  expect(() => enforceTaskLimits([10], { hard: new Map([[NOFILE, 1024n]]), findings: [] }, p.access)).toThrow(
    "hold pid 10 to the spec's resource limits and OOM score: prlimit(10, 7, 1024:1024): Operation not permitted (errno 1)",
  );
});

test("enforcing through prlimit and /proc on a real process", () => {
  const child = Bun.spawn(["sleep", "30"]);
  try {
    const score = Number(readFileSync(`/proc/${child.pid}/oom_score_adj`, "utf8"));
    const changed = enforceTaskLimits([child.pid], { hard: new Map([[NOFILE, 300n]]), minOomScoreAdj: score + 1, findings: [] });
    expect(changed.length).toBe(2);
    expect(readFileSync(`/proc/${child.pid}/limits`, "utf8")).toMatch(/Max open files\s+300\s+300\s/);
    expect(Number(readFileSync(`/proc/${child.pid}/oom_score_adj`, "utf8"))).toBe(score + 1);
  } finally {
    child.kill(9);
  }
});
