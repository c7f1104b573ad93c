// cryo check's pure parts: CRIU's version number as text, the cgroup layout from a cgroup root, the report's lines.
import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupLayout, criuVersionText, formatChecks, MIN_CRIU_VERSION } from "../../../src/cli/check-command.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fake cgroup root with these files and directories. */
function root(entries: string[]): string {
  const d = mkdtempSync(join(tmpdir(), "cryo-check-"));
  dirs.push(d);
  for (const e of entries) {
    if (e.endsWith("/")) mkdirSync(join(d, e), { recursive: true });
    else {
      mkdirSync(join(d, e, ".."), { recursive: true });
      writeFileSync(join(d, e), "");
    }
  }
  return d;
}

test("CRIU's version number reads as CRIU prints it", () => {
  expect(criuVersionText(40201)).toBe("4.2.1");
  expect(criuVersionText(MIN_CRIU_VERSION)).toBe("4.2");
  expect(criuVersionText(31700)).toBe("3.17");
});

test("the cgroup layout: v2, hybrid with a freezer, v1 without one (a failure: pause and checkpoint need it)", () => {
  expect(cgroupLayout(root(["cgroup.controllers"]))).toMatchObject({ status: "ok", detail: expect.stringContaining("cgroup v2") });
  const hybrid = root(["freezer/", "unified/cgroup.controllers"]);
  expect(cgroupLayout(hybrid)).toMatchObject({ status: "ok", detail: `hybrid: v1 controllers with cgroup2 at ${join(hybrid, "unified")}; v1 freezer at ${join(hybrid, "freezer")}` });
  expect(cgroupLayout(root(["cpu/", "memory/"]))).toMatchObject({ status: "fail", detail: expect.stringContaining("cgroup v1, without a v1 freezer") });
});

test("the report: one aligned line per check, then the counts", () => {
  const text = formatChecks([
    { check: "runc", status: "ok", detail: "runc version 1.1.5" },
    { check: "pre-dump", status: "warn", detail: "no soft-dirty" },
    { check: "criu binary", status: "fail", detail: "/x: not found" },
  ]);
  expect(text.split("\n")).toEqual([
    "ok    runc         runc version 1.1.5",
    "warn  pre-dump     no soft-dirty",
    "fail  criu binary  /x: not found",
    "cryo check: 1 ok, 1 warning(s), 1 failure(s)",
  ]);
});
