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

/**
 * `promise`, or the caller's abort (callerAbortReason) when its signal aborts first. Then nothing of the call stays
 * subscribed to `promise`: a promise cannot drop a callback, so all calls share one callback per promise (`settled`).
 */
export function unlessCallerGone<T>(promise: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(callerAbortReason(what, signal));
  return new Promise<T>((resolve, reject) => {
    const onSettled = (r: PromiseSettledResult<unknown>) => {
      signal.removeEventListener("abort", onAbort);
      if (r.status === "fulfilled") resolve(r.value as T);
      else reject(r.reason);
    };
    const onAbort = () => {
      callbacks.delete(onSettled);
      reject(callerAbortReason(what, signal));
    };
    const callbacks = settled(promise);
    callbacks.add(onSettled);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

const subscribers = new WeakMap<Promise<unknown>, Set<(r: PromiseSettledResult<unknown>) => void>>();

/** The callbacks called once `promise` settles (one subscription to it, however many callers come and go). */
function settled(promise: Promise<unknown>): Set<(r: PromiseSettledResult<unknown>) => void> {
  let set = subscribers.get(promise);
  if (set !== undefined) return set;
  const callbacks = (set = new Set());
  subscribers.set(promise, callbacks);
  const call = (r: PromiseSettledResult<unknown>) => {
    subscribers.delete(promise); // a later caller subscribes anew (and is called at once)
    for (const f of [...callbacks]) f(r);
    callbacks.clear();
  };
  promise.then(
    (value) => call({ status: "fulfilled", value }),
    (reason: unknown) => call({ status: "rejected", reason }),
  );
  return callbacks;
}

function isDeadline(signal: AbortSignal | undefined): boolean {
  const reason: unknown = signal?.reason;
  return reason instanceof CryoError && reason.code === Code.DEADLINE_EXCEEDED;
}
