import type { PrivateContainerd } from "../../src/containerd/index.ts";

/** The task's STATUS column from `ctr task ls` (RUNNING, STOPPED, PAUSED, ...), or undefined when it has no task. */
export async function taskStatus(pc: PrivateContainerd, id: string, namespace = pc.namespace): Promise<string | undefined> {
  const out = await pc.ctrOk(["task", "ls"], { namespace });
  return out
    .split("\n")
    .find((l) => l.split(/\s+/)[0] === id)
    ?.trim()
    .split(/\s+/)[2];
}
