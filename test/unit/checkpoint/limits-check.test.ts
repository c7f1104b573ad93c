import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import type { ThreadCore } from "../../../src/checkpoint/creds-check.ts";
import { checkTaskLimits, ownLimits, RLIM_INFINITY, RLIMITS, type InheritedLimits, type LimitsSpec } from "../../../src/checkpoint/limits-check.ts";
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

const refused = (threads: ThreadCore[], spec: LimitsSpec = ctrSpec) => {
  try {
    checkTaskLimits(threads, spec, "restore container c1 from /ck", inherited);
  } catch (err) {
    return (err as Error).message;
  }
  return "accepted";
};

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

test("a hard limit above the spec's or the shim's, an OOM score below: refused, naming the task, the resource and where the bound comes from", () => {
  expect(refused([task(1), task(7, { [NOFILE]: 4096n })])).toBe(
    "restore container c1 from /ck: invalid argument: task 7: its RLIMIT_NOFILE hard limit is 4096, above the 1024 a new container gets (the spec's process.rlimits)",
  );
  expect(refused([task(1, { [RTPRIO]: 99n })])).toBe(
    "restore container c1 from /ck: invalid argument: task 1: its RLIMIT_RTPRIO hard limit is 99, above the 0 a new container gets (this shim's own, which a new container inherits where the spec's process.rlimits does not set it)",
  );
  expect(refused([task(1, { [NOFILE]: RLIM_INFINITY })])).toContain("its RLIMIT_NOFILE hard limit is unlimited, above the 1024");
  // Without the spec's entry, NOFILE is bounded by the shim's 20000.
  expect(refused([task(1, { [NOFILE]: 20000n })], {})).toBe("accepted");
  expect(refused([task(1, { [NOFILE]: 20001n })], {})).toContain("its RLIMIT_NOFILE hard limit is 20001, above the 20000 a new container gets (this shim's own");
  expect(refused([task(1, {}, -1000)])).toBe(
    "restore container c1 from /ck: invalid argument: task 1: its oom_score_adj is -1000, below the 1 a new container gets (this shim's own, which a new container inherits where the spec sets no process.oomScoreAdj)",
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
