/**
 * The rest of a post-copy checkpoint (lazy pages with a page server), after Checkpoint has answered:
 * CRIU's page server, in the dump's helper, sends the frozen tree's pages to the restoring host's
 * lazy-pages daemon, then kills the tree (the reaper reports its exit, 137) and the dump call returns.
 *
 * This module watches that call: it logs the outcome, bounds it with a timeout (no restore came, or it
 * stalled), and stops it when the container is deleted. Stopping kills CRIU: the kernel lets the tree
 * go and it runs on (a restore still fetching pages fails, and cryo's restore side kills its copy), so
 * exactly one copy survives. CRIU locked the container's network namespace for the dump and unlocks it
 * only when the dump ends with the tree alive; when CRIU dies or fails instead, the lock (an nftables
 * table `inet CRIU-*`, or iptables' CRIU chain) would stay: it is removed here. And CRIU failing puts the
 * freezer back as it found it at the dump (frozen, by containerd's pause): the container is thawed again.
 */
import { closeSync, constants as fsc, openSync, writeSync } from "node:fs";
import { O_CLOEXEC } from "../sys/fd.ts";
import type { PostCopyServing } from "./checkpoint-dump.ts";
import type { Logger } from "./logger.ts";
import { removeCriuNetworkLock } from "./dump-abort.ts";

/** How long a post-copy dump may serve before it is stopped (the source then runs on). */
export const DEFAULT_POST_COPY_TIMEOUT_MS = 10 * 60_000;
/** Environment override of the timeout, in ms (the daemon inherits containerd's environment). */
export const POST_COPY_TIMEOUT_ENV = "CRYO_POST_COPY_TIMEOUT_MS";

/** The timeout from the environment; a value that is not a positive integer is ignored (the default applies). */
export function postCopyTimeoutMs(env: Record<string, string | undefined>): number {
  const raw = env[POST_COPY_TIMEOUT_ENV];
  const n = raw === undefined || !/^\d+$/.test(raw.trim()) ? 0 : Number(raw.trim());
  return n > 0 ? n : DEFAULT_POST_COPY_TIMEOUT_MS;
}

export interface WatchInput {
  id: string;
  /** The container's init pid at the dump (its network namespace is unlocked after a failure). */
  pid: number;
  serving: PostCopyServing;
  networkLock: "nftables" | "iptables" | "skip";
  timeoutMs: number;
  log: Logger;
  /**
   * Thaws the container's cgroup. CRIU ending a dump early puts the freezer back as it found it, frozen
   * (containerd pauses before Checkpoint, and resumes after it answered): called then, unless the task is
   * paused again.
   */
  thaw?: () => Promise<void>;
  /** The checkpoint's status path (`cryo.checkpoint/status-path`): its byte is written once the page server serves. */
  statusPath?: string;
}

/** A watched post-copy dump. */
export interface PostCopyWatch {
  /** Settles (never rejects) once the dump call has ended and any clean-up is done: true if every page was sent. */
  ended: Promise<boolean>;
  /** Stops the page server now (the container is being deleted, the daemon shuts down). */
  stop(reason: string): void;
}

/**
 * Writes the readiness byte (0, as CRIU writes to its status fd) to a checkpoint's status path once its page server
 * serves: appended to a file (made if missing), or written to a FIFO whose reader is there (nonblocking: a FIFO
 * nobody reads gets nothing, and a warning).
 */
export function signalStatusPath(path: string, log: Logger, label: string): void {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NONBLOCK | O_CLOEXEC, 0o600);
  } catch (err) {
    log.warn(`${label}: status path ${path}: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  try {
    writeSync(fd, new Uint8Array([0]));
  } catch (err) {
    log.warn(`${label}: status path ${path}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    closeSync(fd);
  }
}

export function watchPostCopy(input: WatchInput): PostCopyWatch {
  const { id, serving, log } = input;
  const label = `checkpoint ${id}: post-copy`;
  const where = `${serving.pageServer.address}:${serving.pageServer.port}`;
  log.info(`${label}: serving the pages on ${where}; the container ends once a restore has them all`, { timeoutMs: input.timeoutMs });
  if (input.statusPath !== undefined) signalStatusPath(input.statusPath, log, label);
  let stopped: string | undefined;
  const stop = (reason: string) => {
    if (stopped !== undefined) return;
    stopped = reason;
    serving.abort(new Error(reason));
  };
  const timer = setTimeout(() => stop(`no restore took every page within ${input.timeoutMs} ms`), input.timeoutMs);
  timer.unref?.();
  const ended = serving.done.then(
    (r) => {
      const d = r.stats.dump;
      log.info(`${label}: every page sent from ${where}; CRIU ended the container`, { frozenUs: d?.frozenTimeUs, pagesLazy: d?.pagesLazy });
      return true;
    },
    async (err: unknown) => {
      const why = stopped ?? (err instanceof Error ? err.message : String(err));
      log.warn(`${label}: the page server on ${where} stopped before every page was sent (${why}): the container runs on here, a restore that fetched from it fails`);
      await unlockNetwork(input.pid, input.networkLock, log, label);
      if (input.thaw) {
        try {
          await input.thaw();
        } catch (e) {
          log.warn(`${label}: thaw after the page server stopped: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      return false;
    },
  );
  void ended.finally(() => clearTimeout(timer));
  return { ended, stop };
}

/** Removes CRIU's network lock from the namespace of pid, if it has one of its own and the lock is there. */
export async function unlockNetwork(pid: number, method: "nftables" | "iptables" | "skip", log: Logger, label: string): Promise<void> {
  // The dump's CRIU is gone: its lock is removed as an aborted dump's is (no run id: any CRIU table of pid's namespace
  // when it is not the shim's; nothing when the process is gone, its namespace with it, or shares the shim's).
  const r = await removeCriuNetworkLock({ netns: `/proc/${pid}/ns/net`, logFile: "", networkLock: method, ownNetns: true });
  for (const d of r.done) log.info(`${label}: ${d} (pid ${pid})`);
  for (const f of r.failed) log.warn(`${label}: could not remove CRIU's network lock from pid ${pid}'s network namespace: ${f}`);
}
