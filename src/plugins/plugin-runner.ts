/**
 * The host's handle on one plugin runner process (see runner-main.ts): starts it on demand, sends
 * requests one at a time, enforces each request's deadline by killing the process, and starts a
 * fresh process for the next request.
 */
import type { Subprocess } from "bun";
import { join } from "node:path";
import { runnerEnvVar, runnerReplySchema, type RunnerReply, type RunnerRequest } from "./runner-protocol.ts";

/** A request without its id (the runner client numbers requests). */
type Request = RunnerRequest extends infer R ? (R extends RunnerRequest ? Omit<R, "id"> : never) : never;

/** The outcome of one request: the runner's reply, or a deadline/crash seen from outside. */
export type RunnerOutcome = { kind: "reply"; reply: RunnerReply } | { kind: "timeout" } | { kind: "exited"; detail: string };

/** The command that starts a runner: bun with the runner source, or this compiled binary with CRYO_PLUGIN_RUNNER=1. */
export function pluginRunnerCommand(): { cmd: string[]; env: Record<string, string | undefined> } {
  const compiled = import.meta.path.startsWith("/$bunfs/") || import.meta.path.startsWith("B:/~BUN/");
  if (compiled) return { cmd: [process.execPath], env: { ...process.env, [runnerEnvVar]: "1" } };
  return { cmd: [process.execPath, join(import.meta.dir, "runner-main.ts")], env: { ...process.env } };
}

/** One runner process, started lazily; holds a child process, so it is disposable. */
export class PluginRunner {
  #proc: Subprocess | null = null;
  #generation = 0;
  #nextId = 1;
  #waiting = new Map<number, (r: RunnerReply) => void>();
  #exitWaiters = new Set<(detail: string) => void>();

  /** Increments each time a new process starts; loaded plugins belong to one generation. */
  get generation(): number {
    return this.#generation;
  }

  /** The pid of the current process, if any. */
  get pid(): number | null {
    return this.#proc?.pid ?? null;
  }

  /** Starts the process unless it runs; returns its generation. */
  start(): number {
    this.#spawn();
    return this.#generation;
  }

  #spawn(): Subprocess {
    if (this.#proc) return this.#proc;
    const { cmd, env } = pluginRunnerCommand();
    const proc = Bun.spawn(cmd, {
      env,
      stdio: ["ignore", "ignore", "inherit"],
      serialization: "advanced",
      ipc: (message) => {
        const parsed = runnerReplySchema.safeParse(message);
        if (!parsed.success) return;
        const resolve = this.#waiting.get(parsed.data.id);
        if (resolve) {
          this.#waiting.delete(parsed.data.id);
          resolve(parsed.data);
        }
      },
    });
    this.#proc = proc;
    this.#generation++;
    void proc.exited.then((code) => {
      if (this.#proc === proc) this.#proc = null;
      const detail = proc.signalCode ? `killed by ${proc.signalCode}` : `exit status ${code}`;
      for (const w of this.#exitWaiters) w(detail);
      this.#exitWaiters.clear();
    });
    return proc;
  }

  /** Sends one request and waits at most `timeoutMs` for its reply; on timeout the process is killed. */
  async request(req: Request, timeoutMs: number): Promise<RunnerOutcome> {
    const proc = this.#spawn();
    const id = this.#nextId++;
    let timer: Timer | undefined;
    const outcome = await new Promise<RunnerOutcome>((resolve) => {
      this.#waiting.set(id, (reply) => resolve({ kind: "reply", reply }));
      this.#exitWaiters.add((detail) => resolve({ kind: "exited", detail }));
      timer = setTimeout(() => resolve({ kind: "timeout" }), timeoutMs);
      proc.send({ ...req, id });
    });
    clearTimeout(timer);
    this.#waiting.delete(id);
    if (outcome.kind === "timeout") await this.kill();
    return outcome;
  }

  /** Kills the current process (if any) and waits until it is gone. */
  async kill(): Promise<void> {
    const proc = this.#proc;
    if (!proc) return;
    this.#proc = null;
    proc.kill("SIGKILL");
    await proc.exited;
  }

  /** Stops the runner. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.kill();
  }
}
