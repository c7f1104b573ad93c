/**
 * `runc list`, computed from runc's root directory without running runc: one row per container
 * directory, status derived as libcontainer does (runc 1.1 refreshState/runType):
 *   paused   — the freezer cgroup is frozen by itself (v1 freezer.state FROZEN and
 *              freezer.self_freezing 1; v2 cgroup.freeze 1), checked first;
 *   stopped  — init's pid is gone, a zombie, or its start time differs from init_process_start;
 *   created  — init lives and `<root>/<id>/exec.fifo` exists (runc start has not happened);
 *   running  — otherwise.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { readProcStat } from "../sys/index.ts";
import { goRfc3339Nano } from "../sys/clock.ts";
import { CryoError } from "../errors.ts";
import { isValidContainerId } from "./container-errors.ts";
import { labelsToAnnotations, readRuncState, type RuncState } from "./state-file.ts";

/** The status model: created, running, paused, stopped. */
export type ContainerStatus = "created" | "running" | "paused" | "stopped";

/** One row of `runc list --format json`. */
export interface ContainerListing {
  ociVersion: string;
  id: string;
  /** Init's pid, 0 when stopped. */
  pid: number;
  status: ContainerStatus;
  bundle: string;
  rootfs: string;
  /** As runc prints it (RFC 3339, nanoseconds). */
  created: string;
  /** User annotations (labels other than bundle); omitted when empty, as runc does. */
  annotations?: Record<string, string>;
  /** The user owning the container's state directory ("#<uid>" when unknown). */
  owner: string;
}

/** Reads the freezer state: true when the container's cgroup is frozen by itself. */
export function isFrozen(state: RuncState): boolean {
  const v1 = state.cgroup_paths.freezer;
  if (v1 !== undefined) {
    const s = readTrim(join(v1, "freezer.state"));
    if (s === "FROZEN" || s === "FREEZING") {
      const self = readTrim(join(v1, "freezer.self_freezing"));
      return self === undefined || self === "1";
    }
    return false;
  }
  const v2 = state.cgroup_paths[""];
  if (v2 !== undefined) return readTrim(join(v2, "cgroup.freeze")) === "1";
  return false;
}

/** Computes a container's status from its state, /proc and cgroupfs, as runc does. */
export function containerStatus(root: string, state: RuncState): ContainerStatus {
  if (isFrozen(state)) return "paused";
  const st = state.init_process_pid > 0 ? readProcStat(state.init_process_pid) : undefined;
  if (st === undefined || st.state === "Z" || st.state === "X" || st.startTime !== BigInt(state.init_process_start)) {
    return "stopped";
  }
  return existsSync(join(root, state.id, "exec.fifo")) ? "created" : "running";
}

/**
 * Lists the containers under a runc root like `runc list --format json`. Entries that are not containers (files,
 * directories without a state.json: a namespace's root, a half-removed container) are passed over; a container whose
 * state.json cannot be read or parsed is skipped and named to onSkipped, as `runc list` names it on stderr
 * (`load container ID: ...`) and goes on.
 */
export function listContainers(root: string, onSkipped?: (dir: string, reason: string) => void): ContainerListing[] {
  let entries: string[];
  try {
    entries = readdirSync(root).sort();
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return [];
    throw err;
  }
  const users = readPasswd();
  const rows: ContainerListing[] = [];
  for (const name of entries) {
    if (!isValidContainerId(name)) continue;
    let uid: number;
    try {
      const st = statSync(join(root, name));
      if (!st.isDirectory()) continue;
      uid = st.uid;
    } catch {
      continue;
    }
    let state: RuncState;
    try {
      state = readRuncState(root, name);
    } catch (err) {
      if (existsSync(join(root, name, "state.json"))) onSkipped?.(join(root, name), CryoError.from(err).message);
      continue;
    }
    const status = containerStatus(root, state);
    const { bundle, annotations } = labelsToAnnotations(state.config.labels);
    rows.push({
      ociVersion: state.config.version ?? "",
      id: state.id,
      pid: status === "stopped" ? 0 : state.init_process_pid,
      status,
      bundle,
      rootfs: state.config.rootfs,
      created: goRfc3339Nano(state.created), // as `runc list` prints it (it parses the time and formats it again)
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      owner: users.get(uid) ?? `#${uid}`,
    });
  }
  return rows;
}

function readTrim(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

function readPasswd(): Map<number, string> {
  const users = new Map<number, string>();
  const text = readTrim("/etc/passwd") ?? "";
  for (const line of text.split("\n")) {
    const [name, , uid] = line.split(":");
    if (name !== undefined && uid !== undefined && !users.has(Number(uid))) users.set(Number(uid), name);
  }
  return users;
}
