/** The fair limiter of the daemon's exec slots: at most `limit` at once, and a freed slot goes to the next key in turn. */
import { expect, test } from "bun:test";
import { createFairLimiter } from "../../../src/shim/fair-limiter.ts";

/** A job that runs until released, recording when it started. */
function gate(started: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  return { job: async () => (started.push(name), await done, name), release };
}

const settle = () => Bun.sleep(0);

test("at most `limit` jobs run at once; the others wait and start as slots free", async () => {
  const l = createFairLimiter(2);
  const started: string[] = [];
  const gates = ["a", "b", "c", "d"].map((n) => gate(started, n));
  const results = gates.map((g) => l.run("k", g.job));
  await settle();
  expect(started).toEqual(["a", "b"]);
  expect([l.active, l.waiting]).toEqual([2, 2]);
  gates[0]!.release();
  await results[0];
  await settle();
  expect(started).toEqual(["a", "b", "c"]);
  for (const g of gates) g.release();
  expect(await Promise.all(results)).toEqual(["a", "b", "c", "d"]);
  expect([l.active, l.waiting]).toEqual([0, 0]);
});

test("a freed slot goes to the next key in turn: one key's hundred waiting jobs delay another key's job by one", async () => {
  const l = createFairLimiter(1);
  const started: string[] = [];
  const first = gate(started, "flood-0");
  const all = [l.run("flood", first.job)];
  const flood = Array.from({ length: 100 }, (_, i) => gate(started, `flood-${i + 1}`));
  for (const g of flood) all.push(l.run("flood", g.job));
  const quiet = gate(started, "quiet");
  all.push(l.run("quiet", quiet.job));
  const other = gate(started, "other");
  all.push(l.run("other", other.job));
  await settle();
  expect(started).toEqual(["flood-0"]);
  first.release();
  await all[0];
  await settle();
  // flood's next, then quiet, then other: each key in turn (flood's turn came first, it queued first).
  expect(started).toEqual(["flood-0", "flood-1"]);
  flood[0]!.release();
  await settle();
  await settle();
  expect(started.at(-1)).toBe("quiet");
  quiet.release();
  await settle();
  await settle();
  expect(started.at(-1)).toBe("other");
  other.release();
  for (const g of flood) g.release();
  await Promise.all(all);
  expect(started.length).toBe(103);
});

test("a job that throws frees its slot; raising the limit starts waiting jobs at once; a limit below 1 is refused", async () => {
  const l = createFairLimiter(1);
  await expect(l.run("k", () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
  await expect(l.run("k", () => { throw new Error("sync"); })).rejects.toThrow("sync");
  expect(l.active).toBe(0);
  const started: string[] = [];
  const gates = ["a", "b", "c"].map((n) => gate(started, n));
  const results = gates.map((g, i) => l.run(`k${i}`, g.job));
  await settle();
  expect(started).toEqual(["a"]);
  l.limit = 3;
  await settle();
  expect(started).toEqual(["a", "b", "c"]);
  for (const g of gates) g.release();
  await Promise.all(results);
  expect(() => (l.limit = 0)).toThrow(RangeError);
  expect(() => createFairLimiter(1.5)).toThrow(RangeError);
});

test("with a lease, a job running past it gives its slot up and runs on; one done in time frees its slot once", async () => {
  const l = createFairLimiter(1, { leaseMs: 40 });
  const started: string[] = [];
  const stuck = gate(started, "stuck");
  const stuckDone = l.run("a", stuck.job);
  const next = gate(started, "next");
  const nextDone = l.run("b", next.job);
  await settle();
  expect(started).toEqual(["stuck"]);
  expect([l.active, l.waiting]).toEqual([1, 1]);
  await Bun.sleep(80);
  // The stuck job lost its slot, not its run: the next one started beside it.
  expect(started).toEqual(["stuck", "next"]);
  expect([l.active, l.waiting]).toEqual([1, 0]);
  next.release();
  expect(await nextDone).toBe("next");
  expect(l.active).toBe(0);
  // The stuck one ends later: its slot was given up already, so the count stays right.
  stuck.release();
  expect(await stuckDone).toBe("stuck");
  expect([l.active, l.waiting]).toEqual([0, 0]);
  const quick = gate(started, "quick");
  const quickDone = l.run("a", quick.job);
  quick.release();
  await quickDone;
  await Bun.sleep(60); // past its lease: nothing is freed twice
  expect(l.active).toBe(0);
  const two = [gate(started, "x"), gate(started, "y")];
  const twoDone = two.map((g) => l.run("a", g.job));
  await settle();
  expect(started.slice(-1)).toEqual(["x"]);
  for (const g of two) g.release();
  await Promise.all(twoDone);
});
