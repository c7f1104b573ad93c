import { expect, test } from "bun:test";
import { wallClock, type WallTime } from "../../../src/sys/index.ts";

const ns = (t: WallTime) => t.seconds * 1_000_000_000n + BigInt(t.nanos);

test("wallClock reads the realtime clock: Date's time, in range, never going back between two reads", () => {
  const d0 = Date.now();
  const t = wallClock();
  const d1 = Date.now();
  expect(t.nanos).toBeGreaterThanOrEqual(0);
  expect(t.nanos).toBeLessThan(1_000_000_000);
  expect(ns(t) / 1_000_000n).toBeGreaterThanOrEqual(BigInt(d0));
  expect(ns(t) / 1_000_000n).toBeLessThanOrEqual(BigInt(d1));
  let prev = ns(wallClock());
  for (let i = 0; i < 1000; i++) {
    const next = ns(wallClock());
    expect(next).toBeGreaterThanOrEqual(prev);
    prev = next;
  }
});

test("wallClock resolves below a millisecond, which a Date cannot", () => {
  // 1000 reads all at whole milliseconds would take a millisecond-resolution clock.
  const reads = Array.from({ length: 1000 }, () => wallClock().nanos);
  expect(reads.some((n) => n % 1_000_000 !== 0)).toBe(true);
});
