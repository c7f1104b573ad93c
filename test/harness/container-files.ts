import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PrivateContainerd } from "../../src/containerd/index.ts";

/** The host path of a running container's rootfs (the bundle's rootfs mount in containerd's state dir). */
export function containerRootfs(pc: PrivateContainerd, id: string, namespace = pc.namespace): string {
  return join(pc.state, "io.containerd.runtime.v2.task", namespace, id, "rootfs");
}

/** Reads a file inside a running container through its rootfs, trimmed; undefined when absent or empty. */
export function readContainerFile(pc: PrivateContainerd, id: string, path: string, namespace = pc.namespace): string | undefined {
  try {
    const text = readFileSync(join(containerRootfs(pc, id, namespace), path), "utf8").trim();
    return text === "" ? undefined : text;
  } catch {
    return undefined;
  }
}

/** The counter memhog writes (a whole number), or undefined before the first write. */
export function readCounter(pc: PrivateContainerd, id: string, path = "/tmp/counter", namespace = pc.namespace): number | undefined {
  const text = readContainerFile(pc, id, path, namespace);
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** The task's host pid from `ctr tasks ls`, or undefined when it has no task. */
export async function taskPid(pc: PrivateContainerd, id: string, namespace = pc.namespace): Promise<number | undefined> {
  const out = await pc.ctrOk(["tasks", "ls"], { namespace });
  const row = out.split("\n").find((line) => line.split(/\s+/)[0] === id);
  const pid = Number(row?.trim().split(/\s+/)[1]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
