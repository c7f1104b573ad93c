/**
 * Why a call of a container was cancelled, for the errors and for what the cancellation leaves: a caller whose
 * deadline passed is still there (containerd cleans up after it), one whose connection closed is not.
 */
import { Code, CryoError } from "../errors.ts";

// The errors that say the caller went away (its connection closed), by identity.
const gone = new WeakSet<CryoError>();

/** The reason a call aborts with when its caller's signal aborted: DEADLINE_EXCEEDED for a deadline, CANCELLED otherwise. */
export function callerAbortReason(what: string, signal: AbortSignal | undefined): CryoError {
  if (isDeadline(signal)) return new CryoError(Code.DEADLINE_EXCEEDED, `${what}: cancelled: the request's deadline passed`);
  const e = new CryoError(Code.CANCELLED, `${what}: cancelled: the caller went away (connection closed)`);
  gone.add(e);
  return e;
}

/** Why a caller's signal aborted, in words: its deadline, or its connection. */
export function callerGoneWords(signal: AbortSignal | undefined): string {
  return isDeadline(signal) ? "the request's deadline passed" : "the caller went away (connection closed)";
}

/** Whether err is (or was caused by) a callerAbortReason for a closed connection. */
export function isCallerGone(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof CryoError && gone.has(e)) return true;
  return false;
}

function isDeadline(signal: AbortSignal | undefined): boolean {
  const reason: unknown = signal?.reason;
  return reason instanceof CryoError && reason.code === Code.DEADLINE_EXCEEDED;
}
