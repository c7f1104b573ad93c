/**
 * src/sys: the libc edge (bun:ffi), behind small typed functions. The rest of cryo may use exactly
 * what is exported here; src/sys/libc.ts stays internal.
 */
export { setChildSubreaper, isChildSubreaper } from "./prctl.ts";
export { createReaper, type Reaper, type ReaperOptions, type Exit } from "./reaper.ts";
export { decodeWaitStatus, type ExitInfo } from "./wait-status.ts";
export { ConsoleSocket, createConsoleSocket, sendFd, type ReceivedFd } from "./console-socket.ts";
export { setWinsize, getWinsize, type Winsize } from "./pty.ts";
export { openFifo, setNonblocking, isNonblocking, dup, pipe, close, type FifoMode } from "./fd.ts";
export { readProcStat, isAlive, listChildren, type ProcStat } from "./proc.ts";
