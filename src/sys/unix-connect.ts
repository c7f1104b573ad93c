/**
 * Whether something accepts connections on a unix socket, and if not, why: the shim's `start` (is a daemon there?)
 * and the cryo CLI (is containerd there?) ask it. Bun.connect, so that the shim's start need not load node:net.
 */

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
