/**
 * Coordination between `start` processes and the daemon on one socket path, through the file system:
 *
 * - a lock file `<socket>.lock` under flock(2): `start` holds it while it decides to reuse or launch a
 *   daemon; the daemon holds it while it decides to exit and removes its socket, so a `start` never hands
 *   out the address of a daemon that is about to go. The kernel drops the lock with its holder, so a
 *   `start` killed while it holds it (containerd kills `start` when its client goes away) delays no one.
 *   The holder removes the file as it releases it; a taker checks that the file it locked is still the
 *   one at the path, so a lock on a removed file is never taken for the lock. A killed holder's file
 *   goes with the next taker, or with a daemon's sweep of the directory (socket-sweep.ts);
 * - pending markers `<socket>.pending/<container id>`: `start` leaves one for the container whose
 *   address it printed; the daemon removes it when that container's Create arrives, and does not
 *   exit while a fresh marker is left (containerd dials and calls Create after `start` returned).
 */
import { closeSync, constants as fsc, fstatSync, mkdirSync, openSync, readdirSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { unavailable } from "../errors.ts";
import { tryLockExclusive } from "../sys/flock.ts";

/** Environment variable (`start` sets it for the daemon): how long an idle daemon keeps serving before it exits, in ms. */
export const LINGER_ENV = "CRYO_SHIM_LINGER_MS";
/** How long a lock is waited for before UNAVAILABLE. */
export const LOCK_WAIT_MS = 30_000;
/** A lock directory (what builds before flock used) older than this is taken to be left by a crashed holder. */
export const STALE_LOCK_MS = 15_000;
/** A pending marker older than this is taken to be a Create that never came. */
export const STALE_PENDING_MS = 30_000;
/** The suffix of a socket's lock file. */
export const LOCK_SUFFIX = ".lock";

/** Takes the socket's lock (waits up to timeoutMs); resolves with the release function. */
export async function lockSocket(socket: string, timeoutMs = LOCK_WAIT_MS): Promise<() => void> {
  const path = `${socket}${LOCK_SUFFIX}`;
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    const release = tryLockFile(path);
    if (release !== undefined) return release;
    if (Date.now() > deadline) throw unavailable(`shim socket lock ${path}`, { detail: "held too long" });
    await Bun.sleep(delay);
  }
}

/**
 * One try at the lock file at path: its release function (which removes the file, then unlocks it), or undefined
 * while another process holds it. A lock directory left by an older build is waited on until it is stale.
 */
export function tryLockFile(path: string): (() => void) | undefined {
  let fd: number;
  try {
    // Bun opens with O_CLOEXEC: a daemon `start` launches under the lock does not inherit (and keep) it.
    fd = openSync(path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as { code?: string }).code !== "EISDIR") throw err;
    try {
      if (Date.now() - statSync(path).mtimeMs > STALE_LOCK_MS) rmdirSync(path);
    } catch {
      // raced with its owner
    }
    return undefined;
  }
  try {
    if (tryLockExclusive(fd)) {
      // The holder before removed the file as it released it: the lock on that file is no lock at all.
      const held = fstatSync(fd);
      const now = statSync(path, { throwIfNoEntry: false });
      if (now !== undefined && now.ino === held.ino && now.dev === held.dev) {
        return () => {
          rmSync(path, { force: true });
          closeSync(fd);
        };
      }
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  closeSync(fd);
  return undefined;
}

const pendingDir = (socket: string) => `${socket}.pending`;

/** Marks that containerd will call Create for container id on this socket (call under the lock). */
export function markPending(socket: string, id: string): void {
  mkdirSync(pendingDir(socket), { recursive: true, mode: 0o700 });
  writeFileSync(`${pendingDir(socket)}/${id}`, "");
}

/** Removes the marker of container id (its Create arrived). */
export function clearPending(socket: string, id: string): void {
  rmSync(`${pendingDir(socket)}/${id}`, { force: true });
}

/** Container ids with a fresh marker; stale markers are removed on the way. */
export function freshPending(socket: string, now = Date.now()): string[] {
  const dir = pendingDir(socket);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const fresh: string[] = [];
  for (const name of names) {
    try {
      if (now - statSync(`${dir}/${name}`).mtimeMs > STALE_PENDING_MS) rmSync(`${dir}/${name}`, { force: true });
      else fresh.push(name);
    } catch {
      // removed meanwhile
    }
  }
  return fresh;
}

/** Removes every marker and the marker directory (the daemon exits). */
export function clearAllPending(socket: string): void {
  rmSync(pendingDir(socket), { recursive: true, force: true });
}
