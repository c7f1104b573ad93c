/**
 * Process IO: how containerd's stdio reaches a container process.
 *
 * Decision (see docs/shim.md): stdout and stderr FIFOs are handed to runc as the process's own
 * descriptors (opened O_RDWR, which never blocks and keeps the FIFO from signalling EOF or EPIPE
 * while the process lives). Output is then zero-copy and cannot be lost at exit: everything the
 * process wrote is already in the FIFO when it exits, and the reader sees EOF when the last holder
 * closes. They are opened once containerd's reader has opened its end (holdOutputReader), before the
 * process exists. containerd's runc shim instead copies through pipes and must flush them before
 * reporting the exit. stdin goes through a pipe the shim copies into, and the shim holds the stdin
 * FIFO open itself (O_RDWR) as containerd's runc shim does: a client that detaches (closes its end) does
 * not end the process's input, a later attach writes into the same copy, and only CloseIO (the shim's end
 * closed) lets the copy see EOF, after everything written before it has been read: then the process's
 * stdin closes. `file://` gives the process pipes the shim copies into the file, opened for append (as
 * containerd's runc shim does): handed the file itself, a process that opens /dev/stdout (O_TRUNC) would empty
 * the log, and would see the host's path. `binary://` starts the logging binary with the read ends of two pipes
 * on fds 3 and 4 and a ready pipe on fd 5, waits for it to close fd 5, and hands the write ends over; the
 * logger's environment is CONTAINER_ID (the container's id, an exec's own id) and CONTAINER_NAMESPACE only, and
 * when the process is deleted the logger gets SIGTERM, then SIGKILL if it is still there 12 s later (containerd's
 * runc shim, pkg/process/io.go).
 *
 * Terminal mode: runc sends the pty master over a console socket; the shim copies stdin FIFO ->
 * master and master -> stdout FIFO (with backpressure), and `drained()` resolves once the master
 * reports EIO (every slave closed) and the client has read the FIFO empty. The exit is published once the
 * process is reaped and its output handed on (`handedOn()`: drained, or stalled for
 * OUTPUT_STALL_MS); Delete waits for `drained()` (container.ts).
 */
import { closeSync, fstatSync, mkdirSync, openSync, readlinkSync, constants as fsc, writeSync } from "node:fs";
import { dirname } from "node:path";
import { Code, CryoError, deadlineExceeded, fsError, invalidArgument } from "../errors.ts";
import { close as closeFd, O_CLOEXEC, openFifo, pipe, setNonblocking, setWinsize, unreadBytes, ConsoleSocket } from "../sys/index.ts";
import { fileKind } from "../sys/regular-file.ts";
import type { Logger } from "./logger.ts";
import type { ProcessIo, StdioSpec } from "./ports.ts";

/** One descriptor slot for the child: a fd number or /dev/null. */
export type StdioSlot = number | "ignore";

/** IO prepared before runc runs; `launched()` is called once runc has exited successfully. */
export interface PreparedIo {
  /** stdin, stdout, stderr for runc (the container inherits them). */
  stdio: [StdioSlot, StdioSlot, StdioSlot];
  /** The console socket for `--console-socket`, in terminal mode. */
  consoleSocket: ConsoleSocket | undefined;
  /** Closes the shim's copies of the child's descriptors and starts the copies; returns the IO. */
  launched(): Promise<ProcessIo>;
  /** Releases everything (runc failed). */
  abort(): void;
}

/** How containerd named the output: a FIFO/plain path, a file:// or binary:// URI. */
export type OutputTarget = { kind: "none" } | { kind: "fifo"; path: string } | { kind: "file"; path: string } | { kind: "binary"; url: URL };

