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
