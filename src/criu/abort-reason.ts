/**
 * What an abort's reason can say to the CRIU client (src/criu/client.ts), kept apart so that callers need not load
 * the client to say it.
 */
const KILL_AT_ONCE = Symbol.for("cryo.criu.killAtOnce");

/**
 * Marks an abort reason: CRIU is killed at once rather than asked to stop (see runHelper). For an abort whose tasks are
 * being killed anyway (a Kill with SIGKILL during a dump): nothing is gained by waiting for CRIU's own cleanup, and a
 * hung CRIU would hold the kill back by ABORT_GRACE_MS.
 */
export function killCriuAtOnce<T extends object>(reason: T): T {
  Object.defineProperty(reason, KILL_AT_ONCE, { value: true });
  return reason;
}

export function killsAtOnce(reason: unknown): boolean {
  return typeof reason === "object" && reason !== null && (reason as { [KILL_AT_ONCE]?: boolean })[KILL_AT_ONCE] === true;
}
