import type { PrivateContainerd } from "../../src/containerd/index.ts";
import { taskStatus } from "./task-status.ts";
import { waitFor } from "./wait-for.ts";

/** Options for removeContainer. */
export interface RemoveContainerOptions {
  /** When the killed task counts as stopped: its status is STOPPED (default), or it is merely no longer RUNNING/PAUSED. */
  stopped?: "STOPPED" | "not-running";
  /** Ignore a failing `ctr containers rm` (e.g. the container was never created); default false: it throws. */
  ignoreRmFailure?: boolean;
}

/** Kills the container's task (if any) with SIGKILL, waits for it to stop, removes the task, then removes the container. */
export async function removeContainer(pc: PrivateContainerd, id: string, options: RemoveContainerOptions = {}): Promise<void> {
  if ((await taskStatus(pc, id)) !== undefined) {
    await pc.ctr(["task", "kill", "-s", "KILL", id]);
    const done = async (): Promise<boolean> => {
      const status = await taskStatus(pc, id);
      return options.stopped === "not-running" ? status !== "RUNNING" && status !== "PAUSED" : status === "STOPPED";
    };
    await waitFor(done, { what: `${id} stopped` });
    await pc.ctrOk(["task", "rm", id]);
  }
  if (options.ignoreRmFailure === true) await pc.ctr(["containers", "rm", id]);
  else await pc.ctrOk(["containers", "rm", id]);
}
