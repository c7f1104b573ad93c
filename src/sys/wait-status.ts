/** Decoding of the status word waitpid(2) returns. */

/** How a process ended: its exit code, or the signal that killed it. */
export interface ExitInfo {
  /** The status containerd reports: the exit code, or 128 + signal number when killed by a signal. */
  status: number;
  /** The exit code when the process called exit(), else undefined. */
  exitCode?: number;
  /** The signal number when the process was killed by a signal, else undefined. */
  signal?: number;
  /** True when a core dump was written. */
  coreDumped: boolean;
}

/** Decodes a raw wait status (WIFEXITED/WEXITSTATUS/WIFSIGNALED/WTERMSIG/WCOREDUMP). */
export function decodeWaitStatus(raw: number): ExitInfo {
  const low = raw & 0x7f;
  if (low === 0) {
    const exitCode = (raw >> 8) & 0xff;
    return { status: exitCode, exitCode, coreDumped: false };
  }
  if (low !== 0x7f) return { status: 128 + low, signal: low, coreDumped: (raw & 0x80) !== 0 };
  // Stopped/continued statuses are never requested (no WUNTRACED/WCONTINUED); report them plainly.
  return { status: 128 + ((raw >> 8) & 0xff), signal: (raw >> 8) & 0xff, coreDumped: false };
}
