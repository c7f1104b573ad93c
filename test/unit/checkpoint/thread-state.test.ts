import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { METADATA_FILE, readCheckpointMetadata, renderMetadata, writeCheckpointMetadata } from "../../../src/checkpoint/index.ts";
import {
  applyThreadStates,
  formatCpuList,
  innermostTid,
  parseCpuList,
  planThreadStates,
  readThreadStates,
  restoredThreads,
  threadStatesSchema,
  type RestoredThread,
  type ThreadAccess,
} from "../../../src/checkpoint/thread-state.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { sampleCheckpointMetadata } from "../../harness/checkpoint-metadata.ts";

const BE = (level: number) => (2 << 13) | level;
const RT = (level: number) => (1 << 13) | level;

/** A thread as a fake /proc shows it. */
interface FakeThread {
  nspid: number[];
  cpus: string;
  slack: number;
  ioprio: number;
  /** The CPUs its cpuset has online (default: cpus): an affinity is cut to them, EINVAL when none is left. */
  mayUse?: string;
}

/** A fake ThreadAccess over pid -> tid -> thread, recording what is set; a tid in `gone` fails as ESRCH. */
function fakeAccess(procs: Record<number, Record<number, FakeThread>>, gone = new Set<number>(), failing = new Set<number>()) {
  const threads = new Map<number, FakeThread>();
  for (const ts of Object.values(procs)) for (const [tid, t] of Object.entries(ts)) threads.set(Number(tid), t);
  const set: string[] = [];
  const thread = (tid: number) => {
    if (gone.has(tid)) throw Object.assign(new Error(`thread ${tid}: No such process`), { errno: 3 });
    const t = threads.get(tid);
    if (!t) throw Object.assign(new Error(`ENOENT /proc/${tid}`), { code: "ENOENT" });
    return t;
  };
  const change = (tid: number, what: string) => {
    thread(tid);
    if (failing.has(tid)) throw new Error(`${what}: Operation not permitted`);
    set.push(`${tid} ${what}`);
  };
  const access: ThreadAccess = {
    tids: (pid) => {
      const ts = procs[pid];
      if (!ts) throw Object.assign(new Error(`ENOENT /proc/${pid}/task`), { code: "ENOENT" });
      return Object.keys(ts).map(Number);
    },
    status: (tid) => {
      const t = thread(tid);
      return `Name:\tx\nNSpid:\t${t.nspid.join("\t")}\nCpus_allowed:\tff\nCpus_allowed_list:\t${t.cpus}\n`;
    },
    timerSlackNs: (tid) => thread(tid).slack,
    ioprio: (tid) => thread(tid).ioprio,
    setCpus: (tid, cpus) => {
      const t = thread(tid);
      const may = new Set(parseCpuList(t.mayUse ?? t.cpus));
      const kept = cpus.filter((c) => may.has(c));
      if (kept.length === 0) throw Object.assign(new Error(`sched_setaffinity(${tid}): Invalid argument (errno 22)`), { errno: 22 });
      change(tid, `cpus ${cpus.join(",")}`);
      t.cpus = formatCpuList(kept);
    },
    setTimerSlackNs: (tid, ns) => change(tid, `slack ${ns}`),
    setIoprio: (tid, v) => change(tid, `ioprio ${v}`),
  };
  return { access, set };
}

