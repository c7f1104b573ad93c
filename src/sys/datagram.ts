/**
 * Unix datagram sockets (sd_notify's): bind one to receive without blocking, read what has arrived, send one
 * datagram to a path. A path longer than a socket address holds (runc's notify socket of a container with a
 * 64-character id) is bound through a short symbolic link to its directory.
 */
import { chmodSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SUN_PATH_MAX, sockaddrUn } from "./sockaddr.ts";
import { close } from "./fd.ts";
import { Errno, errno, libc, sysError } from "./libc.ts";

const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;

/** Binds a nonblocking datagram socket at path, which anyone may send to (mode 0777, as runc's notify socket); returns its fd. */
export function bindDatagram(path: string): number {
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sysError("socket(AF_UNIX, SOCK_DGRAM)");
  let short: string | undefined;
  try {
    let at = path;
    if (Buffer.byteLength(path) >= SUN_PATH_MAX) {
      short = mkdtempSync(join(tmpdir(), "cryo-dg-"));
      symlinkSync(dirname(path), join(short, "d"));
      at = join(short, "d", basename(path));
    }
    const { addr, len } = sockaddrUn(at);
    if (libc.bind(fd, addr, len) !== 0) throw sysError(`bind(${path})`);
    chmodSync(path, 0o777);
    return fd;
  } catch (err) {
    close(fd);
    throw err;
  } finally {
    if (short) rmSync(short, { recursive: true, force: true });
  }
}

/** Reads every datagram waiting on a nonblocking socket (none: an empty list). */
export function receiveDatagrams(fd: number, max = 64): Uint8Array[] {
  const out: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  while (out.length < max) {
    const n = Number(libc.read(fd, buf, BigInt(buf.length)));
    if (n >= 0) {
      out.push(buf.slice(0, n));
      continue;
    }
    const e = errno();
    if (e === Errno.EINTR) continue;
    if (e === Errno.EAGAIN) break;
    throw sysError(`read(datagram socket ${fd})`, e);
  }
  return out;
}

/** Sends data as one datagram to the socket at path (not waiting for room: a full receiver is EAGAIN). */
export function sendDatagram(path: string, data: Uint8Array): void {
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sysError("socket(AF_UNIX, SOCK_DGRAM)");
  try {
    const { addr, len } = sockaddrUn(path);
    const n = Number(libc.sendto(fd, data, BigInt(data.length), MSG_DONTWAIT | MSG_NOSIGNAL, addr, len));
    if (n < 0) throw sysError(`sendto(${path})`);
  } finally {
    close(fd);
  }
}
