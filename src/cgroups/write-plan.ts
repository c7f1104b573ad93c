/**
 * A resource update as an ordered list of cgroupfs writes, planned by pure code (v1-update.ts,
 * v2-update.ts) and applied here one write at a time, in order.
 */
import { join } from "node:path";
import { CryoError, Code, failedPrecondition } from "../errors.ts";
import { writeValue } from "./cgroupfs.ts";

/** One write: `value` into `file` in the directory of `controller` ("" for the v2 unified directory). */
export interface CgroupWrite {
  controller: string;
  file: string;
  value: string;
}

/** A step: one write, or two writes the kernel may need in either order (tried as given, then reversed). */
export type PlanStep = CgroupWrite | { either: [CgroupWrite, CgroupWrite] };

/** Applies a plan against controller -> directory; stops at the first failure, which names the file. */
export async function applyPlan(plan: readonly PlanStep[], dirs: Record<string, string>): Promise<void> {
  const write = async (w: CgroupWrite) => {
    const dir = dirs[w.controller];
    if (dir === undefined) {
      throw failedPrecondition(`cgroup controller ${w.controller}`, { detail: `not available to write ${w.file}` });
    }
    try {
      await writeValue(join(dir, w.file), w.value);
    } catch (err) {
      if (err instanceof CryoError && err.code === Code.NOT_FOUND) {
        throw failedPrecondition(`cgroup file ${join(dir, w.file)}`, {
          cause: err,
          detail: "does not exist (controller not enabled or not supported by this kernel)",
        });
      }
      throw err;
    }
  };
  for (const step of plan) {
    if ("either" in step) {
      const [a, b] = step.either;
      try {
        await write(a);
        await write(b);
      } catch (first) {
        try {
          await write(b);
          await write(a);
        } catch {
          throw first;
        }
      }
    } else {
      await write(step);
    }
  }
}
