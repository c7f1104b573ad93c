import { expect, test } from "bun:test";
import { wallClock, type WallTime } from "../../../src/sys/index.ts";
import { goRfc3339Nano, rfc3339Nano } from "../../../src/sys/clock.ts";

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

test("rfc3339Nano formats as Go's time.RFC3339Nano (runc's state.json created): trailing zeros dropped, no dot for whole seconds", () => {
  expect(rfc3339Nano({ seconds: 1_796_034_675n, nanos: 353_825_879 })).toBe("2026-11-30T10:31:15.353825879Z");
  expect(rfc3339Nano({ seconds: 1_796_034_675n, nanos: 580_000_000 })).toBe("2026-11-30T10:31:15.58Z");
  expect(rfc3339Nano({ seconds: 1_796_034_675n, nanos: 0 })).toBe("2026-11-30T10:31:15Z");
  expect(rfc3339Nano({ seconds: 1_796_034_675n, nanos: 7 })).toBe("2026-11-30T10:31:15.000000007Z");
  expect(goRfc3339Nano("2026-11-30T10:37:55.580Z")).toBe("2026-11-30T10:37:55.58Z");
  expect(goRfc3339Nano("2026-11-30T10:37:55.353825879Z")).toBe("2026-11-30T10:37:55.353825879Z");
  expect(goRfc3339Nano("2026-11-30T10:37:55.000+00:00")).toBe("2026-11-30T10:37:55Z");
  expect(goRfc3339Nano("2026-11-30T10:37:55.5+02:00")).toBe("2026-11-30T10:37:55.5+02:00");
  expect(goRfc3339Nano("yesterday")).toBe("yesterday");
});
