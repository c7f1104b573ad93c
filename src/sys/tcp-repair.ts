/**
 * TCP repair mode (TCP_REPAIR, tcp(7)) of a socket: CRIU turns it on for each established connection it dumps
 * (tcp-established), which stops the socket's traffic (send and receive fail with EPERM) until it is turned off
 * again, CRIU's own last step. A CRIU killed in between leaves it on: src/shim/dump-abort.ts turns it off.
 */
import { ptr } from "bun:ffi";
import { errno, Errno, libc, sysError } from "./libc.ts";

const SOL_TCP = 6;
const TCP_REPAIR = 19;
/** getsockopt of a TCP option on a socket of another protocol. */
const ENOPROTOOPT = 92;
const EOPNOTSUPP = 95;

const value = new Int32Array(1);
const length = new Uint32Array(1);

/** The socket's repair mode (1 on, 0 off); undefined when fd is not a TCP socket. */
export function tcpRepairOf(fd: number): number | undefined {
  length[0] = 4;
  if (libc.getsockopt(fd, SOL_TCP, TCP_REPAIR, ptr(value), ptr(length)) === 0) return value[0]!;
  const err = errno();
  if (err === ENOPROTOOPT || err === EOPNOTSUPP || err === Errno.EINVAL || err === 88 /* ENOTSOCK */) return undefined;
  throw sysError(`getsockopt(${fd}, SOL_TCP, TCP_REPAIR)`, err);
}

/** Turns the socket's repair mode off (TCP_REPAIR_OFF: the kernel then probes the peer's window, as CRIU does). */
export function tcpRepairOff(fd: number): void {
  value[0] = 0;
  if (libc.setsockopt(fd, SOL_TCP, TCP_REPAIR, ptr(value), 4) !== 0) throw sysError(`setsockopt(${fd}, SOL_TCP, TCP_REPAIR, off)`);
}
