/**
 * Coordination between `start` processes and the daemon on one socket path, through the file system:
 *
 * - a lock directory `<socket>.lock` (mkdir is atomic): `start` holds it while it decides to reuse
 *   or launch a daemon; the daemon holds it while it decides to exit and removes its socket, so a
 *   `start` never hands out the address of a daemon that is about to go;
 * - pending markers `<socket>.pending/<container id>`: `start` leaves one for the container whose
 *   address it printed; the daemon removes it when that container's Create arrives, and does not
 *   exit while a fresh marker is left (containerd dials and calls Create after `start` returned).
 */
import { mkdirSync, readdirSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { unavailable } from "../errors.ts";

/** Environment variable (`start` sets it for the daemon): how long an idle daemon keeps serving before it exits, in ms. */
export const LINGER_ENV = "CRYO_SHIM_LINGER_MS";
/** A lock older than this is taken to be left by a crashed holder. */
export const STALE_LOCK_MS = 15_000;
/** A pending marker older than this is taken to be a Create that never came. */
export const STALE_PENDING_MS = 30_000;

/** Takes the socket's lock (waits up to timeoutMs); resolves with the release function. */
export async function lockSocket(socket: string, timeoutMs = 2 * STALE_LOCK_MS): Promise<() => void> {
  const dir = `${socket}.lock`;
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    try {
      mkdirSync(dir, { mode: 0o700 });
      return () => rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw err;
      try {
        if (Date.now() - statSync(dir).mtimeMs > STALE_LOCK_MS) rmdirSync(dir);
      } catch {
        // raced with its owner
      }
      if (Date.now() > deadline) throw unavailable(`shim socket lock ${dir}`, { detail: "held too long" });
      await Bun.sleep(delay);
    }
  }
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
