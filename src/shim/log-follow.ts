/**
 * A shared daemon's log follows its live containers. The daemon's stdout and stderr start on the
 * `log` FIFO of the bundle whose `start` launched it; containerd reads each container's FIFO only
 * while that container's task connection lives, so once that container is deleted every later line
 * of a daemon still serving others would be dropped. When the container whose FIFO the daemon writes
 * to is deleted, fds 1 and 2 are moved (dup2) to the FIFO of another live container of the daemon;
 * when none is left, to the FIFO of the next container created, as its Create begins.
 */
import { closeSync, constants as fsc, fstatSync, openSync, statSync } from "node:fs";
import { join } from "node:path";
import { dup2 } from "../sys/index.ts";

/** Tracks the daemon's containers and keeps its stdout/stderr on a FIFO that containerd reads. */
export interface LogFollower {
  /**
   * A Create for bundle begins: with no live container's FIFO written to, the log moves to bundle's now, so that what
   * the Create itself logs (a plugin's fail-open warning, say) reaches containerd (its reader is open by then).
   */
  creating(bundle: string): void;
  /** A container was created in bundle. */
  created(id: string, bundle: string): void;
  /** A container was deleted. */
  deleted(id: string): void;
  /** The bundle whose FIFO the daemon writes to now. */
  readonly bundle: string;
}

/**
 * Points fds 1 and 2 at <bundle>/log; false when the FIFO has no reader (ENXIO), is gone, or is not a FIFO. A Create's
 * bundle comes from the request: a `log` there that was a host file (or a link to one) had the daemon's log lines
 * written over it.
 */
export function moveStdioToBundleLog(bundle: string): boolean {
  const path = join(bundle, "log");
  let fd: number;
  try {
    if (!statSync(path).isFIFO()) return false; // not even opened (a device's open may do something)
    fd = openSync(path, fsc.O_WRONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch {
    return false;
  }
  try {
    if (!fstatSync(fd).isFIFO()) return false;
    dup2(fd, 1);
    dup2(fd, 2);
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** Creates the follower; `move` is injectable for tests. */
export function createLogFollower(initialBundle: string, move: (bundle: string) => boolean = moveStdioToBundleLog): LogFollower {
  const live = new Map<string, string>();
  let current = initialBundle;
  const moveTo = (bundle: string): boolean => {
    if (!move(bundle)) return false;
    current = bundle;
    return true;
  };
  const isLive = (bundle: string) => [...live.values()].includes(bundle);
  return {
    creating(bundle) {
      if (!isLive(current) && bundle !== current) moveTo(bundle);
    },
    created(id, bundle) {
      live.set(id, bundle);
      if (!isLive(current)) moveTo(bundle);
    },
    deleted(id) {
      const bundle = live.get(id);
      live.delete(id);
      if (bundle !== current || isLive(current)) return;
      for (const other of live.values()) if (moveTo(other)) return;
    },
    get bundle() {
      return current;
    },
  };
}
