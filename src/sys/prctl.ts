/** Process controls through prctl(2). */
import { ptr } from "bun:ffi";
import { libc, sysError } from "./libc.ts";

const PR_SET_CHILD_SUBREAPER = 36;
const PR_GET_CHILD_SUBREAPER = 37;

/** Makes this process a child subreaper: orphaned descendants are reparented to it instead of to init. */
export function setChildSubreaper(on = true): void {
  if (libc.prctl(PR_SET_CHILD_SUBREAPER, on ? 1n : 0n, 0n, 0n, 0n) !== 0) throw sysError("prctl(PR_SET_CHILD_SUBREAPER)");
}

/** Tells whether this process is a child subreaper. */
export function isChildSubreaper(): boolean {
  const out = new Int32Array(1);
  // arg2 is an int* for PR_GET_CHILD_SUBREAPER; pass the buffer's address as an integer.
  if (libc.prctl(PR_GET_CHILD_SUBREAPER, BigInt(ptr(out)), 0n, 0n, 0n) !== 0) throw sysError("prctl(PR_GET_CHILD_SUBREAPER)");
  return out[0] !== 0;
}