/** Parses containerd's stdout value (where log URIs live). */
export function parseOutputTarget(value: string): OutputTarget {
  if (value === "") return { kind: "none" };
  if (!value.includes("://")) return { kind: "fifo", path: value };
  let url: URL;
  try {
    url = new URL(value);
  } catch (err) {
    throw invalidArgument(`stdio uri ${JSON.stringify(value)}`, { cause: err, detail: "not a URI" });
  }
  if (url.protocol !== "fifo:" && url.protocol !== "file:" && url.protocol !== "binary:") {
    throw invalidArgument(`stdio uri ${JSON.stringify(value)}`, { detail: `unknown scheme ${url.protocol}` });
  }
  // A host names another machine's file (RFC 8089); the path alone was used: `file://logs/app.log` wrote /app.log in
  // the host's root (found by bench/ttrpc-fuzz.ts). containerd writes file:///path and binary:///path.
  if (url.host !== "" && url.host !== "localhost") {
    throw invalidArgument(`stdio uri ${JSON.stringify(value)}`, { detail: `names host ${JSON.stringify(url.host)}; give an absolute path after three slashes (${url.protocol}///path)` });
  }
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch (err) {
    throw invalidArgument(`stdio uri ${JSON.stringify(value)}`, { cause: err, detail: "its path has a malformed %-escape" });
  }
  if (path.includes("\0")) throw invalidArgument(`stdio uri ${JSON.stringify(value)}`, { detail: "its path has a NUL byte" });
  switch (url.protocol) {
    case "fifo:":
      return { kind: "fifo", path };
    case "file:":
      return { kind: "file", path };
    default:
      return { kind: "binary", url };
  }
}

/** What the copies need of a ReadableStream reader (Bun's file streams). */
type ChunkReader = { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> };

/**
 * The stdin FIFO held open by the shim (O_RDWR: it never blocks, and the FIFO always has a writer), read by
 * `copy` until EOF: that comes once `release` closed the shim's end (CloseIO) and every client closed its
 * own, after everything written has been read. `stop` ends the copy at once (Delete).
 *
 * The read end is opened here too, with the holder, not when the copy starts: a client may write, close its
 * end and have CloseIO released the holder before the process runs (an exec's input piped into `ctr task
 * exec`, whose whole input can arrive while runc is still starting the exec). With no descriptor of the FIFO
 * left open the kernel would drop what was written, and the copy's open would wait for a writer for ever.
 */
class HeldStdin {
  private holder: number;
  private readFd: number;
  private reader: ChunkReader | undefined;
  private stopped = false;

  constructor(private readonly path: string) {
    this.holder = openFifo(path, "rw");
    try {
      this.readFd = openFifo(path, "r");
    } catch (err) {
      closeFd(this.holder);
      throw err;
    }
  }

