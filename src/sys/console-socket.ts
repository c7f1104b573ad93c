/**
 * The console socket runc's `--console-socket PATH` connects to: runc sends the pty master of a
 * terminal container (or exec) as an SCM_RIGHTS message, with the pty's name ("/dev/pts/N") as data.
 *
 * Order of events: create the ConsoleSocket (socket + bind + listen, nonblocking), run
 * `runc create`/`runc exec --detach` with `--console-socket <path>`, wait for runc to exit (runc
 * connects and sends before it exits; the connection and the fd wait in the socket's backlog and
 * buffer), then call `receive()`, which accepts and reads without ever blocking the event loop.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ptr } from "bun:ffi";
import { failedPrecondition } from "../errors.ts";
import { Errno, errno, libc, sysError } from "./libc.ts";
import { close } from "./fd.ts";
import { AF_UNIX, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, sockaddrUn } from "./sockaddr.ts";
import { listensHere } from "./unix-connect.ts";

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const CMSG_HDR = 16; // struct cmsghdr { size_t len; int level; int type; } on LP64
const MAX_FDS = 4;

/** The name prefix of the temp directory a console socket is made in. */
const TEMP_PREFIX = "cryo-pty-";
/** The socket's name in that directory. */
const SOCKET_NAME = "pty.sock";
/**
 * A console socket's directory older than this with nothing listening on its socket was left by a daemon killed during
 * a terminal create or exec: a live one is disposed of at most seconds after runc returns.
 */
export const STALE_CONSOLE_MS = 10 * 60_000;

/** A descriptor received over a unix socket, with the data that came along (runc: the pty's name). */
export interface ReceivedFd {
  fd: number;
  name: string;
}

/** A listening unix socket for runc's --console-socket; holds the socket fd and its path (and temp dir). */
export class ConsoleSocket {
  #fd: number;
  #tempDir: string | undefined;
  /** The path to pass as `--console-socket`. */
  readonly path: string;

  private constructor(fd: number, path: string, tempDir: string | undefined) {
    this.#fd = fd;
    this.path = path;
    this.#tempDir = tempDir;
  }

  /** Creates a nonblocking listening socket at path, or in a fresh private temp dir when path is omitted. */
  static create(path?: string): ConsoleSocket {
    const tempDir = path === undefined ? mkdtempSync(join(tmpdir(), TEMP_PREFIX)) : undefined;
    const sockPath = path ?? join(tempDir as string, SOCKET_NAME);
    let fd = -1;
    try {
      const { addr, len } = sockaddrUn(sockPath);
      fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) throw sysError("socket(AF_UNIX)");
      if (libc.bind(fd, addr, len) !== 0) throw sysError(`bind(${sockPath})`);
      if (libc.listen(fd, 16) !== 0) throw sysError(`listen(${sockPath})`);
      return new ConsoleSocket(fd, sockPath, tempDir);
    } catch (err) {
      if (fd >= 0) close(fd);
      if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Accepts the pending connection and receives the descriptor sent on it (close-on-exec set).
   * Never blocks: with no connection yet it polls until `timeoutMs` (default 0: fail at once with
   * FAILED_PRECONDITION, the right answer once runc has exited without connecting).
   */
  async receive(options: { timeoutMs?: number } = {}): Promise<ReceivedFd> {
    const deadline = Date.now() + (options.timeoutMs ?? 0);
    for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
      if (this.#fd < 0) throw failedPrecondition(`console socket ${this.path}`, { detail: "closed" });
      const conn = libc.accept4(this.#fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (conn >= 0) {
        try {
          return await receiveFd(conn, deadline);
        } finally {
          close(conn);
        }
      }
      const err = errno();
      if (err !== Errno.EAGAIN && err !== Errno.EINTR) throw sysError(`accept4(${this.path})`, err);
      if (Date.now() >= deadline) {
        throw failedPrecondition(`console socket ${this.path}`, { detail: "no connection (did runc get --console-socket?)" });
      }
      await Bun.sleep(delay);
    }
  }

  /** Closes the socket and removes its path (and its temp dir when this created one). */
  [Symbol.dispose](): void {
    if (this.#fd >= 0) {
      close(this.#fd);
      this.#fd = -1;
    }
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
    if (this.#tempDir !== undefined) {
      try {
        rmdirSync(this.#tempDir);
      } catch {
        // not empty or gone: leave it
      }
      this.#tempDir = undefined;
    }
  }
}

/**
 * Binds a unix stream socket at path and puts it in listening state; returns the (blocking,
 * close-on-exec) descriptor. The socket file is created with `mode` (the umask is narrowed around
 * bind(2), so it is never more open than asked). Used by the shim's `start`, which hands the
 * listening socket to the daemon it launches, as containerd's runc shim does: a client may connect
 * at once and waits in the backlog until the daemon accepts.
 */
export function listenUnixSocket(path: string, options: { mode?: number; backlog?: number } = {}): number {
  const { addr, len } = sockaddrUn(path);
  const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sysError("socket(AF_UNIX)");
  const oldUmask = process.umask(0o777 & ~(options.mode ?? 0o600));
  try {
    if (libc.bind(fd, addr, len) !== 0) throw sysError(`bind(${path})`);
    if (libc.listen(fd, options.backlog ?? 128) !== 0) throw sysError(`listen(${path})`);
    return fd;
  } catch (err) {
    close(fd);
    throw err;
  } finally {
    process.umask(oldUmask);
  }
}

/**
 * Removes the console socket directories in dir (the temp directory) that a daemon killed during a terminal create or
 * exec left: older than minAgeMs, with no socket of this network namespace listening on their socket (/proc/net/unix;
 * never a connection, which a waiting receive() would take for runc's). Returns the directories removed.
 */
export function sweepConsoleSockets(dir = tmpdir(), now = Date.now(), minAgeMs = STALE_CONSOLE_MS): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith(TEMP_PREFIX));
  } catch {
    return [];
  }
  const removed: string[] = [];
  let sockets: string | undefined; // /proc/net/unix, read once, when a directory is old enough to ask
  for (const name of names) {
    const path = join(dir, name);
    try {
      const st = statSync(path);
      if (!st.isDirectory() || now - st.mtimeMs <= minAgeMs) continue;
      sockets ??= readFileSync("/proc/net/unix", "utf8");
      if (listensHere(join(path, SOCKET_NAME), sockets)) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // gone meanwhile
    }
  }
  return removed;
}

