/**
 * src/sys: the libc edge (bun:ffi), behind small typed functions. The rest of cryo may use exactly
 * what is exported here; src/sys/libc.ts stays internal.
 */
export { setChildSubreaper, isChildSubreaper } from "./prctl.ts";
export { createReaper, type Reaper, type ReaperOptions, type Exit } from "./reaper.ts";
export { decodeWaitStatus, type ExitInfo } from "./wait-status.ts";
export { ConsoleSocket, createConsoleSocket, listenUnixSocket, sendFd, sweepConsoleSockets, type ReceivedFd } from "./console-socket.ts";
export { setWinsize, getWinsize, type Winsize } from "./pty.ts";
export { O_CLOEXEC, openFifo, unreadBytes, setNonblocking, isNonblocking, dup, dup2, pipe, close, clearCloexec, setCloexec, isCloexec, type FifoMode } from "./fd.ts";
export {
  mount,
  umount2,
  MS_RDONLY,
  MS_NOSUID,
  MS_NODEV,
  MS_NOEXEC,
  MS_REMOUNT,
  MS_BIND,
  MS_MOVE,
  MS_REC,
  MS_UNBINDABLE,
  MS_PRIVATE,
  MS_SLAVE,
  MS_SHARED,
  MNT_FORCE,
  MNT_DETACH,
  MNT_EXPIRE,
  UMOUNT_NOFOLLOW,
} from "./mount.ts";
export { pidfdOpen, pidfdGetfd, takeFdFromProcess } from "./pidfd.ts";
export { tcpRepairOf, tcpRepairOff } from "./tcp-repair.ts";
export { wallClock, type WallTime } from "./clock.ts";
export { processLimit, setProcessLimit, type ResourceLimit } from "./rlimit.ts";
export { setThreadAffinity, threadIoprio, setThreadIoprio } from "./sched.ts";
export { Errno, errnoOf } from "./libc.ts";
export { createEventFd, drainEventFd } from "./eventfd.ts";
export { tryLockExclusive } from "./flock.ts";
export { bindDatagram, receiveDatagrams, sendDatagram } from "./datagram.ts";
export { setProcTitle } from "./proctitle.ts";
export { readProcStat, isAlive, listChildren, childrenOf, processTree, killTree, zombieEnd, processEnd, innermostPid, tracerPidOf, wchanOf, type ProcStat } from "./proc.ts";
export { bpfProgLoad, bpfProgAttach, bpfProgDetach, bpfProgGetFdById, bpfProgId, bpfProgQuery, BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, type BpfProgLoadOptions } from "./bpf.ts";