  /** Copies the FIFO into write() until EOF or stop; then calls done (once). */
  async copy(write: (chunk: Uint8Array) => Promise<void>, log: Logger, done: () => void): Promise<void> {
    try {
      if (this.stopped) return;
      this.reader = Bun.file(this.readFd).stream().getReader();
      for (;;) {
        const { value, done: end } = await this.reader.read();
        if (end || this.stopped) break;
        if (value) await write(value);
      }
    } catch (err) {
      log.debug(`stdin copy from ${this.path} ended: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.closeReadFd();
      done();
    }
  }

  /** CloseIO: the shim's end closed; the copy ends once the clients' ends are closed and the FIFO is read empty. */
  release(): void {
    if (this.holder >= 0) closeFd(this.holder);
    this.holder = -1;
  }

  /** Ends the copy now (the process is deleted). */
  stop(): void {
    this.stopped = true;
    this.release();
    if (this.reader) void this.reader.cancel().catch(() => {});
    else this.closeReadFd(); // no copy started: nothing else holds it
  }

  private closeReadFd(): void {
    if (this.readFd >= 0) closeFd(this.readFd);
    this.readFd = -1;
  }
}

/**
 * How long Delete waits for an exec's output (or a file:// log's) to end before the shim cuts it (containerd's
 * runc shim waits 2 s there too): a process the exec left in the background may hold the output for ever. Until
 * Delete the copy goes on to EOF, so a client that reads the output to its end before it deletes the exec (CRI's
 * ExecSync) gets what background processes write, as with runc's shim; ctr deletes an exec as soon as it exited.
 */
export const EXEC_OUTPUT_LINGER_MS = 2_000;

/** Where a copy writes: a FIFO (opened for writing once its reader is there) or a file:// log (appended to). */
type CopyTarget = { kind: "fifo" | "file"; path: string };

/**
 * Copies a pipe's read end into a FIFO or a file until EOF or stop; owns both descriptors.
 *
 * A FIFO is opened write-only, and only once its reader (containerd, CRI, ctr) has opened it, as containerd's runc
 * shim opens it (blocking, write-only). Until then nothing is read from the pipe. Held open read-write instead, a
 * short exec's whole output could be written and the FIFO closed before the reader's open, which then waited for a
 * writer for ever (a helper saw CRI's ExecSync never answer, 1 in ~3500 execs under churn, every time with the
 * reader's opens delayed). A reader that goes away later ends the copy to the FIFO; the pipe is still drained, so
 * the process is not stopped by a full pipe or killed by SIGPIPE.
 */
class OutputCopy {
  readonly done: Promise<void>;
  private readonly reader: ChunkReader;
  private out = -1;
  private holder = -1;
  private readFd: number;
  private stopped = false;

  /**
   * `out`: the FIFO already opened for writing (holdOutputReader), or -1. `hold`: once the FIFO has been opened for
   * writing, the copy also holds it open read-write, as a handed-over FIFO is held (a restored init's output): a reader
   * that goes away then leaves the output in the FIFO for the next one (`ctr task attach`), and a full FIFO holds the
   * process back, instead of the rest being dropped.
   */
  constructor(readFd: number, target: CopyTarget, log: Logger, out = -1, hold = false) {
    const path = target.path;
    this.readFd = readFd;
    this.out = out >= 0 ? out : target.kind === "fifo" ? openFifoWriter(path) : openOutputFile(path);
    const reader = Bun.file(readFd).stream().getReader();
    this.reader = reader;
    this.done = (async () => {
      try {
        for (let delay = 1; this.out < 0 && !this.stopped; delay = Math.min(delay * 2, READER_POLL_MAX_MS)) {
          await Bun.sleep(delay);
          this.out = openFifoWriter(path);
        }
        if (hold && target.kind === "fifo" && this.out >= 0) this.holder = openFifo(path, "rw", { nonblock: true });
        let writing = true;
        for (;;) {
          const { value, done } = await reader.read();
          if (done || this.stopped) break;
          if (!value || !writing) continue;
          try {
            await writeAll(this.out, value, () => !this.stopped);
          } catch (err) {
            if ((err as { code?: string }).code !== "EPIPE") throw err;
            writing = false; // the reader went away: the rest is dropped
            log.debug(`output copy to ${path}: the reader went away; dropping the rest`);
          }
        }
      } catch (err) {
        log.debug(`output copy to ${path} ended: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        this.closeFds();
      }
    })();
  }

  /** Ends the copy: what is still in the pipe is dropped; the client reads EOF. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    void this.reader.cancel().catch(() => {});
  }

  private closeFds(): void {
    if (this.out >= 0) closeFd(this.out);
    if (this.holder >= 0) closeFd(this.holder);
    if (this.readFd >= 0) closeFd(this.readFd);
    this.out = -1;
    this.holder = -1;
    this.readFd = -1;
  }
}

/** How often, at most, a copy looks again whether its FIFO has a reader. */
const READER_POLL_MAX_MS = 50;

/** A FIFO opened write-only and nonblocking, or -1 while it has no reader (ENXIO). */
function openFifoWriter(path: string): number {
  try {
    return openFifo(path, "w", { nonblock: true });
  } catch (err) {
    if (err instanceof CryoError && err.code === Code.UNAVAILABLE) return -1;
    throw err;
  }
}

/** How long, at most, the shim waits for the reader of an output FIFO before it opens the FIFO itself (holdOutputReader). */
export const READER_WAIT_MS = 2_000;

/**
 * Before a process that writes into containerd's output FIFO exists (an init's FIFO, handed over; a terminal's, which
 * the shim copies into): waits until the FIFO has a reader, and returns a write-only descriptor on it, which the
 * caller keeps until its own writer is open (-1: stdout is no FIFO, or no reader came within READER_WAIT_MS).
 *
 * containerd's client opens its end in a goroutine, which under load can come after a short process has written
 * everything and ended; the kernel drops what a FIFO holds when its last holder closes it before any reader opened
 * it; and the client cancels an open still pending once it sees the exit, which the shim publishes when it reaps the
 * process. Such a client printed nothing: a helper session saw `ctr run --rm -t ... echo hi` print nothing 11 times
 * in 320 on a loaded machine, more with ctr's opens delayed; runc's shim never (it opens the FIFO blocking, in Create,
 * before the process can write). A nonblocking write-only open succeeds only while a reader has the FIFO open (or is
 * opening it); it is tried again 1 to 50 ms apart. The descriptor is kept: a reader whose blocking open this writer
 * completed would read EOF if it went away before the next one came.
 */
