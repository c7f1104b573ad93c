/**
 * Socket files in the socket directory that no daemon serves any more. A daemon removes its socket when it exits and
 * containerd's `delete` removes that of a daemon it saw die (cleanup.ts), but a daemon killed after its last
 * container's Delete (lingering for its group, or waiting for containerd's Shutdown) has no container left for a
 * `delete`: its socket and marker directory stayed in the directory for good (and a `start` killed while it held a
 * socket's lock left the lock file, socket-lock.ts). Each daemon sweeps such files once,
 * after its first Create (daemon.ts), each under its socket's lock so that a `start` launching a daemon there is
 * never undone.
 */
import { existsSync, readdirSync, rmdirSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { unixSocketServed } from "../sys/unix-connect.ts";
import { clearAllPending, freshPending, LOCK_SUFFIX, lockSocket, tryLockFile } from "./socket-lock.ts";
import { MARKER_STALE_MS } from "./standby.ts";

/** A daemon socket's file name: the sha256 of containerd's address, the namespace and the group (grouping.ts socketPath). */
const SOCKET_NAME = /^[0-9a-f]{64}$/;
/** A marker directory's name, `<socket name>.pending`. */
const PENDING_NAME = /^([0-9a-f]{64})\.pending$/;
/** The marker of a standby being launched (standby.ts standbyMarker). */
const STANDBY_MARKER_NAME = /^standby-[0-9a-f]+\.sock\.launching$/;

/** Files younger than this are left alone: a `start` may be at work on them. */
export const SWEEP_MIN_AGE_MS = 30_000;

/**
 * Removes the socket at path and its marker directory when nothing answers on it, under the socket's lock (waiting
 * up to lockTimeoutMs for it); true when they were removed.
 */
export async function removeIfDead(path: string, lockTimeoutMs?: number): Promise<boolean> {
  const release = await lockSocket(path, lockTimeoutMs);
  try {
    if (await unixSocketServed(path)) return false;
    rmSync(path, { force: true });
    clearAllPending(path);
    return true;
  } finally {
    release();
  }
}

/**
 * Removes, in dir, the socket files older than minAgeMs that nothing answers on (with their marker directories),
 * marker directories with neither a socket nor a fresh marker, lock files no one holds, and stale markers of standbys
 * being launched; never own (this daemon's socket). Returns the names removed. A socket whose lock is held is skipped.
 */
export async function sweepDeadSockets(dir: string, own: string, now = Date.now(), minAgeMs = SWEEP_MIN_AGE_MS): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const present = new Set(names);
  const removed: string[] = [];
  const old = (path: string, age = minAgeMs) => {
    try {
      return now - statSync(path).mtimeMs > age;
    } catch {
      return false;
    }
  };
  for (const name of names) {
    const path = join(dir, name);
    if (path === own || basename(own) === name) continue;
    if (SOCKET_NAME.test(name)) {
      if (!old(path)) continue;
      try {
        if (await removeIfDead(path, 0)) removed.push(name);
      } catch {
        // its lock is held: a `start` or the daemon is at work on it
      }
      continue;
    }
    // A lock file no one holds: its holder was killed (a `start` killed by containerd). Taken and released like any
    // lock, so one a `start` holds or takes meanwhile stays (socket-lock.ts).
    if (name.endsWith(LOCK_SUFFIX)) {
      try {
        const release = existsSync(path) ? tryLockFile(path) : undefined;
        if (release !== undefined) {
          release();
          removed.push(name);
        }
      } catch {
        // not a file this can lock (an older build's lock directory: lockSocket's to judge)
      }
      continue;
    }
    // A standby killed while it loaded leaves its marker; only a later launch of that standby removed it (standby.ts).
    if (STANDBY_MARKER_NAME.test(name)) {
      if (old(path, MARKER_STALE_MS)) {
        rmSync(path, { force: true });
        removed.push(name);
      }
      continue;
    }
    const pending = PENDING_NAME.exec(name);
    if (pending === null || present.has(pending[1]!) || !old(path)) continue;
    const socket = join(dir, pending[1]!);
    if (freshPending(socket, now).length > 0) continue;
    try {
      rmdirSync(path);
      removed.push(name);
    } catch {
      // a marker written meanwhile
    }
  }
  return removed;
}
