/**
 * The state machine of a process (the container's init or an exec), as a closed union and one
 * transition table.
 *
 *   created ──start──> running ──pause──> paused ──resume──> running
 *      │                  │                  │
 *      └──────exit────────┴──────exit────────┴──> stopped ──delete──> deleted
 *   created ──delete──> deleted
 *   restoring ──start──> running   (a container created from a checkpoint)
 *
 * "kill", "exec" and "update" are checks only: they leave the state unchanged where allowed. Every
 * impossible move raises one error, built by `invalidTransition`, worded as containerd's runc shim words
 * it ("cannot pause a paused container") but with FAILED_PRECONDITION (runc's shim: UNKNOWN); kill of a
 * stopped process and anything on a deleted one is NOT_FOUND.
 */
import { CryoError, failedPrecondition, notFound } from "../errors.ts";

/** Where a process is in its life. */
export type ProcessState = "created" | "restoring" | "running" | "paused" | "stopped" | "deleted";

/** What can happen to a process. */
export type ProcessEvent = "start" | "pause" | "resume" | "exit" | "delete" | "kill" | "exec" | "update" | "checkpoint";

/** Each event as a verb, for messages ("cannot pause a paused container"). */
const verb: Record<ProcessEvent, string> = {
  start: "start",
  pause: "pause",
  resume: "resume",
  exit: "end",
  delete: "delete",
  kill: "signal",
  exec: "exec in",
  update: "update",
  checkpoint: "checkpoint",
};

/** The transition table: the next state for each allowed (state, event). */
export const TRANSITIONS: Readonly<Record<ProcessState, Partial<Record<ProcessEvent, ProcessState>>>> = {
  created: { start: "running", exit: "stopped", delete: "deleted", kill: "created", exec: "created", update: "created" },
  restoring: { start: "running", exit: "stopped", delete: "deleted" },
  running: { pause: "paused", exit: "stopped", kill: "running", exec: "running", update: "running", checkpoint: "running" },
  paused: { resume: "running", exit: "stopped", kill: "paused", update: "paused", checkpoint: "paused" },
  stopped: { delete: "deleted", exit: "stopped" },
  deleted: {},
};

/** Builds the error for an impossible move of the process named by label ("container c1", "exec e1"). */
export function invalidTransition(label: string, from: ProcessState, event: ProcessEvent): CryoError {
  if (from === "deleted") return notFound(label);
  if (from === "stopped" && event === "kill") return notFound(label, { detail: "process already finished" });
  const noun = label.startsWith("container ") ? "container" : "process";
  // "restoring": created from a checkpoint, before its Start, while it restores, or after a restore that failed (a
  // Start may try again).
  const what = from === "restoring" ? `${noun} created from a checkpoint and not running` : `${from} ${noun}`;
  return failedPrecondition(label, { detail: `cannot ${verb[event]} a ${what}` });
}

/** The next state, or throws the transition error. */
export function transition(label: string, from: ProcessState, event: ProcessEvent): ProcessState {
  const next = TRANSITIONS[from][event];
  if (next === undefined) throw invalidTransition(label, from, event);
  return next;
}

/** True when the event is allowed in the state. */
export function canTransition(from: ProcessState, event: ProcessEvent): boolean {
  return TRANSITIONS[from][event] !== undefined;
}
