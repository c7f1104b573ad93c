/** scripts/test-shards.ts: how scripts/test.sh splits the integration files into parallel bun test processes. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_SECONDS, durationsFromJunit, parseDurations, planShards } from "../../../scripts/test-shards.ts";

test("longest first onto the lightest shard, each shard in the files' order", () => {
  const seconds = new Map([
    ["a", 10],
    ["b", 7],
    ["c", 6],
    ["d", 4],
    ["e", 3],
  ]);
  // a (10) -> shard 0; b (7) -> 1; c (6) -> 1 (7 < 10; now 13); d (4) -> 0 (10 < 13; now 14); e (3) -> 1 (13 < 14).
  expect(planShards(["a", "b", "c", "d", "e"], 2, seconds, [])).toEqual([
    ["a", "d"],
    ["b", "c", "e"],
  ]);
});

test("a pinned group stays in one shard and weighs the sum of its members", () => {
  const seconds = new Map([
    ["big", 10],
    ["p1", 6],
    ["p2", 6],
    ["x", 1],
  ]);
  const shards = planShards(["big", "p1", "x", "p2"], 2, seconds, [["p1", "p2", "absent"]]);
  // The group (12) goes first, alone; big (10) to the other shard, then x (1) there too.
  expect(shards).toEqual([
    ["p1", "p2"],
    ["big", "x"],
  ]);
});

test("every file is in exactly one shard; unknown files count as the default", () => {
  const files = Array.from({ length: 9 }, (_, i) => `f${i}`);
  const shards = planShards(files, 3, new Map([["f0", DEFAULT_SECONDS * 4]]), []);
  expect(shards.flat().sort()).toEqual([...files].sort());
  // f0 alone weighs as much as four others: its shard takes no more than two of the eight others.
  const withF0 = shards.find((s) => s.includes("f0"))!;
  expect(withF0.length).toBeLessThanOrEqual(3);
  expect(shards.every((s) => s.length > 0)).toBe(true);
});

test("more shards than files leaves shards empty; one shard holds everything; a bad count is refused", () => {
  expect(planShards(["a"], 3, new Map(), [])).toEqual([["a"], [], []]);
  expect(planShards(["b", "a"], 1, new Map(), [])).toEqual([["b", "a"]]);
  expect(() => planShards(["a"], 0, new Map(), [])).toThrow("not a positive integer");
});

test("durations: SECONDS FILE lines, comments and blanks skipped, anything else refused", () => {
  expect(parseDurations("# x\n\n12.5 a.test.ts\n3 b.test.ts\n")).toEqual(
    new Map([
      ["a.test.ts", 12.5],
      ["b.test.ts", 3],
    ]),
  );
  expect(() => parseDurations("a.test.ts 12\n")).toThrow("bad line");
});

test("durations from bun's JUnit report: the top-level testsuite of each file, not the describe blocks inside", () => {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="bun test" tests="3" assertions="3" failures="0" skipped="0" time="9">
  <testsuite name="test/integration/a.test.ts" file="test/integration/a.test.ts" tests="2" assertions="2" failures="0" skipped="0" time="7.25" hostname="vm">
    <testsuite name="inner" file="test/integration/a.test.ts" line="4" tests="2" assertions="2" failures="0" skipped="0" time="7" hostname="vm">
    </testsuite>
  </testsuite>
  <testsuite name="test/integration/b.test.ts" file="test/integration/b.test.ts" tests="1" assertions="1" failures="0" skipped="0" time="1.5" hostname="vm">
  </testsuite>
</testsuites>`;
  expect(durationsFromJunit(xml)).toEqual(
    new Map([
      ["a.test.ts", 7.25],
      ["b.test.ts", 1.5],
    ]),
  );
});

test("the committed durations file parses and names only files that exist in test/integration", () => {
  const dir = join(import.meta.dir, "../../integration");
  const seconds = parseDurations(readFileSync(join(dir, "durations.txt"), "utf8"));
  expect(seconds.size).toBeGreaterThan(10);
  for (const f of seconds.keys()) expect(() => readFileSync(join(dir, f))).not.toThrow();
});