export async function holdOutputReader(stdout: string, log: Logger, waitMs = READER_WAIT_MS): Promise<number> {
  const target = parseOutputTarget(stdout);
  if (target.kind !== "fifo") return -1;
  const deadline = performance.now() + waitMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, READER_POLL_MAX_MS)) {
    const fd = openFifoWriter(target.path);
    if (fd >= 0) return fd;
    if (performance.now() >= deadline) {
      log.warn(`output FIFO ${target.path}: no reader after ${waitMs} ms; opened without one`);
      return -1;
    }
    await Bun.sleep(Math.min(delay, Math.max(1, deadline - performance.now())));
  }
}

/** Writes everything to a nonblocking fd, waiting while it is full; throws when the reader is gone. */
async function writeAll(fd: number, data: Uint8Array, alive: () => boolean = () => true, wrote?: (afterWait: boolean) => void): Promise<void> {
  let off = 0;
  for (let delay = 1, waited = false; off < data.length && alive(); ) {
    try {
      off += writeSync(fd, data, off, data.length - off);
      wrote?.(waited);
      waited = false;
      delay = 1;
    } catch (err) {
      if ((err as { code?: string }).code !== "EAGAIN") throw err;
      waited = true;
      await Bun.sleep(delay);
      delay = Math.min(delay * 2, 50);
    }
  }
}

/** How long a binary:// logger may take to signal readiness (close fd 5) before Create fails. */
export const LOGGER_READY_TIMEOUT_MS = 10_000;

/** Starts a binary:// logger; returns the write ends for the container's stdout and stderr. */
async function startBinaryLogger(url: URL, id: string, namespace: string, cwd: string | undefined): Promise<{ out: number; err: number; proc: Bun.Subprocess }> {
  const [outR, outW] = pipe();
  const [errR, errW] = pipe();
  const [readyR, readyW] = pipe();
  // As containerd's NewBinaryCmd: each query key, then its first value, as separate arguments (`?a=1&b`
  // gives `a 1 b ""`); Go's map order is random, here it is the URI's.
  const args: string[] = [];
  for (const k of new Set(url.searchParams.keys())) args.push(k, url.searchParams.get(k) ?? "");
  // binary:///path?k=v → path; binary://name?... (host form) is not used by containerd.
  const bin = decodeURIComponent(url.pathname);
  let proc: Bun.Subprocess;
  try {
    proc = Bun.spawn([bin, ...args], {
      stdio: ["ignore", "ignore", "ignore", outR, errR, readyW],
      env: { CONTAINER_ID: id, CONTAINER_NAMESPACE: namespace },
      // In the bundle, as containerd's runc shim runs it (the daemon itself works in /): a logger writing to a
      // relative path writes there, not into the host's root.
      ...(cwd !== undefined ? { cwd } : {}),
    });
  } catch (err) {
    for (const fd of [outR, outW, errR, errW, readyR, readyW]) closeFd(fd);
    throw invalidArgument(`logging binary ${bin}`, { cause: err, detail: err instanceof Error ? err.message : String(err) });
  }
  closeFd(outR);
  closeFd(errR);
  closeFd(readyW);
  // The logger signals readiness by closing fd 5 (or writing to it): wait for EOF or a byte.
  const reader = Bun.file(readyR).stream().getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const ready = await Promise.race([
      reader.read().then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), LOGGER_READY_TIMEOUT_MS))),
    ]);
    if (!ready) {
      proc.kill("SIGKILL");
      closeFd(outW);
      closeFd(errW);
      throw deadlineExceeded(`logging binary ${bin}`, { detail: `did not close fd 5 (ready) within ${LOGGER_READY_TIMEOUT_MS} ms` });
    }
  } finally {
    clearTimeout(timer);
    void reader.cancel().catch(() => {});
    closeFd(readyR);
  }
  return { out: outW, err: errW, proc };
}

