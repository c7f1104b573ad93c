/** `ctr events` as a test watches it: a running subscription whose stdout lines are collected as they come. */

/** A running `ctr events`. */
export interface CtrEvents {
  /** Every line printed so far: `<Go time> <namespace> <topic> <event as JSON>`. */
  lines: string[];
  stderr(): Promise<string>;
  stop(): Promise<void>;
}

/** One line of `ctr events`, split. */
export interface CtrEvent {
  time: string;
  namespace: string;
  topic: string;
  event: Record<string, unknown>;
}

/** Starts `ctr events namespace==NAMESPACE` against containerd at address. */
export function startCtrEvents(address: string, namespace: string): CtrEvents {
  const proc = Bun.spawn(["ctr", "--address", address, "events", `namespace==${namespace}`], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of proc.stdout) {
      partial += decoder.decode(chunk, { stream: true });
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts.filter((l) => l.length > 0));
    }
  })();
  return {
    lines,
    stderr: () => new Response(proc.stderr).text(),
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
      await reading;
    },
  };
}

/** Splits a `ctr events` line; undefined for anything else. */
export function parseCtrEvent(line: string): CtrEvent | undefined {
  const m = /^(.+ UTC) (\S+) (\S+) (\{.*\})$/.exec(line);
  if (!m) return undefined;
  try {
    return { time: m[1]!, namespace: m[2]!, topic: m[3]!, event: JSON.parse(m[4]!) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}
