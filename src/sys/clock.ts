/**
 * The wall clock at nanosecond resolution: clock_gettime(CLOCK_REALTIME), as Go's time.Now() reads it.
 *
 * containerd's timestamps (a process's exited_at, an event envelope's timestamp) are protobuf Timestamps with
 * nanoseconds; containerd's runc shim fills them from time.Now(). A JavaScript Date holds milliseconds only, so
 * two exits within one millisecond would look simultaneous and an exit's time would lose its sub-millisecond
 * part. WallTime has a Timestamp's shape, so it passes into a Timestamp's init as it is.
 */
import { ptr } from "bun:ffi";
import { libc, sysError } from "./libc.ts";

/** An instant: whole seconds since the Unix epoch and the nanoseconds within that second (0 to 999,999,999). */
export interface WallTime {
  readonly seconds: bigint;
  readonly nanos: number;
}

const CLOCK_REALTIME = 0;
const timespec = new BigInt64Array(2); // struct timespec {tv_sec; tv_nsec} on LP64
const timespecPtr = ptr(timespec);

/** Now, from the kernel's realtime clock. */
export function wallClock(): WallTime {
  if (libc.clock_gettime(CLOCK_REALTIME, timespecPtr) !== 0) throw sysError("clock_gettime(CLOCK_REALTIME)");
  return { seconds: timespec[0]!, nanos: Number(timespec[1]!) };
}

/**
 * An instant as Go's time.RFC3339Nano formats a UTC time ("2006-01-02T15:04:05.999999999Z07:00"): the fraction
 * with its trailing zeros dropped, and no dot when it is zero. runc writes state.json's `created` so.
 */
export function rfc3339Nano(t: WallTime): string {
  const base = new Date(Number(t.seconds) * 1000).toISOString().slice(0, 19);
  return `${base}${goFraction(String(t.nanos).padStart(9, "0"))}Z`;
}

/** A timestamp string with its fraction of a second as Go's RFC3339Nano prints it (trailing zeros dropped); others as they are. */
export function goRfc3339Nano(text: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!m) return text;
  return `${m[1]}${goFraction(m[2] ?? "")}${m[3] === "+00:00" || m[3] === "-00:00" ? "Z" : m[3]}`;
}

function goFraction(digits: string): string {
  const trimmed = digits.replace(/0+$/, "");
  return trimmed === "" ? "" : `.${trimmed}`;
}