/** How long a logger has after SIGTERM before SIGKILL (containerd's binaryIOProcTermTimeout). */
export const LOGGER_TERM_TIMEOUT_MS = 12_000;

/** Ends a binary:// logger as containerd's runc shim does at a process's delete: SIGTERM, then SIGKILL after LOGGER_TERM_TIMEOUT_MS. */
async function stopLogger(proc: Bun.Subprocess, log: Logger): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([proc.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), LOGGER_TERM_TIMEOUT_MS)))]);
  clearTimeout(timer);
  if (!exited) {
    log.warn(`logging binary (pid ${proc.pid}) still running ${LOGGER_TERM_TIMEOUT_MS} ms after SIGTERM: killed`);
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

/**
 * Opens a file:// log for appending, when the IO is prepared, before the process runs: a log that cannot be opened
 * fails the Create or Exec (it was opened once the process ran, and a failure was only logged: the process ran with
 * its output dropped). Non-blocking, and only a regular file (INVALID_ARGUMENT otherwise): a FIFO's open for writing
 * waited for a reader, freezing the daemon and every container it serves.
 */
export function openOutputFile(path: string): number {
  const context = `log file ${path}`;
  let fd: number;
  try {
    mkdirSync(dirname(path), { recursive: true });
    fd = openSync(path, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NONBLOCK | fsc.O_NOCTTY | O_CLOEXEC, 0o644);
  } catch (err) {
    // ENXIO: a FIFO without a reader, or a socket.
    if ((err as { code?: string }).code === "ENXIO") throw invalidArgument(context, { cause: err, detail: `${path} is a FIFO or a socket, not a regular file` });
    throw fsError(context, err, path);
  }
  const st = fstatSync(fd);
  if (st.isFile()) return fd;
  closeFd(fd);
  throw invalidArgument(context, { detail: `${path} is ${fileKind(st)}, not a regular file` });
}

const resolved = Promise.resolve();

function fdTarget(fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return "?";
  }
}