describe("cpu lists", () => {
  test("parse and format as the kernel prints them", () => {
    expect(parseCpuList("0-3,8,10-11\n")).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList("1")).toEqual([1]);
    expect(parseCpuList("")).toEqual([]);
    expect(formatCpuList([11, 0, 1, 2, 3, 8, 10, 2])).toBe("0-3,8,10-11");
    expect(formatCpuList([5])).toBe("5");
    expect(formatCpuList([])).toBe("");
  });

  test("a malformed list, a reversed range and a CPU past 8191 are INVALID_ARGUMENT", () => {
    for (const bad of ["0-", "a", "3-1", "0,,1", "8192", "0-99999999"]) {
      const err = (() => {
        try {
          parseCpuList(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(CryoError);
      expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);
    }
  });
});

describe("threadStatesSchema", () => {
  test("takes recorded states, each field optional but the id", () => {
    const list = [{ tid: 1, timerSlackNs: 123457, ioprio: BE(3) }, { tid: 7, cpus: "1", timerSlackNs: 777777, ioprio: BE(6) }, { tid: 9, ioprio: RT(0) }];
    expect(threadStatesSchema.parse(list)).toEqual(list);
  });

  test("refuses a thread id twice, an empty or malformed cpu list, a class-0 or out-of-range I/O priority, a pid past the kernel's", () => {
    for (const bad of [
      [{ tid: 1 }, { tid: 1, cpus: "0" }],
      [{ tid: 1, cpus: "" }],
      [{ tid: 1, cpus: "0-" }],
      [{ tid: 1, cpus: "9000" }],
      [{ tid: 1, ioprio: 4 }], // class 0 (none) is never recorded
      [{ tid: 1, ioprio: (4 << 13) | 1 }],
      [{ tid: 1, ioprio: BE(9) }],
      [{ tid: 0 }],
      [{ tid: 5_000_000 }],
      [{ tid: 1, timerSlackNs: 0 }],
      [{ tid: 1, timerSlackNs: 1.5 }],
    ]) {
      expect(threadStatesSchema.safeParse(bad).success).toBe(false);
    }
  });

  test("metadata with threads round-trips; a checkpoint from before them (no `threads`) still reads", async () => {
    const dir = mkdtempSync("/tmp/cryo-threads-meta-");
    try {
      const meta = { ...sampleCheckpointMetadata(), threads: [{ tid: 7, cpus: "1", timerSlackNs: 777777, ioprio: BE(6) }] };
      await writeCheckpointMetadata(dir, meta);
      expect((await readCheckpointMetadata(dir)).threads).toEqual(meta.threads);
      expect(renderMetadata(meta)).toContain(`Threads set again at restore (CRIU restores none of this): 7 (cpus 1, timer slack 777777 ns, ioprio class 2 level 6)`);
      expect(renderMetadata(sampleCheckpointMetadata())).not.toContain("Threads set again");
      const { threads: _, ...older } = meta;
      writeFileSync(join(dir, METADATA_FILE), JSON.stringify(older));
      expect((await readCheckpointMetadata(dir)).threads).toBeUndefined();
      writeFileSync(join(dir, METADATA_FILE), JSON.stringify({ ...older, threads: [{ tid: 7, cpus: "x" }] }));
      const err = await readCheckpointMetadata(dir).catch((e: unknown) => e);
      expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);
      expect((err as CryoError).message).toContain("threads.0.cpus");
      expect(readFileSync(join(dir, METADATA_FILE), "utf8")).toContain('"tid":7');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("readThreadStates", () => {
  const baseline = { cpus: "0-3", timerSlackNs: 50000 };

  test("records, by the id in the innermost PID namespace, only what differs from the baseline; threads at it are left out", () => {
    const { access } = fakeAccess({
      1000: {
        1000: { nspid: [1000, 1], cpus: "0-3", slack: 123457, ioprio: BE(3) },
        1007: { nspid: [1007, 7], cpus: "1", slack: 777777, ioprio: 0 },
        1008: { nspid: [1008, 8], cpus: "0-3", slack: 50000, ioprio: 0 },
      },
      1010: { 1010: { nspid: [1010, 10], cpus: "0-3", slack: 50000, ioprio: RT(2) } },
    });
    expect(readThreadStates([1000, 1010], baseline, access)).toEqual([
      { tid: 1, timerSlackNs: 123457, ioprio: BE(3) },
      { tid: 7, cpus: "1", timerSlackNs: 777777 },
      { tid: 10, ioprio: RT(2) },
    ]);
  });

  test("a process or thread gone meanwhile is skipped", () => {
    const { access } = fakeAccess({ 1000: { 1000: { nspid: [1000, 1], cpus: "2", slack: 50000, ioprio: 0 }, 1001: { nspid: [1001, 2], cpus: "2", slack: 50000, ioprio: 0 } } }, new Set([1001]));
    expect(readThreadStates([1000, 4242], baseline, access)).toEqual([{ tid: 1, cpus: "2" }]);
  });

  test("innermostTid takes the last of NSpid", () => {
    expect(innermostTid("NSpid:\t1234\t56\t7\n")).toBe(7);
    expect(innermostTid("NSpid:\t1234\n")).toBe(1234);
    expect(innermostTid("Name:\tx\n")).toBeUndefined();
  });
});

describe("planThreadStates", () => {
  const restored = (tid: number, hostTid: number, cpus = "0-3", timerSlackNs = 50000, ioprio = 0): RestoredThread => ({ tid, hostTid, cpus, timerSlackNs, ioprio });

  test("maps recorded threads to the restored ones by their id in the container and sets only what differs", () => {
    const { changes, notes } = planThreadStates(
      [{ tid: 1, timerSlackNs: 123457, ioprio: BE(3) }, { tid: 7, cpus: "1", timerSlackNs: 777777, ioprio: BE(6) }, { tid: 8, timerSlackNs: 60000, ioprio: BE(2) }],
      [restored(1, 5001), restored(7, 5007), restored(8, 5008, "0-3", 60000, BE(2))],
      { realtimeIo: false },
    );
    expect(changes).toEqual([
      { hostTid: 5001, tid: 1, timerSlackNs: 123457, ioprio: BE(3) },
      { hostTid: 5007, tid: 7, cpus: [1], cpusBefore: "0-3", timerSlackNs: 777777, ioprio: BE(6) },
    ]);
    expect(notes).toEqual([]);
  });

  test("an affinity that differs is set as recorded, with what the thread had before", () => {
    const { changes, notes } = planThreadStates([{ tid: 7, cpus: "2-5" }, { tid: 10, cpus: "0-1" }], [restored(7, 5007, "0-3"), restored(10, 5010, "0-1")], { realtimeIo: false });
    expect(changes).toEqual([{ hostTid: 5007, tid: 7, cpus: [2, 3, 4, 5], cpusBefore: "0-3" }]);
    expect(notes).toEqual([]);
  });

  test("a real-time I/O class only where the spec allows it; a recorded thread the restored tree lacks is said", () => {
    const recorded = [{ tid: 1, ioprio: RT(4) }, { tid: 3, timerSlackNs: 1000 }];
    const without = planThreadStates(recorded, [restored(1, 5001)], { realtimeIo: false });
    expect(without.changes).toEqual([]);
    expect(without.notes).toEqual(["thread 1: its real-time I/O priority (level 4) needs CAP_SYS_NICE or CAP_SYS_ADMIN, which the spec does not grant: left at 0", "thread 3: recorded at the dump, not in the restored tree"]);
    const withCap = planThreadStates(recorded, [restored(1, 5001)], { realtimeIo: true });
    expect(withCap.changes).toEqual([{ hostTid: 5001, tid: 1, ioprio: RT(4) }]);
  });
});

describe("restoredThreads and applyThreadStates", () => {
  test("reads each restored thread once, by its host id and the id in the container", () => {
    const { access } = fakeAccess({ 5001: { 5001: { nspid: [5001, 1], cpus: "0-3", slack: 50000, ioprio: 0 }, 5007: { nspid: [5007, 7], cpus: "0-3", slack: 50000, ioprio: 0 } } });
    expect(restoredThreads([5001], access)).toEqual([
      { hostTid: 5001, tid: 1, cpus: "0-3", timerSlackNs: 50000, ioprio: 0 },
      { hostTid: 5007, tid: 7, cpus: "0-3", timerSlackNs: 50000, ioprio: 0 },
    ]);
  });

  test("sets each change; a thread gone is skipped, a failure is reported and the rest is still set", () => {
    const t = { nspid: [1], cpus: "0-3", slack: 50000, ioprio: 0 };
    const { access, set } = fakeAccess({ 1: { 5001: t, 5007: t, 5008: t } }, new Set([5008]), new Set([5007]));
    const r = applyThreadStates(
      [
        { hostTid: 5001, tid: 1, cpus: [1], timerSlackNs: 123457, ioprio: BE(3) },
        { hostTid: 5007, tid: 7, timerSlackNs: 1 },
        { hostTid: 5008, tid: 8, cpus: [0] },
      ],
      access,
    );
    expect(set).toEqual([`5001 cpus 1`, `5001 slack 123457`, `5001 ioprio ${BE(3)}`]);
    expect(r.changed).toEqual(["thread 1 (host 5001): cpus 1, timer slack 123457 ns, ioprio class 2 level 3"]);
    expect(r.failed).toEqual(["thread 7 (host 5007): timer slack 1 ns: slack 1: Operation not permitted"]);
    expect(r.notes).toEqual([]);
  });

  test("CPUs the container may not use here are cut by the kernel and said; an affinity with none of them keeps the thread where it was, said too", () => {
    const { access, set } = fakeAccess({
      1: {
        5007: { nspid: [7], cpus: "0-3", slack: 50000, ioprio: 0 },
        5009: { nspid: [9], cpus: "0-3", slack: 50000, ioprio: 0 },
      },
    });
    const r = applyThreadStates(
      [
        { hostTid: 5007, tid: 7, cpus: [2, 3, 4, 5], cpusBefore: "0-3" },
        { hostTid: 5009, tid: 9, cpus: [6, 7], cpusBefore: "0-3", timerSlackNs: 1000 },
      ],
      access,
    );
    expect(set).toEqual(["5007 cpus 2,3,4,5", "5009 slack 1000"]);
    expect(r.changed).toEqual(["thread 7 (host 5007): cpus 2-5", "thread 9 (host 5009): timer slack 1000 ns"]);
    expect(r.notes).toEqual([
      "thread 7: CPUs 4-5 of its affinity 2-5 may not be used here (the container's cpuset, online): bound to 2-3",
      "thread 9: none of its CPUs 6-7 may be used here (the container's cpuset, online): left on 0-3",
    ]);
    expect(r.failed).toEqual([]);
  });
});
