/**
 * The host side of a container's sd_notify socket (cryo.notify/socket, bundle-spec.ts NOTIFY_ANNOTATION).
 *
 * `runc create` given NOTIFY_SOCKET mounts runc's directory <root>/<id>/notify at /run/notify in the container and
 * sets NOTIFY_SOCKET=/run/notify/notify.sock in the process's environment; the daemon binds that socket itself and
 * forwards what arrives. (runc 1.1's own proxy, `runc start` with NOTIFY_SOCKET, binds it by its full path, which
 * with a 64-character container id is longer than a socket address holds: every Kubernetes container failed; and it
 * ends at READY=1, so nothing reached the host afterwards, and nothing at all from a restored process.)
 *
 * Each datagram goes on to the host socket line by line, but for MAINPID= (a pid in the container's namespace); a
 * READY=1 line brings MAINPID=<the init's host pid> with it, as runc sends it. The socket is read every
 * NOTIFY_POLL_MS (Bun has no event for a raw descriptor), until stop().
 */
import { dirname } from "node:path";
import { bindDatagram, close, receiveDatagrams, sendDatagram } from "../sys/index.ts";
import type { Logger } from "./logger.ts";

/** How often the socket is read. */
export const NOTIFY_POLL_MS = 100;

/**
 * The lines to send on for one datagram from the container: its lines without MAINPID=, and MAINPID=<pid> after a
 * READY=1. Empty when nothing is left.
 */
export function forwardedNotify(datagram: string, pid: number): string {
  const lines = datagram.split("\n").filter((l) => l !== "" && !l.startsWith("MAINPID="));
  if (lines.includes("READY=1")) lines.push(`MAINPID=${pid}`);
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}

/** A running forwarder. */
export interface NotifyForwarder {
  /** Stops reading and closes the socket (the socket file goes with runc's state directory). */
  stop(): void;
}

/**
 * Binds the container's socket in runc's notify directory (socketPath, <root>/<id>/notify/notify.sock) and forwards
 * to hostSocket. The directory must exist (runc create made it, or the restore did).
 */
export function forwardNotify(input: { socketPath: string; hostSocket: string; pid: number; log: Logger; label: string }): NotifyForwarder {
  const { socketPath, hostSocket, pid, log, label } = input;
  const fd = bindDatagram(socketPath);
  let warned = false;
  const decoder = new TextDecoder();
  const poll = () => {
    let datagrams: Uint8Array[];
    try {
      datagrams = receiveDatagrams(fd);
    } catch (err) {
      log.warn(`${label}: sd_notify socket ${socketPath}: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    for (const d of datagrams) {
      const text = forwardedNotify(decoder.decode(d), pid);
      if (text === "") continue;
      try {
        sendDatagram(hostSocket, new TextEncoder().encode(text));
        if (text.includes("READY=1\n")) log.info(`${label}: READY=1 forwarded to ${hostSocket}`, { mainPid: pid });
      } catch (err) {
        if (!warned) log.warn(`${label}: sd_notify to ${hostSocket}: ${err instanceof Error ? err.message : String(err)} (later failures are not logged)`);
        warned = true;
      }
    }
  };
  const timer = setInterval(poll, NOTIFY_POLL_MS);
  timer.unref?.();
  let stopped = false;
  log.debug(`${label}: forwarding sd_notify from ${dirname(socketPath)} to ${hostSocket}`);
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      poll(); // what arrived last
      close(fd);
    },
  };
}
