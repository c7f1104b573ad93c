/**
 * Another process's resource limits: prlimit(2) (glibc's prlimit, 64-bit limits on LP64).
 *
 * Reading or setting another process's limits takes CAP_SYS_RESOURCE, or a caller whose real uid matches the
 * target's real, effective and saved uids and gids; raising a hard limit always takes CAP_SYS_RESOURCE.
 */
import { ptr } from "bun:ffi";
import { libc, sysError } from "./libc.ts";

/** A resource's soft (cur) and hard (max) limit; RLIM_INFINITY is 2^64-1. */
export interface ResourceLimit {
  soft: bigint;
  hard: bigint;
}

/** The soft and hard limit of `resource` (RLIMIT_* number) of process pid. */
export function processLimit(pid: number, resource: number): ResourceLimit {
  const old = new BigUint64Array(2);
  if (libc.prlimit(pid, resource, null, ptr(old)) !== 0) throw sysError(`prlimit(${pid}, ${resource})`);
  return { soft: old[0]!, hard: old[1]! };
}

/** Sets the soft and hard limit of `resource` of process pid. */
export function setProcessLimit(pid: number, resource: number, limit: ResourceLimit): void {
  const next = new BigUint64Array([limit.soft, limit.hard]);
  if (libc.prlimit(pid, resource, ptr(next), null) !== 0) throw sysError(`prlimit(${pid}, ${resource}, ${limit.soft}:${limit.hard})`);
}
