/**
 * Whether something accepts connections on a unix socket, and if not, why: the shim's `start` (is a daemon there?)
 * and the cryo CLI (is containerd there?) ask it. Bun.connect, so that the shim's start need not load node:net.
 */
import { existsSync, readFileSync } from "node:fs";

/**
 * undefined once a connection to the unix socket at path is accepted (then closed); else the error's code
 * (ECONNREFUSED: a socket nothing listens on; ENOENT; ...), or ETIMEDOUT after timeoutMs.
 */
export async function unixConnectError(path: string, timeoutMs: number): Promise<string | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const socket = await Promise.race([
      Bun.connect({ unix: path, socket: { data() {}, error() {} } }),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })), timeoutMs))),
    ]);
    socket.end();
    return undefined;
  } catch (err) {
    return (err as { code?: unknown }).code === undefined ? "error" : String((err as { code?: unknown }).code);
  } finally {
    clearTimeout(timer);
  }
}

/** The flag /proc/net/unix shows for a listening socket (__SO_ACCEPTCON). */
const ACCEPTCON = 0x10000;

/** True when a socket of this network namespace listens on path (/proc/net/unix, or table), whatever its backlog. */
export function listensHere(path: string, table?: string): boolean {
  let text = table;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/net/unix", "utf8");
    } catch {
      return false;
    }
  }
  // Num RefCount Protocol Flags Type St Inode Path
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[7] === path && (Number.parseInt(f[3]!, 16) & ACCEPTCON) !== 0) return true;
  }
  return false;
}

/**
 * True when a server is behind the unix socket at path: a connection is accepted, or (refused) a socket of this
 * network namespace listens on it. Bun reports a listener whose backlog is full (a daemon under a flood, its event
 * loop busy) as ECONNREFUSED, the same as a file nothing listens on; /proc/net/unix is read only then.
 */
export async function unixSocketServed(path: string, timeoutMs = 1000): Promise<boolean> {
  return existsSync(path) && ((await unixConnectError(path, timeoutMs)) === undefined || listensHere(path));
}
