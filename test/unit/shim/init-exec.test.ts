import { expect, test } from "bun:test";
import { awaitInitExec, RUNC_INIT_COMM, runcInitPending } from "../../../src/shim/init-exec.ts";

/** A fake clock and a comm that turns from runc init into the program's name at execAt (undefined: never). */
function fake(execAt: number | undefined) {
  let t = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    opts: {
      now: () => t,
      sleep: async (ms: number) => {
        sleeps.push(ms);
        t += ms;
      },
      comm: () => (execAt !== undefined && t >= execAt ? "memhog" : RUNC_INIT_COMM),
    },
  };
}

test("runcInitPending: true only for runc's init name (an exec'd or gone init is not pending)", () => {
  expect(runcInitPending(1, () => "runc:[2:INIT]")).toBe(true);
  expect(runcInitPending(1, () => "sh")).toBe(false);
  expect(runcInitPending(1, () => "runc")).toBe(false);
  expect(runcInitPending(1, () => undefined)).toBe(false);
});

test("awaitInitExec: an init that already exec'd resolves at once, without sleeping", async () => {
  const f = fake(0);
  expect(await awaitInitExec(7, f.opts)).toBe(true);
  expect(f.sleeps).toEqual([]);
});

test("awaitInitExec: waits for the exec, polling from 1 ms up to 20 ms", async () => {
  const f = fake(100);
  expect(await awaitInitExec(7, { ...f.opts, timeoutMs: 2_000 })).toBe(true);
  expect(f.sleeps.slice(0, 6)).toEqual([1, 2, 4, 8, 16, 20]);
  expect(f.sleeps.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(100);
  expect(f.sleeps.reduce((a, b) => a + b, 0)).toBeLessThan(125);
});

test("awaitInitExec: an init still runc init at the deadline resolves false, having waited exactly timeoutMs", async () => {
  const f = fake(undefined);
  expect(await awaitInitExec(7, { ...f.opts, timeoutMs: 300 })).toBe(false);
  expect(f.sleeps.reduce((a, b) => a + b, 0)).toBe(300);
});
