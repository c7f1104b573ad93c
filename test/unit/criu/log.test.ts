import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { criuLogErrors, criuVersionFromLog } from "../../../src/criu/log.ts";

const dir = mkdtempSync(join(tmpdir(), "cryo-criu-log-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const log = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

test("CRIU's version comes from the Version line at the start of its log, numbered as libcriu does", () => {
  // The first lines of a level-4 dump.log through libcriu (CRIU 4.2.1 on this host).
  expect(criuVersionFromLog(log("a.log", "(00.000000) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n(00.000075) Version: 4.2.1 (gitid 0)\n(00.000120) Running on host\n"))).toBe(40201);
  expect(criuVersionFromLog(log("b.log", "(00.000075) Version: 3.19 (gitid v3.19)\n"))).toBe(31900);
  expect(criuVersionFromLog(log("c.log", "(00.000075) Preparing image inventory (version 1)\n"))).toBeUndefined();
  expect(criuVersionFromLog(log("d.log", ""))).toBeUndefined();
  expect(criuVersionFromLog(join(dir, "missing.log"))).toBeUndefined();
  // Only the head is read: a Version line far into the log (not CRIU's start) is not taken.
  expect(criuVersionFromLog(log("e.log", `${"(00.1) x\n".repeat(1000)}(00.2) Version: 9.9.9 (gitid 0)\n`))).toBeUndefined();
});

test("a seize refused with EPERM (a traced task) keeps compel's warning among the error lines: CRIU's own errors call the task a zombie", () => {
  const log = [
    "(00.004170) Warn  (compel/src/lib/infect.c:132): Unable to interrupt task: 15252 (Operation not permitted)",
    "(00.004176) Error (criu/seize.c:335): zombie 15252 (comm prog) found while seizing",
    "(00.004200) Warn  (criu/something.c:1): an unrelated warning",
  ].join("\n");
  expect(criuLogErrors(log)).toEqual([
    "(00.004170) Warn  (compel/src/lib/infect.c:132): Unable to interrupt task: 15252 (Operation not permitted)",
    "(00.004176) Error (criu/seize.c:335): zombie 15252 (comm prog) found while seizing",
  ]);
});
