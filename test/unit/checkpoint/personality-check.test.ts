import { expect, test } from "bun:test";
import { personalityLoss, recordedPersonalityLoss, showPersonality, threadPersonalities, type PersonalityAccess } from "../../../src/checkpoint/personality-check.ts";

test("the execution domain and the flags the running task depends on are told from those read only at execve", () => {
  expect(personalityLoss(0)).toEqual({ whileRunning: [], atExec: [] });
  expect(personalityLoss(0x0008)).toEqual({ whileRunning: ["PER_LINUX32"], atExec: [] }); // setarch linux32
  expect(personalityLoss(0x0020000)).toEqual({ whileRunning: ["UNAME26"], atExec: [] }); // setarch --uname-2.6
  expect(personalityLoss(0x0040000)).toEqual({ whileRunning: [], atExec: ["ADDR_NO_RANDOMIZE"] }); // setarch -R
  expect(personalityLoss(0x0400000 | 0x0040000)).toEqual({ whileRunning: ["READ_IMPLIES_EXEC"], atExec: ["ADDR_NO_RANDOMIZE"] });
  expect(personalityLoss(0x4000000 | 0x0800000 | 0x8000000)).toEqual({ whileRunning: ["ADDR_LIMIT_32BIT", "STICKY_TIMEOUTS", "ADDR_LIMIT_3GB"], atExec: [] });
  expect(personalityLoss(0x0100000 | 0x0200000 | 0x1000000 | 0x2000000)).toEqual({ whileRunning: [], atExec: ["MMAP_PAGE_ZERO", "ADDR_COMPAT_LAYOUT", "SHORT_INODE", "WHOLE_SECONDS"] });
  expect(personalityLoss(0x0011)).toEqual({ whileRunning: ["execution domain 0x11"], atExec: [] });
  expect(personalityLoss(0x10000000)).toEqual({ whileRunning: ["unknown flags 0x10000000"], atExec: [] });
});

test("threadPersonalities lists the threads not at 0, read as /proc prints them (hex); threads gone are skipped", () => {
  const values: Record<number, number> = { 10: 0, 11: 0x40000, 20: 0x8 };
  const access: PersonalityAccess = {
    tids: (pid) => {
      if (pid === 10) return [10, 11, 12];
      if (pid === 20) return [20];
      throw new Error("ENOENT");
    },
    personality: (tid) => {
      const v = values[tid];
      if (v === undefined) throw new Error("ENOENT");
      return v;
    },
  };
  expect(threadPersonalities([10, 20, 30], access)).toEqual([
    { pid: 10, tid: 11, value: 0x40000, whileRunning: [], atExec: ["ADDR_NO_RANDOMIZE"] },
    { pid: 20, tid: 20, value: 8, whileRunning: ["PER_LINUX32"], atExec: [] },
  ]);
  expect(showPersonality(0x40000)).toBe("0x00040000");
});

test("recordedPersonalityLoss sorts what a CRIU that sets no personality loses of the recorded ones", () => {
  expect(recordedPersonalityLoss([{ pid: 1, tid: 1, value: 0x8 }, { pid: 7, tid: 9, value: 0x40000 }])).toEqual([
    { pid: 1, tid: 1, value: 0x8, whileRunning: ["PER_LINUX32"], atExec: [] },
    { pid: 7, tid: 9, value: 0x40000, whileRunning: [], atExec: ["ADDR_NO_RANDOMIZE"] },
  ]);
});
