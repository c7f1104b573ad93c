/**
 * containerd 1.6 extracts a checkpoint into `$XDG_RUNTIME_DIR|/tmp/ctrd-checkpoint*` before it creates the
 * restored task and never removes that directory. The path is only visible in the `/tasks/create` event
 * (its `checkpoint` field), so migrate watches the target's events (`ctr events`) around the restore.
 */
import { z } from "zod";
import { ctrAddress, ctrBinary } from "../containerd/index.ts";

const taskCreateSchema = z.object({ container_id: z.string(), checkpoint: z.string().optional() }).loose();

/** Parses one `ctr events` line (`<date> <time> <zone> <zone name> <namespace> <topic> <json>`) into its parts. */
export function parseEventLine(line: string): { namespace: string; topic: string; event: unknown } | undefined {
  const m = /^\S+ \S+ \S+ \S+ (\S+) (\/\S+) (\{.*\})\s*$/.exec(line);
  if (!m) return undefined;
  try {
    return { namespace: m[1]!, topic: m[2]!, event: JSON.parse(m[3]!) };
  } catch {
    return undefined;
  }
}

/** A running `ctr events` that remembers the checkpoint path of one container's /tasks/create. */
export class TaskCreateWatch implements AsyncDisposable {
  #proc: Bun.Subprocess<"ignore", "pipe", "ignore">;
  #path: string | undefined;
  #seen = false;
  #done: Promise<void>;
  #startedAt = Date.now();

  private constructor(address: string, namespace: string, id: string) {
    const proc = Bun.spawn([ctrBinary, "--address", ctrAddress(address), "events"], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
    this.#proc = proc;
    this.#done = (async () => {
      let buffered = "";
      const decoder = new TextDecoder();
      for await (const chunk of proc.stdout) {
        buffered += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const parsed = parseEventLine(buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
          if (parsed?.namespace !== namespace || parsed.topic !== "/tasks/create") continue;
          const ev = taskCreateSchema.safeParse(parsed.event);
          if (ev.success && ev.data.container_id === id) {
            this.#seen = true;
            this.#path = ev.data.checkpoint;
          }
        }
      }
    })().catch(() => {});
  }

  /** Starts watching address for the /tasks/create of id in namespace. */
  static start(address: string, namespace: string, id: string): TaskCreateWatch {
    return new TaskCreateWatch(address, namespace, id);
  }

  /**
   * Resolves once `ctr events` has had settleMs since its start to subscribe (it prints nothing until an event
   * comes, so there is no sign of it): a restore started before then could create its task unseen.
   */
  async ready(settleMs = 300): Promise<void> {
    const wait = this.#startedAt + settleMs - Date.now();
    if (wait > 0) await Bun.sleep(wait);
  }

  /** The checkpoint path of the task's creation, waiting up to timeoutMs for the event; undefined if none came. */
  async checkpointPath(timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#seen && Date.now() < deadline) await Bun.sleep(20);
    return this.#path;
  }

  /** Stops `ctr events`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#proc.kill("SIGTERM");
    await this.#proc.exited;
    await this.#done;
  }
}
