import { expect, test } from "bun:test";
import { killCriuAtOnce, killsAtOnce } from "../../../src/criu/abort-reason.ts";
import { Code, CryoError } from "../../../src/errors.ts";

test("a marked reason says so, through AbortSignal.any too; others do not", () => {
  const reason = killCriuAtOnce(new CryoError(Code.CANCELLED, "task killed while checkpointing"));
  expect(killsAtOnce(reason)).toBe(true);
  expect(reason.message).toBe("task killed while checkpointing");
  const source = new AbortController();
  const any = AbortSignal.any([source.signal, new AbortController().signal]);
  source.abort(reason);
  expect(killsAtOnce(any.reason)).toBe(true);
  expect(killsAtOnce(new CryoError(Code.DEADLINE_EXCEEDED, "deadline"))).toBe(false);
  expect(killsAtOnce(undefined)).toBe(false);
  expect(killsAtOnce("killed")).toBe(false);
});