/** Prepares the IO of one process before runc runs. */
export async function prepareIo(spec: StdioSpec, ctx: { id: string; namespace: string; log: Logger; copyOutput?: boolean; holdOutput?: boolean; bundle?: string }): Promise<PreparedIo> {
  const owned: number[] = []; // fds the shim must close once runc has passed them on
  const keep = (fd: number) => (owned.push(fd), fd);
  const closeOwned = () => {
    for (const fd of owned.splice(0)) closeFd(fd);
  };
  let stdinWriter = -1;
  let held: HeldStdin | undefined;
  // Read ends of output pipes, and the FIFOs (copyOutput) or files they are copied to; copies run from launched().
  const pendingCopies: { r: number; target: CopyTarget; out: number }[] = [];
  // The FIFOs handed to the process itself (an init's): at its exit, handedOn waits for their reader.
  const handedOver: string[] = [];
  const copies: OutputCopy[] = [];
  const dropPending = () => {
    for (const { r, out } of pendingCopies.splice(0)) {
      closeFd(r);
      if (out >= 0) closeFd(out);
    }
  };
  const closeWriter = () => {
    if (stdinWriter >= 0) closeFd(stdinWriter);
    stdinWriter = -1;
  };

  if (spec.terminal) {
    // Held until terminalIo has opened the FIFO itself.
    let hold = await holdOutputReader(spec.stdout, ctx.log);
    const release = () => {
      if (hold >= 0) closeFd(hold);
      hold = -1;
    };
    let socket: ConsoleSocket;
    try {
      socket = ConsoleSocket.create();
    } catch (err) {
      release();
      throw err;
    }
    return {
      stdio: ["ignore", "ignore", "ignore"],
      consoleSocket: socket,
      async launched() {
        try {
          let master: number;
          try {
            master = (await socket.receive({ timeoutMs: 5000 })).fd;
          } finally {
            socket[Symbol.dispose]();
          }
          ctx.log.debug("received pty master", { fd: master, target: fdTarget(master) });
          return terminalIo(master, spec, ctx.log, ctx.copyOutput ? { lingerMs: EXEC_OUTPUT_LINGER_MS } : {});
        } finally {
          release();
        }
      },
      abort() {
        socket[Symbol.dispose]();
        release();
      },
    };
  }

  try {
    let stdin: StdioSlot = "ignore";
    if (spec.stdin !== "") {
      held = new HeldStdin(spec.stdin);
      const [r, w] = pipe();
      stdin = keep(r);
      stdinWriter = w;
      setNonblocking(w, true);
    }
    let stdout: StdioSlot = "ignore";
    let stderr: StdioSlot = "ignore";
    let logger: Bun.Subprocess | undefined;
    const out = parseOutputTarget(spec.stdout);
    if (out.kind === "binary") {
      const b = await startBinaryLogger(out.url, ctx.id, ctx.namespace, ctx.bundle);
      stdout = keep(b.out);
      stderr = keep(b.err);
      logger = b.proc;
    } else {
      // The readers of the output FIFOs (holdOutputReader): once one did not come, the client is not reading (it went
      // away), and the next FIFO is not waited for again.
      let readerWaitMs = READER_WAIT_MS;
      const holdReader = async (path: string) => {
        const fd = await holdOutputReader(path, ctx.log, readerWaitMs);
        if (fd < 0) readerWaitMs = 0;
        return fd;
      };
      // A file:// log, and an exec's FIFO output (copyOutput, so that the shim can end it after the exec exited), go
      // through a pipe the shim copies; an init's FIFO is handed over.
      const slot = async (target: CopyTarget) => {
        if (target.kind === "fifo" && !ctx.copyOutput) {
          const hold = await holdReader(target.path);
          try {
            const fd = keep(openFifo(target.path, "rw"));
            if (!handedOver.includes(target.path)) handedOver.push(target.path);
            return fd;
          } finally {
            if (hold >= 0) closeFd(hold);
          }
        }
        // An exec's FIFO: its reader is waited for before the exec starts, as for an init (holdOutputReader); a file://
        // log is opened now (openOutputFile).
        const out = target.kind === "fifo" ? await holdReader(target.path) : openOutputFile(target.path);
        const [r, w] = pipe();
        pendingCopies.push({ r, target, out });
        return keep(w);
      };
      if (out.kind === "fifo" || out.kind === "file") stdout = await slot(out);
      // containerd's file:// carries both streams in one file, each through a pipe of its own (as with containerd's
      // runc shim): a checkpoint then records two descriptors, and a restore gives each its own FIFO (one pipe for
      // both had the restored task's stderr come out on its stdout).
      if (out.kind === "file") stderr = await slot(out);
      else if (spec.stderr !== "") {
        const errTarget = parseOutputTarget(spec.stderr);
        if (errTarget.kind === "fifo" || errTarget.kind === "file") {
          const same = out.kind === errTarget.kind && out.path === errTarget.path;
          stderr = same ? stdout : await slot(errTarget);
        }
      }
    }
    return {
      stdio: [stdin, stdout, stderr],
      consoleSocket: undefined,
      async launched() {
        closeOwned();
        for (const { r, target, out } of pendingCopies.splice(0)) {
          try {
            copies.push(new OutputCopy(r, target, ctx.log, out, ctx.holdOutput === true));
          } catch (err) {
            closeFd(r);
            if (out >= 0) closeFd(out);
            ctx.log.warn(`output to ${target.path}: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        const copied = Promise.all(copies.map((c) => c.done)).then(() => {});
        if (held && stdinWriter >= 0) {
          const w = stdinWriter;
          // The process's stdin closes when the copy ends: EOF after CloseIO, the process gone (EPIPE), or Delete.
          void held.copy((chunk) => writeAll(w, chunk, () => stdinWriter === w), ctx.log, () => {
            if (stdinWriter === w) closeWriter();
          });
        }
        return {
          closeStdin: () => held?.release(),
          // No terminal, nothing to resize: runc's shim answers such a ResizePty with success too (CRI may send one).
          resize() {},
          ...(handedOver.length > 0 ? { handedOn: () => Promise.all(handedOver.map((path) => untilFifoRead(path))).then(() => {}) } : {}),
          // Called at Delete: copied output ends at EOF (every holder of the pipes closed), or
          // EXEC_OUTPUT_LINGER_MS later, cut off, when a process left behind still holds them.
          drained: () =>
            copies.length === 0
              ? resolved
              : Promise.race([
                  copied,
                  Bun.sleep(EXEC_OUTPUT_LINGER_MS).then(() => {
                    for (const c of copies) c.stop();
                    return copied;
                  }),
                ]),
          close() {
            held?.stop();
            closeWriter();
            for (const c of copies) c.stop();
            return logger ? stopLogger(logger, ctx.log) : undefined;
          },
        };
      },
      abort() {
        closeOwned();
        dropPending();
        held?.stop();
        closeWriter();
        if (logger) void stopLogger(logger, ctx.log);
      },
    };
  } catch (err) {
    closeOwned();
    dropPending();
    held?.stop();
    closeWriter();
    throw err;
  }
}

/**
 * How long output may stand still before an exit is reported without waiting for the rest of it (handedOn): nothing
 * copied, nothing read by the client. A client that does not read, a process left in the background that holds a
 * terminal.
 */
export const OUTPUT_STALL_MS = 250;
/** The longest an exit waits for its process's output to be handed on (handedOn). */
export const HANDOVER_MAX_MS = 2_000;

/**
 * Waits until the reader of a FIFO has taken what is in it, for as long as the reader keeps taking: until
 * OUTPUT_STALL_MS after `lastTaken()` (the last time it was seen to take some, before this call too) or after the
 * last decrease seen here, reported through `taken`.
 */
async function untilRead(fd: number, alive: () => boolean, lastTaken: () => number, taken: () => void): Promise<void> {
  let left: number;
  try {
    left = unreadBytes(fd);
  } catch {
    return;
  }
  const start = performance.now();
  while (left > 0 && alive() && performance.now() - lastTaken() < OUTPUT_STALL_MS && performance.now() - start < HANDOVER_MAX_MS) {
    await Bun.sleep(2);
    let now: number;
    try {
      now = unreadBytes(fd);
    } catch {
      return;
    }
    if (now < left) taken();
    left = now;
  }
}

/**
 * A process's output FIFO handed to the process itself, once the process has exited: waits until its reader has read
 * it empty, while the reader keeps reading (OUTPUT_STALL_MS from this call, then from each read seen). A FIFO nobody
 * reads any more (opening it write-only fails with ENXIO: the process's own read-write descriptors are gone with it)
 * is not waited for.
 */
async function untilFifoRead(path: string): Promise<void> {
  let fd: number;
  try {
    fd = openFifo(path, "w", { nonblock: true });
  } catch {
    return; // no reader (ENXIO), or the FIFO is gone
  }
  try {
    if (!fstatSync(fd).isFIFO()) return; // a plain file named as the output: nothing reads it empty
    let taken = performance.now();
    await untilRead(fd, () => true, () => taken, () => (taken = performance.now()));
  } finally {
    closeFd(fd);
  }
}

/**
 * Resolves once `done` has, or once nothing moved for OUTPUT_STALL_MS (counted from the call at the earliest), or
 * after HANDOVER_MAX_MS.
 */
async function untilSettled(done: Promise<void>, lastMoved: () => number): Promise<void> {
  const start = performance.now();
  let settled = false;
  void done.then(() => (settled = true));
  while (!settled) {
    const now = performance.now();
    if (now - start >= HANDOVER_MAX_MS || now - Math.max(start, lastMoved()) >= OUTPUT_STALL_MS) return;
    await Promise.race([done, Bun.sleep(20)]);
  }
}

/** The IO of a terminal process (from runc's console socket, or a restore's new pty master): copies between the pty master and the FIFOs; owns the master. */
export function terminalIo(master: number, spec: StdioSpec, log: Logger, opts: { lingerMs?: number } = {}): ProcessIo {
  let closed = false;
  const outFd = spec.stdout !== "" ? openFifo(spec.stdout, "rw", { nonblock: true }) : -1;
  // The master is read and written nonblocking: Bun polls it, as it polls a FIFO. Read blocking (node:tty's
  // ReadStream), each terminal held one of Bun's thread-pool threads (two here) for as long as it was silent, and with
  // two such terminals in a daemon every file operation of the daemon waited: a pause, a checkpoint or a Create of
  // another container never answered (found by a helper session's churn; `ctr run -d -t ... sleep` twice in a
  // per-namespace daemon, then `ctr task pause` of a third container hung). Bun's stream leaves the descriptor open
  // (on EIO and on cancel): close() closes it.
  setNonblocking(master, true);
  const reader = Bun.file(master).stream().getReader();
  let resolveDrained!: () => void;
  const drained = new Promise<void>((r) => (resolveDrained = r));
  let finished = false;
  // When output last moved (written into the stdout FIFO, or taken from it by the client), and when the client was
  // last seen taking some (the FIFO empty before a write, room made in a full one, or its content shrinking): handedOn.
  let moved = performance.now();
  let taken = 0;
  let afterWrite = 0;
  const wrote = (afterWait: boolean) => {
    moved = performance.now();
    if (afterWait) taken = moved;
  };
  const tookSome = () => {
    moved = taken = performance.now();
  };
  const noteTaken = () => {
    try {
      const left = unreadBytes(outFd);
      if (left === 0 || left < afterWrite) taken = performance.now();
    } catch {
      // closed
    }
  };
  let outClosed = false;
  const closeOut = () => {
    if (outClosed || outFd < 0) return;
    outClosed = true;
    try {
      closeSync(outFd);
    } catch {
      // already closed
    }
  };
  // Once the master reports EIO the process and every holder of the slave are gone; what was read is written. The
  // copy then waits until the client has read the FIFO empty (or stopped reading it), and closes the shim's end so
  // the client reads EOF; `drained` resolves then.
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || closed) break;
        if (value && outFd >= 0 && !outClosed) {
          noteTaken();
          await writeAll(outFd, value, () => !outClosed, wrote);
          try {
            if (!outClosed) afterWrite = unreadBytes(outFd);
          } catch {
            // closed
          }
        }
      }
    } catch (err) {
      log.debug(`pty master read ended: ${err instanceof Error ? err.message : String(err)}`); // EIO once every slave is closed
    } finally {
      finished = true;
      if (outFd >= 0 && !outClosed) await untilRead(outFd, () => !outClosed, () => taken, tookSome);
      closeOut();
      resolveDrained();
    }
  })();
  // Into the terminal: nonblocking, waiting while the terminal's input is full (a process that does not read it).
  const toTerminal = (chunk: Uint8Array) => writeAll(master, chunk, () => !closed && !finished);
  const endOfInput = () => void toTerminal(new Uint8Array([4])).catch((err: unknown) => log.debug(`pty master write: ${err instanceof Error ? err.message : String(err)}`));
  // The stdin FIFO is held open as for a process without a terminal: input survives a client's detach, and
  // CloseIO ends it once everything written before has reached the terminal.
  const held = spec.stdin !== "" ? new HeldStdin(spec.stdin) : undefined;
  let closeRequested = false;
  void held?.copy(
    async (chunk) => {
      if (!closed) await toTerminal(chunk);
    },
    log,
    () => {
      // A terminal has no separate stdin to close; after CloseIO, EOF (^D) as a terminal user would send it.
      if (closeRequested && !closed) endOfInput();
    },
  );
  return {
    closeStdin() {
      if (!held) {
        if (!closed) endOfInput();
        return;
      }
      closeRequested = true;
      held.release();
    },
    resize(width, height) {
      // After the last slave closed there is nothing left to resize.
      if (!closed && !finished) setWinsize(master, height, width);
    },
    handedOn: () => untilSettled(drained, () => moved),
    // An exec's terminal (lingerMs): a process left in the background may hold the slave for ever; from Delete on,
    // its output ends lingerMs later at the latest, so that the client sees EOF.
    drained: () =>
      opts.lingerMs === undefined
        ? drained
        : Promise.race([
            drained,
            Bun.sleep(opts.lingerMs).then(() => {
              closeOut();
              resolveDrained();
            }),
          ]),
    close() {
      if (closed) return;
      closed = true;
      held?.stop();
      void reader.cancel().catch(() => {});
      closeSync(master);
      closeOut();
      resolveDrained();
    },
  };
}
