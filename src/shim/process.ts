/**
 * One process the shim tracks: the container's init or an exec. Holds its state (see
 * process-state.ts), pid, IO, and exit; every mutation happens inside its container's serial queue.
 */
import { type ProcessEvent, type ProcessState, transition } from "./process-state.ts";
import type { ExitStatus, ProcessIo, StdioSpec } from "./ports.ts";

/** A tracked process. */
export class ShimProcess {
  state: ProcessState = "created";
  pid = 0;
  /** The process's IO once it runs (attachIo). */
  io: ProcessIo | undefined;
  /** CloseIO of stdin came: applied to the IO as soon as there is one (it may come while Start is running). */
  private stdinClosed = false;
  exit: ExitStatus | undefined;
  /** The reaper's report for pid, once watched (the exit as it happened, before output drained). */
  reaped: Promise<ExitStatus> | undefined;
  /** Resolves once the process has exited and its exit was recorded (Wait). */
  readonly exited: Promise<ExitStatus>;
  private resolveExit!: (s: ExitStatus) => void;

  constructor(
    /** Container id. */
    readonly containerId: string,
    /** Exec id; "" for the init process. */
    readonly execId: string,
    readonly stdio: StdioSpec,
    /** The OCI process object for an exec. */
    readonly processSpec: Record<string, unknown> | undefined = undefined,
  ) {
    this.exited = new Promise((r) => {
      this.resolveExit = r;
    });
  }

  /** "container c1" or "exec e1 in container c1", for errors and logs. */
  get label(): string {
    return this.execId === "" ? `container ${this.containerId}` : `exec ${this.execId} in container ${this.containerId}`;
  }

  /** Sets the process's IO; a CloseIO that came before it applies now. */
  attachIo(io: ProcessIo): void {
    this.io = io;
    if (this.stdinClosed) io.closeStdin();
  }

  /**
   * CloseIO of stdin: the process's input ends once what was written before has been read. Before its IO exists
   * (an exec whose Start is still running: a client may have written all its input and closed already), it is
   * remembered and applied by attachIo, not lost.
   */
  closeStdin(): void {
    this.stdinClosed = true;
    this.io?.closeStdin();
  }

  /** Applies an event to the state (throws the transition error when impossible). */
  move(event: ProcessEvent): void {
    this.state = transition(this.label, this.state, event);
  }

  /** Checks that an event is possible without changing the state. */
  check(event: ProcessEvent): void {
    transition(this.label, this.state, event);
  }

  /** Records the exit once: stopped, exit status kept, Wait answered. Returns false if already recorded. */
  recordExit(status: ExitStatus): boolean {
    if (this.exit) return false;
    this.exit = status;
    if (this.state !== "deleted") this.state = "stopped";
    this.resolveExit(status);
    return true;
  }
}