/** Creates a console socket (see ConsoleSocket.create). */
export function createConsoleSocket(path?: string): ConsoleSocket {
  return ConsoleSocket.create(path);
}

/** recvmsg on a nonblocking connected socket until one SCM_RIGHTS message arrives (or the peer hangs up). */
async function receiveFd(conn: number, deadline: number): Promise<ReceivedFd> {
  const data = new Uint8Array(4096);
  const control = new Uint8Array(CMSG_HDR + 8 * MAX_FDS);
  const iov = new Uint8Array(16);
  const msg = new Uint8Array(56);
  const iv = new DataView(iov.buffer);
  iv.setBigUint64(0, BigInt(ptr(data)), true);
  iv.setBigUint64(8, BigInt(data.length), true);
  const mv = new DataView(msg.buffer);
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    // struct msghdr on LP64: name(0) namelen(8) iov(16) iovlen(24) control(32) controllen(40) flags(48)
    mv.setBigUint64(0, 0n, true);
    mv.setUint32(8, 0, true);
    mv.setBigUint64(16, BigInt(ptr(iov)), true);
    mv.setBigUint64(24, 1n, true);
    mv.setBigUint64(32, BigInt(ptr(control)), true);
    mv.setBigUint64(40, BigInt(control.length), true);
    mv.setInt32(48, 0, true);
    const n = Number(libc.recvmsg(conn, msg, MSG_CMSG_CLOEXEC));
    if (n < 0) {
      const err = errno();
      if (err !== Errno.EAGAIN && err !== Errno.EINTR) throw sysError("recvmsg(console socket)", err);
      if (Date.now() >= deadline) throw failedPrecondition("console socket", { detail: "connected but nothing was sent" });
      await Bun.sleep(delay);
      continue;
    }
    const fds = parseRights(control, Number(mv.getBigUint64(40, true)));
    if (fds.length === 0) {
      if (n === 0) throw failedPrecondition("console socket", { detail: "peer closed without sending a descriptor" });
      continue; // data without a descriptor: keep reading
    }
    // Keep the first descriptor; close any extra ones so they do not leak.
    for (const extra of fds.slice(1)) close(extra);
    const name = new TextDecoder().decode(data.subarray(0, n));
    return { fd: fds[0] as number, name };
  }
}

/** Extracts the descriptors of SCM_RIGHTS control messages from a cmsg buffer. */
function parseRights(control: Uint8Array, length: number): number[] {
  const dv = new DataView(control.buffer, control.byteOffset, control.byteLength);
  const fds: number[] = [];
  let off = 0;
  while (off + CMSG_HDR <= length) {
    const len = Number(dv.getBigUint64(off, true));
    const level = dv.getInt32(off + 8, true);
    const type = dv.getInt32(off + 12, true);
    if (len < CMSG_HDR) break;
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let p = off + CMSG_HDR; p + 4 <= off + len; p += 4) fds.push(dv.getInt32(p, true));
    }
    off += (len + 7) & ~7;
  }
  return fds;
}

/**
 * Connects to a unix socket and sends one descriptor with SCM_RIGHTS and `name` as data, as runc
 * does to the console socket. Used to hand descriptors between processes and in tests.
 */
export function sendFd(socketPath: string, fd: number, name: string): void {
  const { addr, len } = sockaddrUn(socketPath);
  const sock = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) throw sysError("socket(AF_UNIX)");
  try {
    if (libc.connect(sock, addr, len) !== 0) throw sysError(`connect(${socketPath})`);
    const data = new TextEncoder().encode(name.length > 0 ? name : "\0");
    const iov = new Uint8Array(16);
    const iv = new DataView(iov.buffer);
    iv.setBigUint64(0, BigInt(ptr(data)), true);
    iv.setBigUint64(8, BigInt(data.length), true);
    const control = new Uint8Array(CMSG_HDR + 8);
    const cv = new DataView(control.buffer);
    cv.setBigUint64(0, BigInt(CMSG_HDR + 4), true);
    cv.setInt32(8, SOL_SOCKET, true);
    cv.setInt32(12, SCM_RIGHTS, true);
    cv.setInt32(16, fd, true);
    const msg = new Uint8Array(56);
    const mv = new DataView(msg.buffer);
    mv.setBigUint64(16, BigInt(ptr(iov)), true);
    mv.setBigUint64(24, 1n, true);
    mv.setBigUint64(32, BigInt(ptr(control)), true);
    mv.setBigUint64(40, BigInt(control.length), true);
    if (Number(libc.sendmsg(sock, msg, 0)) < 0) throw sysError(`sendmsg(${socketPath})`);
  } finally {
    close(sock);
  }
}
