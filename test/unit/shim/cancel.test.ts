/** cancel.ts: a cancelled call's reason says whether its caller is still there. */
import { expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import { callerAbortReason, callerGoneWords, isCallerGone } from "../../../src/shim/cancel.ts";

test("a deadline is DEADLINE_EXCEEDED and leaves a caller; a closed connection is CANCELLED and a caller gone, also through causes", () => {
  const deadline = new AbortController();
  deadline.abort(new CryoError(Code.DEADLINE_EXCEEDED, "containerd.task.v2.Task/Checkpoint: context deadline exceeded"));
  const closed = new AbortController();
  closed.abort(new CryoError(Code.UNAVAILABLE, "ttrpc: connection closed"));
  const d = callerAbortReason("checkpoint container c1", deadline.signal);
  const g = callerAbortReason("checkpoint container c1", closed.signal);
  expect([d.code, d.message]).toEqual([Code.DEADLINE_EXCEEDED, "checkpoint container c1: cancelled: the request's deadline passed"]);
  expect([g.code, g.message]).toEqual([Code.CANCELLED, "checkpoint container c1: cancelled: the caller went away (connection closed)"]);
  expect(isCallerGone(d)).toBe(false);
  expect(isCallerGone(g)).toBe(true);
  expect(isCallerGone(new CryoError(Code.CANCELLED, "criu dump: context canceled", { cause: g }))).toBe(true);
  // The same words, made anew, are not a caller gone: only the reason itself counts.
  expect(isCallerGone(new CryoError(Code.CANCELLED, g.message))).toBe(false);
  expect(callerGoneWords(deadline.signal)).toBe("the request's deadline passed");
  expect(callerGoneWords(undefined)).toBe("the caller went away (connection closed)");
});
