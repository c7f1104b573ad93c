/** Unix socket constants (Linux, LP64) and the sockaddr_un encoding shared by src/sys's socket code. */
import { invalidArgument } from "../errors.ts";

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
/** sizeof(sun_path): a path of up to SUN_PATH_MAX - 1 bytes, and its NUL. */
export const SUN_PATH_MAX = 108;

/** Encodes a struct sockaddr_un; returns the buffer and the length to pass. */
export function sockaddrUn(path: string): { addr: Uint8Array; len: number } {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length === 0 || bytes.length >= SUN_PATH_MAX) {
    throw invalidArgument(`unix socket path ${JSON.stringify(path)}`, { detail: `must be 1..${SUN_PATH_MAX - 1} bytes` });
  }
  const addr = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(bytes, 2);
  return { addr, len: 2 + bytes.length + 1 };
}
